//! Signing and checking with the seal key, in OpenSSH's signature format (SSHSIG). `ssh-key`
//! encodes and parses the signatures and builds the bytes Ed25519 signs; the check itself is
//! ed25519-dalek's `verify_strict` (small-order keys and R refused, canonical s), after the key
//! is refused if it is weak or not canonical. Two namespaces, never mixed: a ratification signs
//! a [`Statement`] in [`NAMESPACE`]; a proof of possession signs
//! `identity key ‖ seal key ‖ channel id` in [`POSSESSION_NAMESPACE`].

use ssh_key::private::Ed25519Keypair;
use ssh_key::public::{Ed25519PublicKey, KeyData};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, SshSig};

use super::statement::Statement;
use super::{AgreementError, MAX_SIGNATURE, Result, SignatureError, shorten};
use crate::identity::{Card, Identity, check_seal_key};
use crate::message::ChannelId;

/// The SSHSIG namespace of ratifications: a seal's signature made for anything else can never
/// pass as one.
pub const NAMESPACE: &str = "backchannel-agreement";
/// The SSHSIG namespace of proofs of possession of a seal key.
pub const POSSESSION_NAMESPACE: &str = "backchannel-seal-possession";

/// Signs `statement` with the identity's seal (armored SSHSIG, SHA-512, as `ssh-keygen -Y sign`
/// makes). Refused if the statement names another signer than this identity.
pub fn sign_statement(identity: &Identity, statement: &Statement) -> Result<String> {
    let card = identity.card();
    let ours = statement.signer_identity_key == card.identity_key
        && statement.signer_name == card.name
        && statement.signer_side == card.side;
    if !ours {
        return Err(AgreementError::Sign("the statement names another signer".into()));
    }
    sign(identity, NAMESPACE, &statement.to_bytes())
}

/// Checks `armored` as `seal_key`'s signature over `statement`.
pub fn verify_statement(seal_key: &[u8; 32], statement: &Statement, armored: &str) -> Result<()> {
    verify_signature(seal_key, &statement.to_bytes(), armored)
}

/// The bytes a proof of possession signs: `identity key[32] ‖ seal key[32] ‖ channel id[16]`.
pub fn possession_message(identity_key: &[u8; 32], seal_key: &[u8; 32], channel: &ChannelId) -> Vec<u8> {
    [&identity_key[..], &seal_key[..], &channel.0[..]].concat()
}

/// Proves that this identity holds its seal key, for `channel`: sent with each ratification,
/// so a party cannot put someone else's seal key in its card and have it count.
pub fn prove_possession(identity: &Identity, channel: &ChannelId) -> Result<String> {
    let card = identity.card();
    sign(identity, POSSESSION_NAMESPACE, &possession_message(&card.identity_key, &card.seal_key, channel))
}

/// Checks a proof of possession of `card`'s seal key, made for `channel`.
pub fn verify_possession(card: &Card, channel: &ChannelId, armored: &str) -> Result<()> {
    let message = possession_message(&card.identity_key, &card.seal_key, channel);
    verify_in(POSSESSION_NAMESPACE, &card.seal_key, &message, armored)
}

/// Checks an armored SSHSIG over `message` by `seal_key` in [`NAMESPACE`], strictly. The checks
/// run in the order that gives the most useful error: the key, the format, the namespace, the
/// key in the signature, then the signature itself.
pub fn verify_signature(seal_key: &[u8; 32], message: &[u8], armored: &str) -> Result<()> {
    verify_in(NAMESPACE, seal_key, message, armored)
}

fn sign(identity: &Identity, namespace: &str, message: &[u8]) -> Result<String> {
    let key = PrivateKey::from(Ed25519Keypair::from_seed(identity.dangerous_seal_secret()));
    let sig =
        key.sign(namespace, HashAlg::Sha512, message).map_err(|e| AgreementError::Sign(e.to_string()))?;
    sig.to_pem(LineEnding::LF).map_err(|e| AgreementError::Sign(e.to_string()))
}

fn verify_in(namespace: &str, seal_key: &[u8; 32], message: &[u8], armored: &str) -> Result<()> {
    check_seal_key(seal_key).map_err(SignatureError::WeakKey)?;
    let sig = parse_signature(armored)?;
    if sig.namespace() != namespace {
        return Err(SignatureError::WrongNamespace(shorten(sig.namespace())).into());
    }
    if sig.public_key() != &ed25519_key_data(seal_key) || sig.algorithm() != Algorithm::Ed25519 {
        return Err(SignatureError::OtherKey.into());
    }
    let malformed = |e: String| AgreementError::from(SignatureError::Malformed(e));
    let signed =
        SshSig::signed_data(namespace, sig.hash_alg(), message).map_err(|e| malformed(e.to_string()))?;
    let signature = ed25519_dalek::Signature::from_slice(sig.signature_bytes())
        .map_err(|_| malformed("its Ed25519 signature is not 64 bytes".into()))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(seal_key)
        .map_err(|_| malformed("its key is not a valid Ed25519 key".into()))?;
    key.verify_strict(&signed, &signature).map_err(|_| SignatureError::TextMismatch.into())
}

pub(super) fn ed25519_key_data(seal_key: &[u8; 32]) -> KeyData {
    KeyData::Ed25519(Ed25519PublicKey(*seal_key))
}

pub(super) fn parse_signature(armored: &str) -> Result<SshSig> {
    if armored.len() > MAX_SIGNATURE {
        return Err(SignatureError::Malformed(format!("longer than {MAX_SIGNATURE} bytes")).into());
    }
    SshSig::from_pem(armored).map_err(|e| SignatureError::Malformed(e.to_string()).into())
}
