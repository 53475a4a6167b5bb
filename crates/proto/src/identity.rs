//! A party's identity: a vodozemac Olm account (Curve25519 identity key, Ed25519 device key)
//! plus a separate Ed25519 seal key kept for ratifying agreements only. The public half is the
//! [`Card`]; two cards give the safety number the humans compare out of band.

use backchannel_wire::codec::{Reader, Writer};
use serde::{Deserialize, Serialize};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use vodozemac::olm::{Account, AccountPickle};
use zeroize::Zeroizing;

use crate::crypto::{random_array, sha256};
use crate::error::{ProtoError, Result};

/// Longest display name or side label, in bytes.
pub const MAX_LABEL: usize = 64;

/// A party as channels and contacts tell parties apart: its Olm identity key. Names and sides
/// are only labels; a party's device keys (one today) are a different thing, [`DeviceKey`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartyKey(pub [u8; 32]);

impl std::fmt::Debug for PartyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PartyKey({})", backchannel_wire::hex_encode(&self.0[..6]))
    }
}

/// One device's signing key (vodozemac's Ed25519 device key), distinct from the party.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceKey(pub [u8; 32]);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey({})", backchannel_wire::hex_encode(&self.0[..6]))
    }
}

/// What a party shows others: who it is and its public keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Card {
    pub name: String,
    pub side: String,
    /// Olm Curve25519 identity key.
    pub identity_key: [u8; 32],
    /// Olm Ed25519 device key (vodozemac signs nothing of ours with it; kept for completeness).
    pub device_key: [u8; 32],
    /// Ed25519 key used only to ratify agreements.
    pub seal_key: [u8; 32],
}

impl Card {
    /// The key that names this party in channels.
    pub fn party(&self) -> PartyKey {
        PartyKey(self.identity_key)
    }

    pub fn device(&self) -> DeviceKey {
        DeviceKey(self.device_key)
    }

    pub fn encode(&self, w: &mut Writer) {
        w.bytes16(self.name.as_bytes()).bytes16(self.side.as_bytes());
        w.raw(&self.identity_key).raw(&self.device_key).raw(&self.seal_key);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let m = ProtoError::malformed;
        let name = r.str16(MAX_LABEL).map_err(m("card name"))?;
        let side = r.str16(MAX_LABEL).map_err(m("card side"))?;
        let card = Card {
            name,
            side,
            identity_key: r.array().map_err(m("card"))?,
            device_key: r.array().map_err(m("card"))?,
            seal_key: r.array().map_err(m("card"))?,
        };
        card.check()?;
        Ok(card)
    }

    /// What every card from a peer must pass, however it arrived (a Hello or invitation through
    /// [`Card::decode`], a channel state as JSON): labels without control, bidi or zero-width
    /// characters, and a seal key that is a canonical Ed25519 point of large order.
    pub fn check(&self) -> Result<()> {
        validate_label(&self.name).map_err(|_| {
            ProtoError::PeerMisbehaved("a name is empty or holds control, bidi or zero-width characters")
        })?;
        validate_label(&self.side).map_err(|_| {
            ProtoError::PeerMisbehaved("a side is empty or holds control, bidi or zero-width characters")
        })?;
        check_seal_key(&self.seal_key).map_err(|problem| ProtoError::PeerMisbehaved(problem.as_str()))
    }

    fn key_material(&self) -> Vec<u8> {
        [self.identity_key, self.device_key, self.seal_key].concat()
    }

    /// This card's own fingerprint: 30 digits from its keys (shown by `whoami`).
    pub fn fingerprint(&self) -> String {
        digits(&sha256(&[b"backchannel/fingerprint/v1", &self.key_material()]))
    }
}

/// The safety number of two cards: the same 30 digits on both sides, whoever computes it.
pub fn safety_number(a: &Card, b: &Card) -> String {
    let (ka, kb) = (a.key_material(), b.key_material());
    let (lo, hi) = if ka <= kb { (ka, kb) } else { (kb, ka) };
    digits(&sha256(&[b"backchannel/safety-number/v1", &lo, &hi]))
}

/// Six groups of five decimal digits, each from 40 bits of the hash (≈ 100 bits in all).
fn digits(hash: &[u8; 32]) -> String {
    let groups: Vec<String> = hash
        .chunks_exact(5)
        .take(6)
        .map(|c| {
            let v = c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", v % 100_000)
        })
        .collect();
    groups.join(" ")
}

/// Checks a name or side label: 1..=64 bytes, no control characters (Unicode `Cc`), no format
/// characters (`Cf`: bidi overrides and isolates such as U+202E and U+2066..U+2069, zero-width
/// U+200B..U+200D, U+FEFF) and no line or paragraph separators (`Zl`, `Zp`). Those would let a
/// name reorder or hide what is printed around it.
pub fn validate_label(label: &str) -> std::result::Result<(), &'static str> {
    if label.trim().is_empty() {
        return Err("must not be empty");
    }
    if label.len() > MAX_LABEL {
        return Err("must be at most 64 bytes");
    }
    if label.chars().any(is_hidden_or_control) {
        return Err("must not contain control, bidi or zero-width characters");
    }
    Ok(())
}

