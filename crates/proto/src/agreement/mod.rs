//! Ratification: a proposal's text is fixed by its SHA-256, and each signatory signs a
//! [`Statement`] about it (channel, text hash, title, required sides, its own name, side and
//! identity key, date) with its seal in SSH signature format (SSHSIG, namespace [`NAMESPACE`]).
//! SSHSIG is used so that anyone can check an exported agreement with `ssh-keygen -Y verify` and
//! no Backchannel code; the encoding is the `ssh-key` crate's and the Ed25519 arithmetic
//! ed25519-dalek's strict verification, never ours. Weak (small-order) and non-canonical seal
//! keys are refused everywhere: in cards, when signing, verifying and exporting.
//!
//! The export is a folder (see [`Agreement::files`]); this module builds and checks its bytes,
//! and the caller reads and writes the files, so the core stays free of I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use backchannel_wire::hex_encode;
use serde::{Deserialize, Serialize};
use ssh_key::{HashAlg, PublicKey};

use crate::crypto::sha256;
use crate::identity::{Card, Identity, SealKeyProblem, check_seal_key, validate_label};
use crate::message::ChannelId;

mod ratification;
mod seal;
mod statement;

pub use ratification::{ProposalRef, Ratified};
pub use seal::{
    NAMESPACE, POSSESSION_NAMESPACE, possession_message, prove_possession, sign_statement, verify_possession,
    verify_signature, verify_statement,
};
use seal::{ed25519_key_data, parse_signature};
pub use statement::{MAX_STATEMENT, STATEMENT_FORMAT, Statement};

/// The manifest's format tag; a reader refuses any other, rather than guess at another layout.
/// Version 2: every signatory signs a statement (version 1 signed the bare text).
pub const FORMAT: &str = "backchannel-agreement/2";
/// File names in an export folder.
pub const TEXT_FILE: &str = "agreement.txt";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const ALLOWED_SIGNERS_FILE: &str = "allowed_signers";
/// Bounds on what a reader accepts, so a hostile folder cannot exhaust memory. Callers that read
/// files should stop one byte past these.
pub const MAX_TEXT: usize = 16 << 20;
pub const MAX_MANIFEST: usize = 1 << 20;
pub const MAX_ALLOWED_SIGNERS: usize = 64 << 10;
pub const MAX_SIGNATURE: usize = 16 << 10;
pub const MAX_SIGNATORIES: usize = 64;
pub const MAX_TITLE: usize = 200;
/// Longest principal or file name in an export.
const MAX_NAME: usize = 128;
/// Longest slug taken from one name or side, so principals stay readable.
const MAX_SLUG: usize = 32;

/// A signatory's statement file in an export: `PRINCIPAL.statement`, the bytes its `.sig` signs.
pub fn statement_file(principal: &str) -> String {
    format!("{principal}.statement")
}

/// A signatory's signature file in an export: `PRINCIPAL.sig`.
pub fn signature_file(principal: &str) -> String {
    format!("{principal}.sig")
}

/// Why one signature does not check out; phrased to follow "the signature" or "Bao's signature".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("is not a valid SSH signature ({0})")]
    Malformed(String),
    #[error("is for namespace {0:?}, not the one expected: it was made for another purpose")]
    WrongNamespace(String),
    #[error("was made by another key")]
    OtherKey,
    #[error("does not match what it should sign: the statement or the signature was changed")]
    TextMismatch,
    /// The key itself is refused (weak, not canonical, not a point): nothing under it counts.
    #[error("is under a refused key: {0}")]
    WeakKey(SealKeyProblem),
}

/// What can be wrong with an agreement or its export, as a sentence for the person checking it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgreementError {
    #[error("the signature {0}")]
    Signature(#[from] SignatureError),
    /// One signatory's signature fails; `problem` says how.
    #[error("{name}'s signature (side {side}) {problem}")]
    Signatory { name: String, side: String, problem: String },
    /// A signatory's seal key is weak, not canonical or not a point: the agreement is refused
    /// whatever its signatures say (under a weak key one signature fits every text).
    #[error("{name}'s seal key (side {side}) {key} is refused: {problem}")]
    RefusedKey { name: String, side: String, key: String, problem: SealKeyProblem },
    #[error("the text was changed after signing (sha256 {actual}, expected {expected})")]
    TextChanged { actual: String, expected: String },
    #[error("side {0} has not signed")]
    SideUnsigned(String),
    /// A file is missing, too large or unreadable.
    #[error("the agreement folder is incomplete or damaged: {0}")]
    Export(String),
    #[error("the manifest and allowed_signers disagree: {0}")]
    Disagreement(String),
    /// The manifest says something the signatories did not sign.
    #[error("the manifest does not say what was signed: {0}")]
    Unsigned(String),
    /// The agreement itself breaks a rule (a bad label, too many signatories, a shared key).
    #[error("invalid agreement: {0}")]
    Invalid(String),
    #[error("could not sign: {0}")]
    Sign(String),
}

pub type Result<T, E = AgreementError> = std::result::Result<T, E>;

/// sha256 of the text: fixes a proposal, so every signatory signs about the same bytes.
pub fn text_hash(text: &[u8]) -> [u8; 32] {
    sha256(&[text])
}

/// The OpenSSH public key line for a seal key: "ssh-ed25519 AAAA... comment". The comment may
/// not hold control characters, which would break the one-key-per-line files it goes into.
pub fn seal_public_key_openssh(seal_key: &[u8; 32], comment: &str) -> Result<String> {
    if comment.chars().any(char::is_control) {
        return Err(AgreementError::Invalid("a key comment contains control characters".into()));
    }
    PublicKey::new(ed25519_key_data(seal_key), comment)
        .to_openssh()
        .map_err(|e| AgreementError::Invalid(format!("cannot encode a seal key: {e}")))
}

/// Parses "ssh-ed25519 AAAA... [comment]" into the raw key; other key types are refused.
fn parse_ed25519_line(line: &str) -> Option<[u8; 32]> {
    match PublicKey::from_openssh(line).ok()?.key_data() {
        ssh_key::public::KeyData::Ed25519(key) => Some(key.0),
        _ => None,
    }
}

