//! The statement a signatory signs: what it agrees to, in a few lines of text that a person can
//! read and `ssh-keygen -Y verify` can check byte for byte. Every field that gives the agreement
//! its meaning is in it (the channel, the text's hash, the title, the sides that must sign, who
//! signs for which side, when), so a signature cannot be moved to another agreement and an
//! export cannot be narrowed by editing its unsigned files.
//!
//! ```text
//! format: backchannel-agreement-statement/1
//! channel: 32 lowercase hex digits
//! text-sha256: 64 lowercase hex digits
//! title: TITLE
//! required-side: SIDE            one line per side, sorted by their UTF-8 bytes, no repeats
//! signer-name: NAME
//! signer-side: SIDE              one of the required sides
//! signer-identity-key: 64 lowercase hex digits
//! date: YYYY-MM-DDTHH:MM:SSZ     UTC
//! ```
//! Every line ends with one LF, the last too; nothing else comes before, between or after.
//! No value can hold a line break: titles, names and sides refuse control characters.

use backchannel_wire::hex_encode;

use super::{AgreementError, MAX_SIGNATORIES, Result, check_label, check_title};
use crate::identity::Card;
use crate::message::ChannelId;

/// The first line's value; a reader refuses any other.
pub const STATEMENT_FORMAT: &str = "backchannel-agreement-statement/1";
/// Longest statement a reader accepts.
pub const MAX_STATEMENT: usize = 16 << 10;
/// The last second a date may name (9999-12-31T23:59:59Z).
const MAX_DATE: u64 = 253_402_300_799;

/// What one signatory signs. Build it with [`Statement::new`], which checks and orders it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub channel: ChannelId,
    /// sha256 of the agreement's text: the proposal's id.
    pub text_sha256: [u8; 32],
    pub title: String,
    /// Sorted by bytes, without repeats.
    pub required_sides: Vec<String>,
    pub signer_name: String,
    pub signer_side: String,
    /// The signer's Olm identity key: ties the seal to the party the channel knows.
    pub signer_identity_key: [u8; 32],
    /// Seconds since the Unix epoch, as the signer's clock had it.
    pub signed_at: u64,
}

impl Statement {
    /// The statement `signer` makes about the proposal `text_sha256` of `channel`.
    pub fn new(
        channel: ChannelId,
        text_sha256: [u8; 32],
        title: &str,
        required_sides: &[String],
        signer: &Card,
        signed_at: u64,
    ) -> Result<Self> {
        let statement = Self {
            channel,
            text_sha256,
            title: title.to_owned(),
            required_sides: canonical_sides(required_sides)?,
            signer_name: signer.name.clone(),
            signer_side: signer.side.clone(),
            signer_identity_key: signer.identity_key,
            signed_at,
        };
        statement.check()?;
        Ok(statement)
    }

    fn check(&self) -> Result<()> {
        check_title(&self.title)?;
        check_label("signer name", &self.signer_name)?;
        check_label("signer side", &self.signer_side)?;
        if canonical_sides(&self.required_sides)? != self.required_sides {
            return Err(AgreementError::Invalid("required sides must be sorted and distinct".into()));
        }
        if !self.required_sides.contains(&self.signer_side) {
            return Err(AgreementError::Invalid(format!(
                "side {} is not one of the sides that must sign",
                self.signer_side
            )));
        }
        if self.signed_at > MAX_DATE {
            return Err(AgreementError::Invalid("the date is after the year 9999".into()));
        }
        Ok(())
    }

    /// The exact bytes that are signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        let mut line = |key: &str, value: &str| {
            out.push_str(key);
            out.push_str(": ");
            out.push_str(value);
            out.push('\n');
        };
        line("format", STATEMENT_FORMAT);
        line("channel", &hex_encode(&self.channel.0));
        line("text-sha256", &hex_encode(&self.text_sha256));
        line("title", &self.title);
        for side in &self.required_sides {
            line("required-side", side);
        }
        line("signer-name", &self.signer_name);
        line("signer-side", &self.signer_side);
        line("signer-identity-key", &hex_encode(&self.signer_identity_key));
        line("date", &date(self.signed_at));
        out.into_bytes()
    }

    /// Reads a statement back; only the one encoding [`Statement::to_bytes`] writes is accepted.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_STATEMENT {
            return Err(bad(&format!("is longer than {MAX_STATEMENT} bytes")));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("is not UTF-8 text"))?;
        let body = text.strip_suffix('\n').ok_or_else(|| bad("does not end with a line break"))?;
        let mut lines = body.split('\n').peekable();
        if field(&mut lines, "format")? != STATEMENT_FORMAT {
            return Err(bad(&format!("is not in the format {STATEMENT_FORMAT}")));
        }
        let channel =
            ChannelId(unhex(field(&mut lines, "channel")?).ok_or_else(|| bad("has a bad channel id"))?);
        let text_sha256 =
            unhex(field(&mut lines, "text-sha256")?).ok_or_else(|| bad("has a bad text-sha256"))?;
        let title = field(&mut lines, "title")?.to_owned();
        let mut required_sides = Vec::new();
        while lines.peek().is_some_and(|l| l.starts_with("required-side: ")) {
            if required_sides.len() >= MAX_SIGNATORIES {
                return Err(bad("names too many required sides"));
            }
            required_sides.push(field(&mut lines, "required-side")?.to_owned());
        }
        let signer_name = field(&mut lines, "signer-name")?.to_owned();
        let signer_side = field(&mut lines, "signer-side")?.to_owned();
        let signer_identity_key = unhex(field(&mut lines, "signer-identity-key")?)
            .ok_or_else(|| bad("has a bad signer-identity-key"))?;
        let signed_at = parse_date(field(&mut lines, "date")?).ok_or_else(|| bad("has a bad date"))?;
        if lines.next().is_some() {
            return Err(bad("has lines after its date"));
        }
        let statement = Self {
            channel,
            text_sha256,
            title,
            required_sides,
            signer_name,
            signer_side,
            signer_identity_key,
            signed_at,
        };
        statement.check()?;
        if statement.to_bytes() != bytes {
            return Err(bad("is not in its one canonical form"));
        }
        Ok(statement)
    }

    /// The date line's value, `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn date(&self) -> String {
        date(self.signed_at)
    }
}

