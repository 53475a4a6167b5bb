//! `relay --config FILE`: a TOML file whose keys are the flags' names. Each value is checked
//! as its flag would be, and a bad one is refused with the line it is on; so is a key that is
//! no flag. Flags given on the command line win over the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use toml::Spanned;

use crate::args::RelayArgs;

/// The file as written: every key optional, each value with where it stands.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    listen: Option<Spanned<String>>,
    data: Option<Spanned<String>>,
    store: Option<Spanned<String>>,
    public_host: Option<Spanned<String>>,
    nodes: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    tls_next_cert: Option<Spanned<String>>,
    tls_next_key: Option<Spanned<String>>,
    block_size: Option<Spanned<i64>>,
    ttl: Option<Spanned<String>>,
    max_store_mb: Option<Spanned<i64>>,
    queue_rate: Option<Spanned<i64>>,
    max_connections: Option<Spanned<i64>>,
    metrics_listen: Option<Spanned<String>>,
    metrics_token_file: Option<Spanned<String>>,
    log_format: Option<Spanned<String>>,
    log_client_ips: Option<Spanned<bool>>,
}

/// Reads `path` and fills in every setting the command line left out.
pub fn merge(mut args: RelayArgs, path: &Path) -> Result<RelayArgs> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: File = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(String::new(), |s| format!(" line {}:", line_of(&text, s.start)));
        anyhow!("{}:{line} {}", path.display(), e.message())
    })?;
    let at =
        |span: std::ops::Range<usize>| format!("{}: line {}", path.display(), line_of(&text, span.start));
    let dir = path.parent().unwrap_or(Path::new("."));
    fill(&mut args.listen, file.listen, &at, |v| parse_addr(v, "listen"))?;
    fill(&mut args.data, file.data, &at, |v| Ok(relative(dir, v)))?;
    fill(&mut args.store, file.store, &at, |v| check_store(v))?;
    fill(&mut args.public_host, file.public_host, &at, |v| Ok(v.to_owned()))?;
    fill(&mut args.nodes, file.nodes, &at, |v| parse_nodes(v).map(|_| v.to_owned()))?;
    fill(&mut args.tls_cert, file.tls_cert, &at, |v| Ok(relative(dir, v)))?;
    fill(&mut args.tls_key, file.tls_key, &at, |v| Ok(relative(dir, v)))?;
    fill(&mut args.tls_next_cert, file.tls_next_cert, &at, |v| Ok(relative(dir, v)))?;
    fill(&mut args.tls_next_key, file.tls_next_key, &at, |v| Ok(relative(dir, v)))?;
    fill(&mut args.block_size, file.block_size, &at, |v| in_range(*v, 1024, 65536, "block-size"))?;
    fill(&mut args.ttl, file.ttl, &at, |v| crate::config::duration(v).map(|_| v.to_owned()))?;
    fill(&mut args.max_store_mb, file.max_store_mb, &at, |v| in_range(*v, 1, i64::MAX, "max-store-mb"))?;
    fill(&mut args.queue_rate, file.queue_rate, &at, |v| in_range(*v, 1, 1_000_000, "queue-rate"))?;
    fill(&mut args.max_connections, file.max_connections, &at, |v| {
        in_range(*v, 1, 1_000_000, "max-connections")
    })?;
    fill(&mut args.metrics_listen, file.metrics_listen, &at, |v| parse_addr(v, "metrics-listen"))?;
    fill(&mut args.metrics_token_file, file.metrics_token_file, &at, |v| Ok(relative(dir, v)))?;
    fill(&mut args.log_format, file.log_format, &at, |v| check_log_format(v).map(|()| v.to_owned()))?;
    if !args.log_client_ips {
        args.log_client_ips = file.log_client_ips.is_some_and(|v| *v.get_ref());
    }
    Ok(args)
}

/// Sets `slot` from the file's value unless the command line set it; a value that does not
/// check out is refused with its line.
fn fill<T, V>(
    slot: &mut Option<T>,
    value: Option<Spanned<V>>,
    at: &impl Fn(std::ops::Range<usize>) -> String,
    check: impl Fn(&V) -> Result<T>,
) -> Result<()> {
    let Some(value) = value else { return Ok(()) };
    let checked = check(value.get_ref()).map_err(|e| anyhow!("{}: {e:#}", at(value.span())))?;
    if slot.is_none() {
        *slot = Some(checked);
    }
    Ok(())
}