/// Control (`Cc`), format (`Cf`: bidi, zero-width, soft hyphen…), line and paragraph
/// separators: characters that change how the text around them is shown.
pub fn is_hidden_or_control(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// Why 32 bytes are not acceptable as a seal key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealKeyProblem {
    /// Not the encoding of a point on the Ed25519 curve.
    NotAPoint,
    /// A point, but not in its one canonical encoding (a second spelling of some key).
    NonCanonical,
    /// A point of small order: a "weak" key, under which one signature verifies for every
    /// text (the identity point with R = identity, s = 0), so it could be used to repudiate.
    SmallOrder,
}

impl SealKeyProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAPoint => "a seal key is not an Ed25519 point",
            Self::NonCanonical => "a seal key is not canonically encoded",
            Self::SmallOrder => {
                "a seal key is a weak (small-order) Ed25519 key, under which a signature fits any text"
            }
        }
    }
}

impl std::fmt::Display for SealKeyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Refuses a seal key that is not a point, not canonically encoded, or of small order
/// (ed25519-dalek's `is_weak`). Every seal key a peer shows us passes this before use.
pub fn check_seal_key(key: &[u8; 32]) -> std::result::Result<(), SealKeyProblem> {
    let point = ed25519_dalek::VerifyingKey::from_bytes(key).map_err(|_| SealKeyProblem::NotAPoint)?;
    if point.is_weak() {
        return Err(SealKeyProblem::SmallOrder);
    }
    // from_bytes decompresses and keeps the bytes it was given (it accepts y ≥ p, as ZIP-215
    // does); compressing the point again shows whether they were the canonical encoding.
    if point.to_edwards().compress().to_bytes() != *key {
        return Err(SealKeyProblem::NonCanonical);
    }
    Ok(())
}

/// A party's secret state. Not `Clone`, no derived `Debug`: the keys stay in one place.
pub struct Identity {
    pub name: String,
    pub side: String,
    pub(crate) account: Account,
    seal_secret: Zeroizing<[u8; 32]>,
}

/// The persisted form of an [`Identity`]; the client encrypts it before it touches disk.
#[derive(Serialize, Deserialize)]
pub struct IdentityPickle {
    name: String,
    side: String,
    account: AccountPickle,
    seal_secret: Zeroizing<[u8; 32]>,
}