/// One signature on an agreement: who signed, and its signature over its [`Statement`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signatory {
    pub name: String,
    pub side: String,
    /// The signer's Olm identity key, as its statement names it.
    pub identity_key: [u8; 32],
    pub seal_key: [u8; 32],
    /// When it signed (seconds since the epoch, its own clock), as its statement says.
    pub signed_at: u64,
    /// Armored SSHSIG over the statement's bytes.
    pub signature: String,
}

/// A proposal's text and the signatures collected on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// The channel the proposal was made in.
    pub channel: ChannelId,
    pub title: String,
    pub text: Vec<u8>,
    /// Sides of which at least one party must sign before the agreement holds.
    pub required_sides: Vec<String>,
    pub signatories: Vec<Signatory>,
    /// [`text_hash`] of the text as proposed; kept apart from `text` so that a changed text shows.
    pub proposal_id: [u8; 32],
}

/// What [`Agreement::verify`] found. Everything here but `principals` is signed by every
/// signatory (in its statement); `principals` and the manifest's key comments are the folder's
/// own words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAgreement {
    pub channel: ChannelId,
    pub title: String,
    pub proposal_id: [u8; 32],
    /// As signed: sorted.
    pub required_sides: Vec<String>,
    pub signatories: Vec<VerifiedSignatory>,
}

/// One valid signature; `fingerprint` is what `ssh-keygen` prints for the key ("SHA256:...").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignatory {
    pub name: String,
    pub side: String,
    pub identity_key: [u8; 32],
    pub signed_at: u64,
    /// Not signed: the name allowed_signers and the file names use.
    pub principal: String,
    /// The seal key, for the caller to match against the cards it knows: the export alone
    /// cannot say whose key this really is.
    pub seal_key: [u8; 32],
    pub fingerprint: String,
}

impl fmt::Display for VerifiedAgreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "agreement \"{}\" holds", self.title)?;
        writeln!(f, "signed by every signatory, in its statement:")?;
        writeln!(f, "  title \"{}\"", self.title)?;
        writeln!(f, "  text sha256 {}", hex(&self.proposal_id))?;
        writeln!(f, "  channel {}", hex(&self.channel.0))?;
        writeln!(f, "  required sides: {}", self.required_sides.join(", "))?;
        for s in &self.signatories {
            writeln!(
                f,
                "  {} ({}) signed on {}, identity key {}, with seal {}",
                s.name,
                s.side,
                statement::date(s.signed_at),
                hex(&s.identity_key),
                s.fingerprint
            )?;
        }
        writeln!(f, "not signed (the folder's own words, which anyone could write):")?;
        let principals: Vec<&str> = self.signatories.iter().map(|s| s.principal.as_str()).collect();
        writeln!(f, "  principal names in allowed_signers and file names: {}", principals.join(", "))?;
        writeln!(f, "  whose seal each key is: the folder cannot prove it; compare the fingerprints")?;
        Ok(())
    }
}

/// The manifest.json layout; unknown fields are refused, as the format tag carries versions.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    channel: String,
    title: String,
    text_file: String,
    text_sha256: String,
    required_sides: Vec<String>,
    signatories: Vec<ManifestSignatory>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestSignatory {
    name: String,
    side: String,
    principal: String,
    public_key: String,
    statement_file: String,
    sig_file: String,
}

impl Agreement {
    /// A proposal of `channel` with no signatures yet, fixed by the hash of `text`.
    pub fn new(channel: ChannelId, title: &str, text: Vec<u8>, required_sides: Vec<String>) -> Self {
        let proposal_id = text_hash(&text);
        Self { channel, title: title.to_owned(), text, required_sides, signatories: Vec::new(), proposal_id }
    }

    /// The statement `signer` makes (or made) about this agreement at `signed_at`.
    pub fn statement(&self, signer: &Card, signed_at: u64) -> Result<Statement> {
        Statement::new(self.channel, self.proposal_id, &self.title, &self.required_sides, signer, signed_at)
    }

    /// The statement a signatory's signature covers.
    pub fn statement_of(&self, s: &Signatory) -> Result<Statement> {
        let card = Card {
            name: s.name.clone(),
            side: s.side.clone(),
            identity_key: s.identity_key,
            device_key: [0; 32],
            seal_key: s.seal_key,
        };
        self.statement(&card, s.signed_at)
    }

    /// The identity's signature on this agreement, made at `signed_at` (seconds since the epoch).
    pub fn sign(&self, identity: &Identity, signed_at: u64) -> Result<Signatory> {
        let card = identity.card();
        let statement = self.statement(&card, signed_at)?;
        Ok(Signatory {
            signature: sign_statement(identity, &statement)?,
            name: card.name,
            side: card.side,
            identity_key: card.identity_key,
            seal_key: card.seal_key,
            signed_at,
        })
    }

    /// Each signatory's principal in allowed_signers: "name@side" slugged to ASCII lowercase
    /// letters, digits and '-' (allowed_signers splits on whitespace and commas, and `ssh-keygen
    /// -I` must not mistake it for an option), with "-2", "-3"... to keep it unique.
    pub fn principals(&self) -> Vec<String> {
        let mut taken = BTreeSet::new();
        let mut out = Vec::with_capacity(self.signatories.len());
        for s in &self.signatories {
            let base = format!("{}@{}", slug(&s.name, "party"), slug(&s.side, "side"));
            let mut principal = base.clone();
            let mut n = 2;
            while !taken.insert(principal.clone()) {
                principal = format!("{base}-{n}");
                n += 1;
            }
            out.push(principal);
        }
        out
    }