fn bad(why: &str) -> AgreementError {
    AgreementError::Export(format!("a statement {why}"))
}

/// The value of the next line, which must be `KEY: VALUE`.
fn field<'a>(lines: &mut std::iter::Peekable<std::str::Split<'a, char>>, key: &str) -> Result<&'a str> {
    let line = lines.next().ok_or_else(|| bad(&format!("stops before its {key} line")))?;
    line.strip_prefix(key)
        .and_then(|l| l.strip_prefix(": "))
        .ok_or_else(|| bad(&format!("has {:?} where its {key} line belongs", super::shorten(line))))
}

/// Sides sorted by bytes; empty, bad or repeated labels refused.
fn canonical_sides(sides: &[String]) -> Result<Vec<String>> {
    if sides.is_empty() || sides.len() > MAX_SIGNATORIES {
        return Err(AgreementError::Invalid(format!("an agreement needs 1 to {MAX_SIGNATORIES} sides")));
    }
    let mut sorted = sides.to_vec();
    for side in &sorted {
        check_label("required side", side)?;
    }
    sorted.sort();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(AgreementError::Invalid("a side is required twice".into()));
    }
    Ok(sorted)
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub(crate) fn date(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

fn parse_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let shape = b.len() == 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':';
    if !shape || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = s.get(r)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || d == 0 || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let days = days_from_civil(y, m, d)?;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    // A day that does not exist (31 April) would not come back the same.
    (date(secs) == s).then_some(secs)
}

/// Days since 1970-01-01 → (year, month, day); H. Hinnant's `civil_from_days`, for days ≥ 0.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The inverse, for years 1970 and later; `None` before 1970.
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y % 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use proptest::prelude::*;

    fn sample() -> Statement {
        let card = Identity::generate("Alice", "Delegation A").unwrap().card();
        let sides = ["Delegation B".to_owned(), "Delegation A".to_owned()];
        Statement::new(ChannelId([7; 16]), [9; 32], "Ceasefire", &sides, &card, 1_764_930_000).unwrap()
    }

    /// The byte-exact format docs/protocol.md documents.
    #[test]
    fn the_statement_is_these_bytes() {
        let s = sample();
        let expected = format!(
            "format: backchannel-agreement-statement/1\n\
             channel: {}\n\
             text-sha256: {}\n\
             title: Ceasefire\n\
             required-side: Delegation A\n\
             required-side: Delegation B\n\
             signer-name: Alice\n\
             signer-side: Delegation A\n\
             signer-identity-key: {}\n\
             date: 2025-12-05T10:20:00Z\n",
            "07".repeat(16),
            "09".repeat(32),
            hex_encode(&s.signer_identity_key)
        );
        assert_eq!(String::from_utf8(s.to_bytes()).unwrap(), expected);
        assert_eq!(Statement::parse(expected.as_bytes()).unwrap(), s);
    }

    #[test]
    fn only_the_canonical_form_parses() {
        let good = String::from_utf8(sample().to_bytes()).unwrap();
        for bad in [
            good.replace(
                "Delegation A\nrequired-side: Delegation B",
                "Delegation B\nrequired-side: Delegation A",
            ),
            good.replace("required-side: Delegation B\n", "required-side: Delegation A\n"),
            good.replace("required-side: Delegation A\nrequired-side: Delegation B\n", ""),
            good.replace("\n", "\r\n"),
            good.trim_end().to_owned(),
            format!("{good}\n"),
            format!("{good}extra: x\n"),
            good.replace("title: ", "title:"),
            good.replace("channel: 07", "channel: 0X"),
            good.replace(&"07".repeat(16), &"07".repeat(16).to_uppercase().replace("07", "0A")),
            good.replace("2025-12-05T10:20:00Z", "2025-02-30T10:20:00Z"),
            good.replace("2025-12-05T10:20:00Z", "2025-12-05 10:20:00Z"),
            good.replace("backchannel-agreement-statement/1", "backchannel-agreement-statement/2"),
            good.replace("signer-side: Delegation A", "signer-side: Delegation C"),
        ] {
            assert!(Statement::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_round_trip() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_764_930_000, "2025-12-05T10:20:00Z"),
            (MAX_DATE, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(date(secs), text);
            assert_eq!(parse_date(text), Some(secs));
        }
        assert_eq!(parse_date("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_date("2001-02-29T00:00:00Z"), None);
    }

    proptest! {
        #[test]
        fn any_date_round_trips(secs in 0..=MAX_DATE) {
            prop_assert_eq!(parse_date(&date(secs)), Some(secs));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Statement::parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_near_statements(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = sample().to_bytes();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            if let Ok(s) = Statement::parse(&bytes) {
                prop_assert_eq!(s.to_bytes(), bytes);
            }
        }
    }
}