impl Identity {
    /// A fresh identity with new keys.
    pub fn generate(name: &str, side: &str) -> std::result::Result<Self, &'static str> {
        validate_label(name)?;
        validate_label(side)?;
        Ok(Self {
            name: name.to_owned(),
            side: side.to_owned(),
            account: Account::new(),
            seal_secret: Zeroizing::new(random_array()),
        })
    }

    pub fn card(&self) -> Card {
        Card {
            name: self.name.clone(),
            side: self.side.clone(),
            identity_key: self.account.curve25519_key().to_bytes(),
            device_key: *self.account.ed25519_key().as_bytes(),
            seal_key: self.seal_public_key(),
        }
    }

    /// The public half of the seal key.
    pub fn seal_public_key(&self) -> [u8; 32] {
        let secret = vodozemac::Ed25519SecretKey::from_slice(&self.seal_secret);
        *secret.public_key().as_bytes()
    }

    /// The seal's secret bytes, for the ratification code that signs with them. Handle with care.
    pub fn dangerous_seal_secret(&self) -> &[u8; 32] {
        &self.seal_secret
    }

    pub fn pickle(&self) -> IdentityPickle {
        IdentityPickle {
            name: self.name.clone(),
            side: self.side.clone(),
            account: self.account.pickle(),
            seal_secret: self.seal_secret.clone(),
        }
    }

    pub fn from_pickle(p: IdentityPickle) -> Self {
        Self {
            name: p.name,
            side: p.side,
            account: Account::from_pickle(p.account),
            seal_secret: p.seal_secret,
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("name", &self.name).field("side", &self.side).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for IdentityPickle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityPickle(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_number_is_symmetric_and_key_bound() {
        let a = Identity::generate("Alice", "Delegation A").unwrap().card();
        let b = Identity::generate("Bao", "Delegation B").unwrap().card();
        let c = Identity::generate("Bao", "Delegation B").unwrap().card();
        assert_eq!(safety_number(&a, &b), safety_number(&b, &a));
        assert_ne!(safety_number(&a, &b), safety_number(&a, &c), "same name, other keys");
        assert_eq!(safety_number(&a, &b).len(), 35);
    }

    #[test]
    fn card_round_trip_and_bad_labels() {
        let card = Identity::generate("Alice", "Delegation A").unwrap().card();
        let mut w = Writer::default();
        card.encode(&mut w);
        assert_eq!(Card::decode(&mut Reader::new(&w.buf)).unwrap(), card);
        assert!(Identity::generate("", "x").is_err());
        assert!(Identity::generate("a\u{7}", "x").is_err());
        assert!(Identity::generate(&"x".repeat(65), "x").is_err());
    }

    fn decoded(card: &Card) -> Result<Card> {
        let mut w = Writer::default();
        card.encode(&mut w);
        Card::decode(&mut Reader::new(&w.buf))
    }

    /// M8 (names): bidi overrides and isolates, zero-width characters and other `Cf` format
    /// characters are refused in names and sides, as control characters were.
    #[test]
    fn bidi_and_zero_width_characters_are_refused_in_names_and_sides() {
        let good = Identity::generate("Alice", "Delegation A").unwrap().card();
        for bad in [
            "Ali\u{202E}ecila",
            "Al\u{200B}ice",
            "\u{2066}Alice\u{2069}",
            "Alice\u{2067}",
            "A\u{2068}",
            "Al\u{200D}ice",
            "\u{FEFF}Alice",
            "Al\u{00AD}ice",
            "Alice\u{2028}Bao",
            "Alice\u{061C}",
            "a\u{E0041}",
        ] {
            assert!(validate_label(bad).is_err(), "{bad:?}");
            assert!(Identity::generate(bad, "x").is_err(), "{bad:?}");
            let as_name = Card { name: bad.into(), ..good.clone() };
            assert!(matches!(decoded(&as_name), Err(ProtoError::PeerMisbehaved(_))), "{bad:?}");
            let as_side = Card { side: bad.into(), ..good.clone() };
            assert!(matches!(decoded(&as_side), Err(ProtoError::PeerMisbehaved(_))), "{bad:?}");
        }
        for fine in ["Zhōu Ēnlái", "中国代表团", "Delegation B (Oman)", "O'Brien-Smith", "مسقط"] {
            assert!(validate_label(fine).is_ok(), "{fine:?}");
        }
    }

    /// H2: a card whose seal key is weak (small order), not a point, or not canonical is refused.
    #[test]
    fn weak_and_non_canonical_seal_keys_are_refused_at_decode() {
        let good = Identity::generate("Alice", "Delegation A").unwrap().card();
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        // The encodings of the eight small-order points (the torsion subgroup) include these.
        let mut minus_one = [0u8; 32];
        minus_one[0] = 0xec;
        minus_one[1..31].fill(0xff);
        minus_one[31] = 0x7f;
        let zero = [0u8; 32]; // y = 0: a point of order 4
        for key in [identity_point, minus_one, zero] {
            assert_eq!(check_seal_key(&key), Err(SealKeyProblem::SmallOrder), "{key:?}");
            let err = decoded(&Card { seal_key: key, ..good.clone() }).unwrap_err();
            assert!(err.to_string().contains("weak (small-order)"), "{err}");
        }
        // y = p + 1 ≡ 1: the identity again, in a non-canonical spelling (also weak). A
        // non-canonical spelling of a large-order point: y + p for some y < 19.
        let mut y_plus_p = [0xffu8; 32];
        y_plus_p[0] = 0xee;
        y_plus_p[31] = 0x7f;
        assert!(check_seal_key(&y_plus_p).is_err());
        let non_canonical = (0u8..19).find_map(|y| {
            let mut k = [0xffu8; 32];
            k[0] = 0xed + y;
            k[31] = 0x7f;
            (check_seal_key(&k) == Err(SealKeyProblem::NonCanonical)).then_some(k)
        });
        let non_canonical = non_canonical.expect("some y < 19 is a large-order point");
        assert!(decoded(&Card { seal_key: non_canonical, ..good.clone() }).is_err());
        let not_a_point = (2u8..=255).find_map(|b| {
            let mut k = [0u8; 32];
            k[0] = b;
            (check_seal_key(&k) == Err(SealKeyProblem::NotAPoint)).then_some(k)
        });
        assert!(decoded(&Card { seal_key: not_a_point.unwrap(), ..good.clone() }).is_err());
        assert_eq!(decoded(&good).unwrap(), good);
        assert_eq!(check_seal_key(&good.seal_key), Ok(()));
    }

    #[test]
    fn pickle_keeps_keys_and_debug_hides_them() {
        let id = Identity::generate("Alice", "A").unwrap();
        let secret = *id.dangerous_seal_secret();
        let shown = format!("{:?} {:?}", id, id.pickle());
        assert!(!shown.contains(&format!("{:?}", &secret[..4])), "{shown}");
        let back = Identity::from_pickle(id.pickle());
        assert_eq!(back.card(), id.card());
    }
}