    /// The export folder as (file name, bytes): the text byte for byte, `allowed_signers` (one
    /// line per signatory, restricted to [`NAMESPACE`]), per signatory `PRINCIPAL.statement` (what
    /// it signed) and `PRINCIPAL.sig`, and `manifest.json`, which ties names and sides to
    /// principals for `backchannel verify`. Refused when a seal key is weak or not canonical:
    /// `ssh-keygen` would accept such a signature, so no such folder is ever written.
    pub fn files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.check_rules()?;
        let mut allowed = String::new();
        let mut entries = Vec::with_capacity(self.signatories.len());
        let mut signed = Vec::with_capacity(2 * self.signatories.len());
        for (s, principal) in self.signatories.iter().zip(self.principals()) {
            let bare_key = seal_public_key_openssh(&s.seal_key, "")?;
            allowed.push_str(&format!("{principal} namespaces=\"{NAMESPACE}\" {}\n", bare_key.trim_end()));
            let (statement_file, sig_file) = (statement_file(&principal), signature_file(&principal));
            signed.push((statement_file.clone(), self.statement_of(s)?.to_bytes()));
            signed.push((sig_file.clone(), s.signature.clone().into_bytes()));
            entries.push(ManifestSignatory {
                name: s.name.clone(),
                side: s.side.clone(),
                principal,
                public_key: seal_public_key_openssh(&s.seal_key, &format!("{} ({})", s.name, s.side))?,
                statement_file,
                sig_file,
            });
        }
        let manifest = self.manifest(entries)?;
        let mut files = vec![
            (TEXT_FILE.to_owned(), self.text.clone()),
            (ALLOWED_SIGNERS_FILE.to_owned(), allowed.into_bytes()),
            (MANIFEST_FILE.to_owned(), manifest),
        ];
        files.extend(signed);
        Ok(files)
    }

    fn manifest(&self, signatories: Vec<ManifestSignatory>) -> Result<Vec<u8>> {
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            channel: hex(&self.channel.0),
            title: self.title.clone(),
            text_file: TEXT_FILE.to_owned(),
            text_sha256: hex(&self.proposal_id),
            required_sides: self.required_sides.clone(),
            signatories,
        };
        let mut bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| AgreementError::Invalid(format!("cannot write the manifest: {e}")))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Reads an export back; `read(name)` returns a file's bytes, or `None` if it is missing.
    /// Checks the folder's shape (sizes, names, the manifest against allowed_signers, and the
    /// manifest against every signed statement: a narrowed or retitled manifest is refused here)
    /// but not the signatures: that is [`Agreement::verify`]'s job, so it can name who failed.
    pub fn from_files(mut read: impl FnMut(&str) -> Option<Vec<u8>>) -> Result<Agreement> {
        let manifest = parse_manifest(&read_bounded(&mut read, MANIFEST_FILE, MAX_MANIFEST)?)?;
        let allowed =
            parse_allowed_signers(&read_bounded(&mut read, ALLOWED_SIGNERS_FILE, MAX_ALLOWED_SIGNERS)?)?;
        let listed: BTreeSet<&str> = manifest.signatories.iter().map(|s| s.principal.as_str()).collect();
        if let Some(extra) = allowed.keys().find(|p| !listed.contains(p.as_str())) {
            return Err(AgreementError::Disagreement(format!(
                "allowed_signers lists {extra}, who is not in the manifest"
            )));
        }
        let channel = unhex::<16>(&manifest.channel)
            .map(ChannelId)
            .ok_or_else(|| AgreementError::Export("the manifest's channel is not 32 hex digits".into()))?;
        let proposal_id = unhex::<32>(&manifest.text_sha256).ok_or_else(|| {
            AgreementError::Export("the manifest's text_sha256 is not 64 hex digits".into())
        })?;
        let mut signatories = Vec::with_capacity(manifest.signatories.len());
        let mut statements = Vec::with_capacity(manifest.signatories.len());
        let mut principals = Vec::with_capacity(manifest.signatories.len());
        for entry in &manifest.signatories {
            let (signatory, statement) = read_signatory(entry, &allowed, &mut read)?;
            signatories.push(signatory);
            statements.push(statement);
            principals.push(entry.principal.clone());
        }
        let text = read_bounded(&mut read, &manifest.text_file, MAX_TEXT)?;
        let agreement = Agreement {
            channel,
            title: manifest.title,
            text,
            required_sides: manifest.required_sides,
            signatories,
            proposal_id,
        };
        agreement.check_rules()?;
        // Principals follow from names and sides, so a name cannot be edited apart from the
        // principal that ssh-keygen checks.
        if agreement.principals() != principals {
            return Err(AgreementError::Export(
                "the manifest's principals do not follow from its names and sides".into(),
            ));
        }
        for (s, (statement, bytes)) in agreement.signatories.iter().zip(&statements) {
            agreement.check_signed(s, statement, bytes)?;
        }
        Ok(agreement)
    }

    /// The manifest must say exactly what `s` signed: the same channel, text, title and
    /// required sides; `bytes` (the statement file) must be the statement the manifest implies.
    fn check_signed(&self, s: &Signatory, signed: &Statement, bytes: &[u8]) -> Result<()> {
        let unsigned = |what: String| Err(AgreementError::Unsigned(what));
        let mut sides = self.required_sides.clone();
        sides.sort();
        if signed.title != self.title {
            return unsigned(format!(
                "its title is {:?}, but {} signed the title {:?}",
                shorten(&self.title),
                s.name,
                shorten(&signed.title)
            ));
        }
        if signed.required_sides != sides {
            return unsigned(format!(
                "it requires the sides {}, but {} signed for the sides {}",
                sides.join(", "),
                s.name,
                signed.required_sides.join(", ")
            ));
        }
        if signed.text_sha256 != self.proposal_id {
            return unsigned(format!("its text sha256 is not the one {} signed", s.name));
        }
        if signed.channel != self.channel {
            return unsigned(format!("its channel is not the one {} signed in", s.name));
        }
        if self.statement_of(s)?.to_bytes() != bytes {
            return unsigned(format!("{}'s statement does not match the manifest", s.name));
        }
        Ok(())
    }

    /// Full check: every seal key is acceptable, the text is the one proposed, every required
    /// side signed, and every signature is valid (strictly) under its signatory's seal over the
    /// statement the agreement implies for it (for an export: the key allowed_signers lists for
    /// its principal, which [`Agreement::from_files`] matched against the manifest).
    ///
    /// Title, text hash, channel, required sides and each signatory's name, side, identity key
    /// and date are signed. Who really holds each seal is not: it is settled by comparing the
    /// report's seal keys with the cards the verifier trusts (as `ssh-keygen` trusts its
    /// allowed_signers).
    pub fn verify(&self) -> Result<VerifiedAgreement> {
        self.check_rules()?;
        let actual = text_hash(&self.text);
        if actual != self.proposal_id {
            return Err(AgreementError::TextChanged {
                actual: hex(&actual),
                expected: hex(&self.proposal_id),
            });
        }
        if self.required_sides.is_empty() {
            return Err(AgreementError::Invalid("it names no side that must sign".into()));
        }
        if let Some(side) =
            self.required_sides.iter().find(|r| !self.signatories.iter().any(|s| &s.side == *r))
        {
            return Err(AgreementError::SideUnsigned(side.clone()));
        }
        self.check_distinct_keys()?;
        let mut signed = Vec::with_capacity(self.signatories.len());
        for (s, principal) in self.signatories.iter().zip(self.principals()) {
            let statement = self.statement_of(s).map_err(|e| self.signatory_error(s, e))?;
            verify_statement(&s.seal_key, &statement, &s.signature)
                .map_err(|e| self.signatory_error(s, e))?;
            let fingerprint = PublicKey::from(ed25519_key_data(&s.seal_key)).fingerprint(HashAlg::Sha256);
            signed.push(VerifiedSignatory {
                name: s.name.clone(),
                side: s.side.clone(),
                identity_key: s.identity_key,
                signed_at: s.signed_at,
                principal,
                seal_key: s.seal_key,
                fingerprint: fingerprint.to_string(),
            });
        }
        let mut required_sides = self.required_sides.clone();
        required_sides.sort();
        Ok(VerifiedAgreement {
            channel: self.channel,
            title: self.title.clone(),
            proposal_id: self.proposal_id,
            required_sides,
            signatories: signed,
        })
    }

    /// Turns a signature failure into a sentence naming the signatory (and, for a foreign key,
    /// whose key it was if it belongs to another signatory).
    fn signatory_error(&self, s: &Signatory, e: AgreementError) -> AgreementError {
        let problem = match e {
            AgreementError::Signature(SignatureError::OtherKey) => match self.signer_of(&s.signature) {
                Some(other) => format!("was made with {other}'s key, not {}'s", s.name),
                None => "was made by a key not in allowed_signers".to_owned(),
            },
            AgreementError::Signature(inner) => inner.to_string(),
            other => other.to_string(),
        };
        AgreementError::Signatory { name: s.name.clone(), side: s.side.clone(), problem }
    }

    /// The signatory whose seal made `armored`, if any.
    fn signer_of(&self, armored: &str) -> Option<&str> {
        let sig = parse_signature(armored).ok()?;
        let found = self.signatories.iter().find(|s| sig.public_key() == &ed25519_key_data(&s.seal_key))?;
        Some(&found.name)
    }

    /// One seal, one signatory: otherwise one party could stand in for two sides.
    fn check_distinct_keys(&self) -> Result<()> {
        let mut seen: BTreeMap<[u8; 32], &str> = BTreeMap::new();
        for s in &self.signatories {
            if let Some(first) = seen.insert(s.seal_key, &s.name) {
                return Err(AgreementError::Invalid(format!("{first} and {} share one seal key", s.name)));
            }
        }
        Ok(())
    }

    /// The limits a reader enforces, applied to the writer too, so every export can be read back;
    /// and no weak or non-canonical seal key, so no export holds a signature that fits any text.
    fn check_rules(&self) -> Result<()> {
        let invalid = |what: String| Err(AgreementError::Invalid(what));
        if self.text.len() > MAX_TEXT {
            return invalid(format!("the text is longer than {MAX_TEXT} bytes"));
        }
        check_title(&self.title)?;
        if self.signatories.len() > MAX_SIGNATORIES || self.required_sides.len() > MAX_SIGNATORIES {
            return invalid(format!("more than {MAX_SIGNATORIES} signatories or sides"));
        }
        let mut sides = BTreeSet::new();
        for side in &self.required_sides {
            check_label("required side", side)?;
            if !sides.insert(side) {
                return invalid(format!("side {side} is required twice"));
            }
        }
        for s in &self.signatories {
            check_label("signatory name", &s.name)?;
            check_label("signatory side", &s.side)?;
            check_seal_key(&s.seal_key).map_err(|problem| AgreementError::RefusedKey {
                name: shorten(&s.name),
                side: shorten(&s.side),
                key: format!("ssh-ed25519 {}", hex(&s.seal_key)),
                problem,
            })?;
        }
        Ok(())
    }
}

