//! Ratifying inside a channel: what a signatory sends (its seal over the [`Statement`] and a
//! proof that it holds that seal key), and what every receiver checks before it counts the seal.
//! The receiver rebuilds the statement from what it holds itself (the channel, the proposal's
//! hash, title and sides, the signer's card) and the date the message carries, so a seal can
//! only count for the proposal, channel and signer it was made for.

use super::seal::{prove_possession, sign_statement, verify_possession, verify_statement};
use super::statement::Statement;
use super::{AgreementError, Result, Signatory};
use crate::identity::{Card, Identity, check_seal_key};
use crate::message::ChannelId;

/// A proposal as a channel knows it: enough to make or check a seal, without its text.
#[derive(Clone, Copy, Debug)]
pub struct ProposalRef<'a> {
    pub channel: ChannelId,
    /// sha256 of the text.
    pub id: [u8; 32],
    pub title: &'a str,
    /// The sides that must sign.
    pub required_sides: &'a [String],
}

/// What a signatory sends with a ratification (the body's `signature`, `signed_at` and
/// `possession`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ratified {
    /// Armored SSHSIG over the statement, namespace `backchannel-agreement`.
    pub signature: String,
    pub signed_at: u64,
    /// Armored SSHSIG over `identity key ‖ seal key ‖ channel id`, namespace
    /// `backchannel-seal-possession`.
    pub possession: String,
}

impl ProposalRef<'_> {
    /// The statement `signer` makes about this proposal at `signed_at`.
    pub fn statement(&self, signer: &Card, signed_at: u64) -> Result<Statement> {
        Statement::new(self.channel, self.id, self.title, self.required_sides, signer, signed_at)
    }

    /// Our seal on this proposal, made at `signed_at` (seconds since the epoch).
    pub fn ratify(&self, identity: &Identity, signed_at: u64) -> Result<Ratified> {
        let statement = self.statement(&identity.card(), signed_at)?;
        Ok(Ratified {
            signature: sign_statement(identity, &statement)?,
            signed_at,
            possession: prove_possession(identity, &self.channel)?,
        })
    }

    /// Checks a seal that `signer` (its card as this channel holds it) sent: its seal key is
    /// acceptable, it proved it holds that key for this channel, and its signature covers the
    /// statement this proposal implies for it. A ratification without a date or a proof (made by
    /// a version that signed the bare text) is refused. Role and side rules are the caller's.
    pub fn check_seal(
        &self,
        signer: &Card,
        signed_at: Option<u64>,
        signature: &str,
        possession: Option<&str>,
    ) -> Result<Signatory> {
        let old = || {
            AgreementError::Invalid(format!(
                "{}'s ratification carries no signed statement (an older version of Backchannel); \
                 it must ratify again after upgrading",
                signer.name
            ))
        };
        let (signed_at, possession) = (signed_at.ok_or_else(old)?, possession.ok_or_else(old)?);
        let named = |e: AgreementError| AgreementError::Signatory {
            name: signer.name.clone(),
            side: signer.side.clone(),
            problem: match e {
                AgreementError::Signature(inner) => inner.to_string(),
                other => other.to_string(),
            },
        };
        check_seal_key(&signer.seal_key).map_err(|p| named(AgreementError::Invalid(p.to_string())))?;
        verify_possession(signer, &self.channel, possession).map_err(named)?;
        let statement = self.statement(signer, signed_at)?;
        verify_statement(&signer.seal_key, &statement, signature).map_err(named)?;
        Ok(Signatory {
            name: signer.name.clone(),
            side: signer.side.clone(),
            identity_key: signer.identity_key,
            seal_key: signer.seal_key,
            signed_at,
            signature: signature.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sides() -> Vec<String> {
        vec!["Delegation A".to_owned(), "Delegation B".to_owned()]
    }

    #[test]
    fn a_seal_counts_only_for_its_proposal_channel_and_signer() {
        let alice = Identity::generate("Alice", "Delegation A").unwrap();
        let sides = sides();
        let p = ProposalRef {
            channel: ChannelId([1; 16]),
            id: [2; 32],
            title: "Ceasefire",
            required_sides: &sides,
        };
        let r = p.ratify(&alice, 1_800_000_000).unwrap();
        let card = alice.card();
        let check = |p: &ProposalRef<'_>, card: &Card, at: Option<u64>, sig: &str, pop: Option<&str>| {
            p.check_seal(card, at, sig, pop)
        };
        let ok = check(&p, &card, Some(r.signed_at), &r.signature, Some(&r.possession)).unwrap();
        assert_eq!((ok.identity_key, ok.signed_at), (card.identity_key, 1_800_000_000));

        let other_channel = ProposalRef { channel: ChannelId([9; 16]), ..p };
        assert!(check(&other_channel, &card, Some(r.signed_at), &r.signature, Some(&r.possession)).is_err());
        let other_title = ProposalRef { title: "Truce", ..p };
        assert!(check(&other_title, &card, Some(r.signed_at), &r.signature, Some(&r.possession)).is_err());
        let one_side = ["Delegation A".to_owned()];
        let narrowed = ProposalRef { required_sides: &one_side, ..p };
        assert!(check(&narrowed, &card, Some(r.signed_at), &r.signature, Some(&r.possession)).is_err());
        assert!(check(&p, &card, Some(r.signed_at + 1), &r.signature, Some(&r.possession)).is_err());
        let err = check(&p, &card, None, &r.signature, None).unwrap_err().to_string();
        assert!(err.contains("older version"), "{err}");

        // Someone who copies Alice's seal key into its own card cannot make her seal count.
        let mallory = Identity::generate("Mallory", "Delegation A").unwrap();
        let stolen = Card { seal_key: card.seal_key, ..mallory.card() };
        assert!(check(&p, &stolen, Some(r.signed_at), &r.signature, Some(&r.possession)).is_err());
        let own = p.ratify(&mallory, r.signed_at).unwrap();
        let err = check(&p, &stolen, Some(own.signed_at), &own.signature, Some(&own.possession)).unwrap_err();
        assert!(err.to_string().starts_with("Mallory's signature"), "{err}");
    }
}