/// 1-based line of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at).map_or(0, |before| before.matches('\n').count()) + 1
}

/// Paths in the file are relative to the file's directory.
fn relative(dir: &Path, value: &str) -> PathBuf {
    let path = PathBuf::from(value);
    if path.is_absolute() { path } else { dir.join(path) }
}

fn parse_addr(value: &str, key: &str) -> Result<SocketAddr> {
    value.parse().map_err(|_| anyhow!("{key} is IP:PORT (e.g. 0.0.0.0:4443), not {value:?}"))
}

fn in_range<T: TryFrom<i64>>(value: i64, min: i64, max: i64, key: &str) -> Result<T> {
    if !(min..=max).contains(&value) {
        bail!("{key} must be from {min} to {max}, not {value}");
    }
    T::try_from(value).map_err(|_| anyhow!("{key}: {value} is too large here"))
}

fn check_store(value: &str) -> Result<String> {
    value.parse::<backchannel_relay::StoreSpec>()?;
    Ok(value.to_owned())
}

/// `HOST:PORT,HOST:PORT`.
pub fn parse_nodes(value: &str) -> Result<Vec<backchannel_wire::RelayNode>> {
    value
        .split(',')
        .map(|n| {
            n.parse().map_err(|_| anyhow!("nodes are HOST:PORT separated by commas, and {n:?} is not one"))
        })
        .collect()
}

pub fn check_log_format(value: &str) -> Result<()> {
    match value {
        "text" | "json" => Ok(()),
        other => bail!("log-format is `text` or `json`, not {other:?}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn merged(text: &str, args: RelayArgs) -> Result<RelayArgs> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, text).unwrap();
        merge(args, &path)
    }

    #[test]
    fn keys_are_flag_names_and_flags_win() {
        let text = "listen = \"0.0.0.0:4443\"\ndata = \"/var/lib/bc\"\nblock-size = 8192\nttl = \"7d\"\nlog-client-ips = true\n";
        let got = merged(text, RelayArgs::default()).unwrap();
        assert_eq!(got.listen, Some("0.0.0.0:4443".parse().unwrap()));
        assert_eq!(got.data, Some(PathBuf::from("/var/lib/bc")));
        assert_eq!((got.block_size, got.ttl.as_deref(), got.log_client_ips), (Some(8192), Some("7d"), true));
        let flags = RelayArgs { block_size: Some(4096), ..RelayArgs::default() };
        assert_eq!(merged(text, flags).unwrap().block_size, Some(4096));
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line() {
        let err = merged("listen = \"127.0.0.1:1\"\n\nblocksize = 4096\n", RelayArgs::default()).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("line 3") && text.contains("blocksize"), "{text}");
    }

    #[test]
    fn a_bad_value_is_refused_with_its_line() {
        for (file, line, what) in [
            ("data = \"x\"\nlisten = \"nowhere\"\n", 2, "listen"),
            ("block-size = 100\n", 1, "block-size"),
            ("ttl = \"3 weeks\"\n", 1, "unit"),
            ("\n\nblock-size = \"big\"\n", 3, "expected i64"),
            ("log-format = \"xml\"\n", 1, "log-format"),
            ("nodes = \"a:1,b\"\n", 1, "nodes"),
            ("store = \"mysql://x\"\n", 1, "postgres"),
        ] {
            let err = format!("{:#}", merged(file, RelayArgs::default()).unwrap_err());
            assert!(err.contains(&format!("line {line}")) && err.contains(what), "{file:?}: {err}");
        }
    }

    #[test]
    fn the_example_in_deploy_reads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/relay.toml");
        let got = merge(RelayArgs::default(), &path).unwrap();
        assert_eq!(got.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!((got.block_size, got.log_format.as_deref()), (Some(4096), Some("json")));
    }

    #[test]
    fn relative_paths_are_from_the_file() {
        let got = merged("data = \"state\"\n", RelayArgs::default()).unwrap();
        assert!(got.data.unwrap().ends_with("state"));
    }
}