pub(crate) fn check_title(title: &str) -> Result<()> {
    let hidden = title.chars().any(crate::identity::is_hidden_or_control);
    if title.trim().is_empty() || title.len() > MAX_TITLE || hidden {
        return Err(AgreementError::Invalid(format!(
            "the title must be 1 to {MAX_TITLE} bytes without control, bidi or zero-width characters"
        )));
    }
    Ok(())
}

pub(crate) fn check_label(what: &str, label: &str) -> Result<()> {
    validate_label(label).map_err(|e| AgreementError::Invalid(format!("a {what} {e}: {:?}", shorten(label))))
}

/// At most 64 characters of untrusted text, for error messages.
pub(crate) fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

/// ASCII lowercase letters and digits of `label`, other runs becoming one '-'; `fallback` if
/// nothing is left (a name in another script).
fn slug(label: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in label.chars().flat_map(char::to_lowercase) {
        if out.len() >= MAX_SLUG {
            break;
        }
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() { fallback.to_owned() } else { out.to_owned() }
}

/// A principal as [`Agreement::principals`] makes them: safe in allowed_signers and on a
/// command line (starts with a letter or digit).
fn is_safe_principal(p: &str) -> bool {
    p.len() <= MAX_NAME
        && p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_' | '@'))
}

/// A file name that stays inside the folder: no separators, no "..", no hidden files.
fn is_plain_file_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !name.contains("..")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '@'))
}

fn read_bounded(read: &mut impl FnMut(&str) -> Option<Vec<u8>>, name: &str, max: usize) -> Result<Vec<u8>> {
    let bytes = read(name).ok_or_else(|| AgreementError::Export(format!("{name} is missing")))?;
    if bytes.len() > max {
        return Err(AgreementError::Export(format!("{name} is larger than {max} bytes")));
    }
    Ok(bytes)
}

fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    let export = AgreementError::Export;
    let m: Manifest =
        serde_json::from_slice(bytes).map_err(|e| export(format!("{MANIFEST_FILE} does not parse: {e}")))?;
    if m.format != FORMAT {
        return Err(export(format!(
            "{MANIFEST_FILE} has format {:?}, expected {FORMAT:?}",
            shorten(&m.format)
        )));
    }
    if !is_plain_file_name(&m.text_file) {
        return Err(export(format!(
            "the text file name {:?} is not a plain file name",
            shorten(&m.text_file)
        )));
    }
    if m.signatories.len() > MAX_SIGNATORIES {
        return Err(export(format!("more than {MAX_SIGNATORIES} signatories")));
    }
    let mut principals = BTreeSet::new();
    for s in &m.signatories {
        if !is_safe_principal(&s.principal) || !principals.insert(s.principal.as_str()) {
            return Err(export(format!("principal {:?} is unsafe or repeated", shorten(&s.principal))));
        }
        for file in [&s.sig_file, &s.statement_file] {
            if !is_plain_file_name(file) || file == &m.text_file {
                return Err(export(format!("file name {:?} is not a plain file name", shorten(file))));
            }
        }
    }
    Ok(m)
}

/// Principal → seal key, from lines `PRINCIPAL namespaces="backchannel-agreement" ssh-ed25519 AAAA...`.
/// Stricter than `ssh-keygen`: only the layout [`Agreement::files`] writes is accepted.
fn parse_allowed_signers(bytes: &[u8]) -> Result<BTreeMap<String, [u8; 32]>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| AgreementError::Export(format!("{ALLOWED_SIGNERS_FILE} is not UTF-8 text")))?;
    let mut keys = BTreeMap::new();
    let lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    for (n, line) in lines.enumerate() {
        if n >= MAX_SIGNATORIES {
            return Err(AgreementError::Export(format!("{ALLOWED_SIGNERS_FILE} has too many lines")));
        }
        let (principal, key) = parse_allowed_signer(line).ok_or_else(|| {
            AgreementError::Export(format!(
                "{ALLOWED_SIGNERS_FILE} line {:?} is not in the form \
                PRINCIPAL namespaces=\"{NAMESPACE}\" ssh-ed25519 KEY",
                shorten(line)
            ))
        })?;
        if keys.insert(principal.to_owned(), key).is_some() {
            return Err(AgreementError::Export(format!("{ALLOWED_SIGNERS_FILE} lists {principal} twice")));
        }
    }
    Ok(keys)
}

fn parse_allowed_signer(line: &str) -> Option<(&str, [u8; 32])> {
    let mut words = line.split_whitespace();
    let (principal, options) = (words.next()?, words.next()?);
    let key_line = format!("{} {}", words.next()?, words.next()?);
    let namespaces = format!("namespaces=\"{NAMESPACE}\"");
    if !is_safe_principal(principal) || options != namespaces {
        return None;
    }
    Some((principal, parse_ed25519_line(&key_line)?))
}

fn read_signatory(
    entry: &ManifestSignatory,
    allowed: &BTreeMap<String, [u8; 32]>,
    read: &mut impl FnMut(&str) -> Option<Vec<u8>>,
) -> Result<(Signatory, (Statement, Vec<u8>))> {
    let who = format!("{} ({})", shorten(&entry.name), entry.principal);
    let listed = parse_ed25519_line(&entry.public_key).ok_or_else(|| {
        AgreementError::Export(format!("the manifest's key for {who} is not an ssh-ed25519 key"))
    })?;
    let Some(&seal_key) = allowed.get(&entry.principal) else {
        return Err(AgreementError::Disagreement(format!(
            "{who} is in the manifest but not in allowed_signers"
        )));
    };
    if listed != seal_key {
        return Err(AgreementError::Disagreement(format!("they list different keys for {who}")));
    }
    let statement_bytes = read_bounded(read, &entry.statement_file, MAX_STATEMENT)?;
    let statement = Statement::parse(&statement_bytes)
        .map_err(|e| AgreementError::Export(format!("{}: {e}", entry.statement_file)))?;
    if statement.signer_name != entry.name || statement.signer_side != entry.side {
        return Err(AgreementError::Unsigned(format!(
            "it names {} ({}), but the statement in {} was signed by {} ({})",
            shorten(&entry.name),
            shorten(&entry.side),
            entry.statement_file,
            shorten(&statement.signer_name),
            shorten(&statement.signer_side)
        )));
    }
    let bytes = read_bounded(read, &entry.sig_file, MAX_SIGNATURE)?;
    let signature = String::from_utf8(bytes)
        .map_err(|_| AgreementError::Export(format!("{} is not text", entry.sig_file)))?;
    let signatory = Signatory {
        name: entry.name.clone(),
        side: entry.side.clone(),
        identity_key: statement.signer_identity_key,
        seal_key,
        signed_at: statement.signed_at,
        signature,
    };
    Ok((signatory, (statement, statement_bytes)))
}

