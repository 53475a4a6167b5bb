//! The only place that reads the environment and the terminal: turns flags into typed values.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use backchannel_client::Passphrase;

/// The party's home: `--home`/`BACKCHANNEL_HOME`, else the platform data directory.
pub fn home(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .context("cannot find a data directory: set BACKCHANNEL_HOME")?;
    Ok(data.join("backchannel"))
}

/// The store passphrase: `BACKCHANNEL_PASSPHRASE`, else asked on the terminal.
pub fn passphrase(confirm: bool) -> Result<Passphrase> {
    if let Ok(p) = std::env::var("BACKCHANNEL_PASSPHRASE") {
        if p.is_empty() {
            bail!("BACKCHANNEL_PASSPHRASE is set but empty");
        }
        return Ok(Passphrase::new(p));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set BACKCHANNEL_PASSPHRASE, or run this in a terminal to be asked");
    }
    let first = rpassword::prompt_password("Passphrase: ").context("cannot read the passphrase")?;
    if confirm {
        let again =
            rpassword::prompt_password("Same passphrase again: ").context("cannot read the passphrase")?;
        if again != first {
            bail!("the two passphrases differ; nothing was created");
        }
    }
    if first.is_empty() {
        bail!("an empty passphrase would leave your keys unprotected");
    }
    Ok(Passphrase::new(first))
}

/// `BACKCHANNEL_PASSPHRASE`, if set (the web app asks on its page otherwise, never here).
pub fn passphrase_if_set() -> Result<Option<Passphrase>> {
    match std::env::var("BACKCHANNEL_PASSPHRASE") {
        Ok(p) if p.is_empty() => bail!("BACKCHANNEL_PASSPHRASE is set but empty"),
        Ok(p) => Ok(Some(Passphrase::new(p))),
        Err(_) => Ok(None),
    }
}

/// Parses `90s`, `30m`, `24h`, `7d` (or a bare number of seconds).
pub fn duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| anyhow!("{text:?} is not a duration; use e.g. 30m, 24h or 7d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("{text:?}: unknown unit {unit:?}; use s, m, h or d"),
    };
    if n == 0 {
        bail!("a duration must be more than zero");
    }
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// The largest whole unit of `secs` that `duration` reads back: `14d`, `36h`, `90s`.
pub fn describe(secs: u64) -> String {
    [(86_400, "d"), (3600, "h"), (60, "m")]
        .iter()
        .find(|(unit, _)| secs >= *unit && secs.is_multiple_of(*unit))
        .map_or(format!("{secs}s"), |(unit, name)| format!("{}{name}", secs / unit))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(duration("90").unwrap(), Duration::from_secs(90));
        assert!(duration("3w").is_err());
        assert!(duration("h").is_err());
        assert!(duration("0s").is_err());
        assert_eq!(describe(14 * 86_400), "14d");
        assert_eq!(describe(5400), "90m");
        assert_eq!(describe(61), "61s");
        assert_eq!(duration(&describe(36 * 3600)).unwrap(), Duration::from_secs(36 * 3600));
    }
}
