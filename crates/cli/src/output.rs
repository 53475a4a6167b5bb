//! Printing: every line goes through `say` so a closed pipe ends the program quietly
//! instead of panicking.

use std::io::Write;

use anyhow::Result;
use backchannel_client::{ContactView, Entry, EntryView, Event, format_ranges};

pub fn say(line: impl std::fmt::Display) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    Ok(())
}

pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<()> {
    say(serde_json::to_string_pretty(value)?)
}

pub fn contact(c: &ContactView) -> String {
    let mark = if c.verified { "verified" } else { "NOT verified" };
    format!("{} ({})  safety number {}  [{mark}]", c.name, c.side, c.safety_number)
}

pub fn entry(e: &EntryView) -> String {
    match &e.entry {
        Entry::Note { from, outgoing, text, sent_at, seq, relayed_by, rephrased, .. } => {
            let arrow = if *outgoing { "→" } else { "←" };
            let number = if *seq > 0 { format!(" #{seq}") } else { String::new() };
            let how = if *rephrased { ", rephrased" } else { "" };
            match relayed_by {
                Some(hub) => format!("{} {arrow} {from} (relayed by {hub}{how}): {text}", time(*sent_at)),
                None => format!("{} {arrow} {from}{number}: {text}", time(*sent_at)),
            }
        }
        Entry::Event { text, at } => format!("{} * {text}", time(*at)),
        Entry::Gap { from, first, last, at, .. } => {
            let state = match &e.still_missing {
                Some(m) if !m.is_empty() => format!("still missing: {}", format_ranges(m)),
                _ => "all arrived since".to_owned(),
            };
            format!("{} ! gap in notes #{first}..#{last} from {from}; {state}", time(*at))
        }
        Entry::Rejected { from, detail, at } => {
            format!("{} ! rejected (queue of {from}): {detail}", time(*at))
        }
        Entry::Joined { from, at } => format!("{} * session with {from} established", time(*at)),
    }
}

pub fn event(e: &Event) -> String {
    match e {
        Event::Note { sent_at, .. } => format!("{} ← {e}", time(*sent_at)),
        Event::Channel { .. } => format!("* {e}"),
        other => format!("! {other}"),
    }
}

/// UTC `YYYY-MM-DD HH:MM:SS` from milliseconds since the epoch (no time-zone database needed).
pub fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00", "leap day");
        assert_eq!(time(1_795_000_000_000), "2026-11-18 11:06:40");
    }
}