fn hex(bytes: &[u8]) -> String {
    hex_encode(bytes)
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const TEXT: &[u8] = b"Article 1. The parties agree to a ceasefire from 06:00 on 1 May.\n";

    fn alice() -> Identity {
        Identity::generate("Alice", "Delegation A").unwrap()
    }

    fn bao() -> Identity {
        Identity::generate("Bao", "Delegation B").unwrap()
    }

    const AT: u64 = 1_800_000_000;

    fn proposal() -> Agreement {
        let sides = vec!["Delegation A".to_owned(), "Delegation B".to_owned()];
        Agreement::new(ChannelId([5; 16]), "Ceasefire", TEXT.to_vec(), sides)
    }

    fn signed(signers: &[&Identity]) -> Agreement {
        let mut a = proposal();
        a.signatories = signers.iter().map(|id| a.sign(id, AT).unwrap()).collect();
        a
    }

    /// `id`'s signature over its statement on [`proposal`].
    fn ratify(id: &Identity) -> (Vec<u8>, String) {
        let statement = proposal().statement(&id.card(), AT).unwrap();
        (statement.to_bytes(), sign_statement(id, &statement).unwrap())
    }

    fn as_map(files: Vec<(String, Vec<u8>)>) -> HashMap<String, Vec<u8>> {
        files.into_iter().collect()
    }

    fn read_back(files: &HashMap<String, Vec<u8>>) -> Result<Agreement> {
        Agreement::from_files(|name| files.get(name).cloned())
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let id = alice();
        let (statement, sig) = ratify(&id);
        assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----\n"), "{sig}");
        verify_signature(&id.seal_public_key(), &statement, &sig).unwrap();
        assert_eq!(text_hash(b"abc")[..4], [0xba, 0x78, 0x16, 0xbf], "plain sha256");
        let other = Statement::new(
            ChannelId([5; 16]),
            [0; 32],
            "Ceasefire",
            &proposal().required_sides,
            &id.card(),
            AT,
        )
        .unwrap();
        assert!(sign_statement(&bao(), &other).is_err(), "a statement naming another signer is not signed");
    }

    #[test]
    fn one_changed_byte_fails_as_text_mismatch() {
        let id = alice();
        let (mut statement, sig) = ratify(&id);
        statement[10] ^= 1;
        assert_eq!(
            verify_signature(&id.seal_public_key(), &statement, &sig),
            Err(SignatureError::TextMismatch.into())
        );
    }

    #[test]
    fn another_seal_fails_as_other_key() {
        let (statement, sig) = ratify(&bao());
        let err = verify_signature(&alice().seal_public_key(), &statement, &sig).unwrap_err();
        assert_eq!(err, SignatureError::OtherKey.into());
        assert_eq!(err.to_string(), "the signature was made by another key");
    }

    #[test]
    fn wrong_namespace_fails() {
        use ssh_key::private::Ed25519Keypair;
        use ssh_key::{LineEnding, PrivateKey};
        let id = alice();
        let key = PrivateKey::from(Ed25519Keypair::from_seed(id.dangerous_seal_secret()));
        let (statement, _) = ratify(&id);
        for ns in ["git", POSSESSION_NAMESPACE] {
            let sig = key.sign(ns, HashAlg::Sha512, &statement).unwrap().to_pem(LineEnding::LF).unwrap();
            assert_eq!(
                verify_signature(&id.seal_public_key(), &statement, &sig),
                Err(SignatureError::WrongNamespace(ns.into()).into())
            );
        }
        let pop = prove_possession(&id, &ChannelId([5; 16])).unwrap();
        let message = possession_message(&id.card().identity_key, &id.seal_public_key(), &ChannelId([5; 16]));
        assert!(
            verify_signature(&id.seal_public_key(), &message, &pop).is_err(),
            "a proof is no ratification"
        );
        verify_possession(&id.card(), &ChannelId([5; 16]), &pop).unwrap();
        assert!(
            verify_possession(&id.card(), &ChannelId([6; 16]), &pop).is_err(),
            "made for another channel"
        );
        assert!(verify_possession(&bao().card(), &ChannelId([5; 16]), &pop).is_err());
    }

    #[test]
    fn malformed_signatures_are_errors() {
        let key = alice().seal_public_key();
        let (_, good) = ratify(&alice());
        for bad in
            ["", "hello", "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n", &good[..60]]
        {
            let err = verify_signature(&key, TEXT, bad).unwrap_err();
            assert!(matches!(err, AgreementError::Signature(SignatureError::Malformed(_))), "{bad:?}: {err}");
        }
    }

    #[test]
    fn public_key_line_is_openssh() {
        let key = alice().seal_public_key();
        let line = seal_public_key_openssh(&key, "Alice (Delegation A)").unwrap();
        assert!(line.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"), "{line}");
        assert!(line.ends_with(" Alice (Delegation A)"), "{line}");
        assert_eq!(parse_ed25519_line(&line), Some(key));
        assert!(seal_public_key_openssh(&key, "two\nlines").is_err());
    }

    #[test]
    fn verify_reports_who_signed() {
        let (a, b) = (alice(), bao());
        let report = signed(&[&a, &b]).verify().unwrap();
        let who: Vec<_> =
            report.signatories.iter().map(|s| (s.name.as_str(), s.principal.as_str())).collect();
        assert_eq!(who, [("Alice", "alice@delegation-a"), ("Bao", "bao@delegation-b")]);
        assert!(report.signatories[0].fingerprint.starts_with("SHA256:"));
        assert!(report.to_string().contains("Bao (Delegation B)"), "{report}");
    }

    #[test]
    fn changed_text_is_named() {
        let mut agreement = signed(&[&alice(), &bao()]);
        agreement.text[0] = b'X';
        let err = agreement.verify().unwrap_err();
        assert!(matches!(err, AgreementError::TextChanged { .. }), "{err}");
        assert!(err.to_string().starts_with("the text was changed after signing (sha256 "), "{err}");
    }

    #[test]
    fn missing_side_is_named() {
        let err = signed(&[&alice()]).verify().unwrap_err();
        assert_eq!(err, AgreementError::SideUnsigned("Delegation B".into()));
        assert_eq!(err.to_string(), "side Delegation B has not signed");
    }

    #[test]
    fn signature_by_another_seal_is_named() {
        let (a, b) = (alice(), bao());
        let mut agreement = signed(&[&a, &b]);
        agreement.signatories[1].signature = ratify(&alice()).1;
        let err = agreement.verify().unwrap_err().to_string();
        assert_eq!(err, "Bao's signature (side Delegation B) was made by a key not in allowed_signers");
        agreement.signatories[1].signature = agreement.signatories[0].signature.clone();
        let err = agreement.verify().unwrap_err().to_string();
        assert_eq!(err, "Bao's signature (side Delegation B) was made with Alice's key, not Bao's");
    }

    #[test]
    fn shared_seal_key_is_refused() {
        let a = alice();
        let mut agreement = signed(&[&a, &bao()]);
        agreement.signatories.push(Signatory { name: "Al".into(), ..agreement.signatories[0].clone() });
        assert!(
            matches!(agreement.verify(), Err(AgreementError::Invalid(e)) if e.contains("share one seal key"))
        );
    }

    #[test]
    fn export_round_trip() {
        let agreement = signed(&[&alice(), &bao()]);
        let files = agreement.files().unwrap();
        let names: Vec<_> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "agreement.txt",
                "allowed_signers",
                "manifest.json",
                "alice@delegation-a.statement",
                "alice@delegation-a.sig",
                "bao@delegation-b.statement",
                "bao@delegation-b.sig"
            ]
        );
        let files = as_map(files);
        assert_eq!(files["agreement.txt"], TEXT);
        let allowed = String::from_utf8(files["allowed_signers"].clone()).unwrap();
        assert!(
            allowed.starts_with("alice@delegation-a namespaces=\"backchannel-agreement\" ssh-ed25519 AAAA")
        );
        assert_eq!(allowed.lines().count(), 2);
        let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(manifest["format"], "backchannel-agreement/2");
        let statement = Statement::parse(&files["bao@delegation-b.statement"]).unwrap();
        assert_eq!(statement, agreement.statement_of(&agreement.signatories[1]).unwrap());
        verify_statement(&agreement.signatories[1].seal_key, &statement, &agreement.signatories[1].signature)
            .unwrap();
        assert_eq!(manifest["text_sha256"], hex(&text_hash(TEXT)));
        assert_eq!(manifest["signatories"][1]["sig_file"], "bao@delegation-b.sig");
        let back = read_back(&files).unwrap();
        assert_eq!(back, agreement);
        back.verify().unwrap();
    }

    #[test]
    fn manifest_and_allowed_signers_must_agree() {
        let agreement = signed(&[&alice(), &bao()]);
        let mut files = as_map(agreement.files().unwrap());
        let stranger = seal_public_key_openssh(&alice().seal_public_key(), "").unwrap();
        let allowed = String::from_utf8(files["allowed_signers"].clone()).unwrap();
        let mut lines: Vec<String> = allowed.lines().map(str::to_owned).collect();
        lines[1] = format!("bao@delegation-b namespaces=\"backchannel-agreement\" {stranger}");
        files.insert("allowed_signers".into(), lines.join("\n").into_bytes());
        let err = read_back(&files).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the manifest and allowed_signers disagree: they list different keys for Bao (bao@delegation-b)"
        );
        lines[1] = lines[1].replace("bao@", "eve@");
        files.insert("allowed_signers".into(), lines.join("\n").into_bytes());
        assert!(matches!(read_back(&files), Err(AgreementError::Disagreement(_))));
        lines.truncate(1);
        files.insert("allowed_signers".into(), lines.join("\n").into_bytes());
        let err = read_back(&files).unwrap_err().to_string();
        assert!(
            err.contains("Bao (bao@delegation-b) is in the manifest but not in allowed_signers"),
            "{err}"
        );
    }

    #[test]
    fn key_swapped_in_both_files_is_caught() {
        let files = as_map(signed(&[&alice(), &bao()]).files().unwrap());
        let bao_key = |f: &HashMap<String, Vec<u8>>| {
            let allowed = String::from_utf8(f["allowed_signers"].clone()).unwrap();
            allowed.lines().nth(1).unwrap().split(' ').nth(3).unwrap().to_owned()
        };
        let (old, new) = (bao_key(&files), bao_key(&as_map(signed(&[&alice(), &bao()]).files().unwrap())));
        let mut forged = files.clone();
        for name in ["allowed_signers", "manifest.json"] {
            let content = String::from_utf8(files[name].clone()).unwrap();
            forged.insert(name.into(), content.replace(&old, &new).into_bytes());
        }
        let err = read_back(&forged).unwrap().verify().unwrap_err().to_string();
        assert_eq!(err, "Bao's signature (side Delegation B) was made by a key not in allowed_signers");
    }

    #[test]
    fn changed_signature_byte_is_caught() {
        let mut files = signed(&[&alice(), &bao()]).files().unwrap();
        assert_eq!(files[6].0, "bao@delegation-b.sig");
        let sig = &mut files[6].1;
        let i = sig.len() / 2;
        sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
        let err = read_back(&as_map(files)).unwrap().verify().unwrap_err();
        assert!(matches!(&err, AgreementError::Signatory { name, .. } if name == "Bao"), "{err}");
    }

    #[test]
    fn changed_text_file_is_caught_after_reading() {
        let mut files = as_map(signed(&[&alice(), &bao()]).files().unwrap());
        files.get_mut("agreement.txt").unwrap().push(b' ');
        let err = read_back(&files).unwrap().verify().unwrap_err();
        assert!(matches!(err, AgreementError::TextChanged { .. }), "{err}");
    }

    #[test]
    fn unsafe_names_and_oversized_files_are_refused() {
        let files = as_map(signed(&[&alice(), &bao()]).files().unwrap());
        let manifest = String::from_utf8(files["manifest.json"].clone()).unwrap();
        for (from, to) in [
            ("\"bao@delegation-b.sig\"", "\"../bao.sig\""),
            ("\"bao@delegation-b.sig\"", "\"/etc/passwd\""),
            ("\"agreement.txt\"", "\"..\""),
            ("\"principal\": \"bao@delegation-b\"", "\"principal\": \"bao delegation-b\""),
            ("\"principal\": \"bao@delegation-b\"", "\"principal\": \"alice@delegation-a\""),
            ("backchannel-agreement/2", "backchannel-agreement/1"),
            ("\"bao@delegation-b.statement\"", "\"agreement.txt\""),
        ] {
            let mut bad = files.clone();
            bad.insert("manifest.json".into(), manifest.replacen(from, to, 1).into_bytes());
            assert!(matches!(read_back(&bad), Err(AgreementError::Export(_))), "{to}");
        }
        let mut renamed = files.clone();
        renamed.insert(
            "manifest.json".into(),
            manifest.replacen("\"name\": \"Bao\"", "\"name\": \"Eve\"", 1).into_bytes(),
        );
        assert!(matches!(read_back(&renamed), Err(AgreementError::Unsigned(_))));
        let mut big = files.clone();
        big.insert("agreement.txt".into(), vec![b'a'; MAX_TEXT + 1]);
        assert!(matches!(read_back(&big), Err(AgreementError::Export(e)) if e.contains("larger than")));
        let mut missing = files;
        missing.remove("bao@delegation-b.sig");
        assert_eq!(
            read_back(&missing),
            Err(AgreementError::Export("bao@delegation-b.sig is missing".into()))
        );
    }

    #[test]
    fn principals_are_safe_and_unique() {
        let mut a = signed(&[]);
        let sig = Signatory {
            name: String::new(),
            side: String::new(),
            identity_key: [0; 32],
            seal_key: [0; 32],
            signed_at: 0,
            signature: String::new(),
        };
        for (name, side) in
            [("Bao", "Delegation B"), ("BAO", "delegation b"), ("Zhōu Ēnlái", "中国"), ("-x, \"y\"", "A")]
        {
            a.signatories.push(Signatory { name: name.into(), side: side.into(), ..sig.clone() });
        }
        assert_eq!(a.principals(), ["bao@delegation-b", "bao@delegation-b-2", "zh-u-nl-i@side", "x-y@a"]);
        assert!(a.principals().iter().all(|p| is_safe_principal(p)));
    }

    /// M6, "Done means": narrowing the manifest (one required side, the other signatory and its
    /// files removed, the title changed) no longer makes a one-sided text "hold".
    #[test]
    fn a_narrowed_manifest_fails() {
        let files = as_map(signed(&[&alice(), &bao()]).files().unwrap());
        let narrow = |retitle: bool| {
            let mut f = files.clone();
            f.remove("bao@delegation-b.sig");
            f.remove("bao@delegation-b.statement");
            let allowed = String::from_utf8(f["allowed_signers"].clone()).unwrap();
            let kept: String =
                allowed.lines().filter(|l| !l.starts_with("bao@")).map(|l| format!("{l}\n")).collect();
            f.insert("allowed_signers".into(), kept.into_bytes());
            let mut m: serde_json::Value = serde_json::from_slice(&f["manifest.json"]).unwrap();
            m["required_sides"] = serde_json::json!(["Delegation A"]);
            m["signatories"].as_array_mut().unwrap().retain(|s| s["name"] != "Bao");
            if retitle {
                m["title"] = serde_json::json!("Ceasefire, as Delegation A alone agrees it");
            }
            f.insert("manifest.json".into(), serde_json::to_vec_pretty(&m).unwrap());
            read_back(&f).and_then(|a| a.verify())
        };
        let err = narrow(true).unwrap_err();
        assert!(matches!(err, AgreementError::Unsigned(_)), "{err}");
        assert!(err.to_string().contains("but Alice signed the title \"Ceasefire\""), "{err}");
        let err = narrow(false).unwrap_err().to_string();
        assert!(
            err.contains("it requires the sides Delegation A, but Alice signed for the sides Delegation A, Delegation B"),
            "{err}"
        );
        // The manifest left whole but a side dropped from allowed_signers and files: still no.
        let mut f = files.clone();
        f.remove("bao@delegation-b.sig");
        assert!(read_back(&f).is_err());
    }

    /// M6: a signature cannot be moved to another agreement (another title, channel or sides),
    /// even by someone who rewrites every file consistently but has only the signatories' seals.
    #[test]
    fn a_signature_does_not_travel_to_another_agreement() {
        let original = signed(&[&alice(), &bao()]);
        for change in [
            |a: &mut Agreement| a.title = "Armistice".into(),
            |a: &mut Agreement| a.channel = ChannelId([6; 16]),
            |a: &mut Agreement| a.required_sides.push("Delegation C".into()),
            |a: &mut Agreement| a.signatories[1].signed_at += 1,
            |a: &mut Agreement| a.signatories[1].identity_key[0] ^= 1,
        ] {
            let mut moved = original.clone();
            change(&mut moved);
            let err = moved.verify().unwrap_err();
            assert!(
                matches!(&err, AgreementError::Signatory { .. } | AgreementError::SideUnsigned(_)),
                "{err}"
            );
            if let Ok(files) = moved.files() {
                assert!(read_back(&as_map(files)).and_then(|a| a.verify()).is_err());
            }
        }
    }

    /// H2: an agreement holding a weak seal key is neither verified nor exported, and the
    /// message names the key.
    #[test]
    fn a_weak_seal_key_is_named_and_never_exported() {
        let mut agreement = signed(&[&alice(), &bao()]);
        let mut weak = [0u8; 32];
        weak[0] = 1;
        agreement.signatories[1].seal_key = weak;
        let err = agreement.verify().unwrap_err();
        assert!(
            matches!(err, AgreementError::RefusedKey { problem: SealKeyProblem::SmallOrder, .. }),
            "{err}"
        );
        let said = err.to_string();
        assert!(said.starts_with("Bao's seal key (side Delegation B) ssh-ed25519 0100000000"), "{said}");
        assert!(said.contains("weak (small-order)"), "{said}");
        assert_eq!(agreement.files().unwrap_err(), err, "no folder is written with a weak key");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn from_files_never_panics(
            manifest in proptest::collection::vec(any::<u8>(), 0..600),
            allowed in proptest::collection::vec(any::<u8>(), 0..300),
            text in proptest::collection::vec(any::<u8>(), 0..100),
            sig in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let result = Agreement::from_files(|name| Some(match name {
                MANIFEST_FILE => manifest.clone(),
                ALLOWED_SIGNERS_FILE => allowed.clone(),
                TEXT_FILE => text.clone(),
                _ => sig.clone(),
            }));
            if let Ok(agreement) = result {
                let _ = agreement.verify();
            }
        }

        /// A damaged export may still pass (whitespace in the manifest, a key comment), but never
        /// with another text, keys, title, sides or signers than were signed.
        #[test]
        fn damaged_exports_never_pass_with_other_text_or_keys(
            file in 0usize..7, at in any::<prop::sample::Index>(), byte in any::<u8>(),
        ) {
            let agreement = signed(&[&alice(), &bao()]);
            let mut files = agreement.files().unwrap();
            let content = &mut files[file].1;
            let i = at.index(content.len());
            content[i] = byte;
            let files = as_map(files);
            if read_back(&files).and_then(|a| a.verify()).is_ok() {
                let back = read_back(&files).unwrap();
                prop_assert_eq!(&back.text, &agreement.text);
                let keys = |a: &Agreement| a.signatories.iter().map(|s| s.seal_key).collect::<Vec<_>>();
                prop_assert_eq!(keys(&back), keys(&agreement));
                prop_assert_eq!(&back.title, &agreement.title);
                prop_assert_eq!(&back.required_sides, &agreement.required_sides);
                prop_assert_eq!(&back.signatories, &agreement.signatories);
            }
        }

        #[test]
        fn verify_signature_never_panics(s in "\\PC{0,400}") {
            let key = alice().seal_public_key();
            prop_assert!(verify_signature(&key, TEXT, &s).is_err());
            let armored = format!("-----BEGIN SSH SIGNATURE-----\n{s}\n-----END SSH SIGNATURE-----\n");
            prop_assert!(verify_signature(&key, TEXT, &armored).is_err());
            prop_assert!(verify_signature(&[9; 32], TEXT, &armored).is_err());
        }
    }
}
