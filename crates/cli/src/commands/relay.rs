//! `backchannel relay`: run a host until Ctrl-C or SIGTERM.

mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use backchannel_relay::{MetricsToken, RelayConfig, RelayOptions, StoreSpec, TlsFiles};

use super::say;
use crate::args::RelayArgs;
use crate::config;

pub use settings::check_log_format;

pub async fn run(args: Box<RelayArgs>) -> Result<()> {
    let args = *args;
    let args = match args.config.clone() {
        Some(path) => settings::merge(args, &path)?,
        None => args,
    };
    let options = options(&args)?;
    let json = args.log_format.as_deref() == Some("json");
    if tracing::enabled!(tracing::Level::INFO) {
        notice(json, &format!("effective relay configuration:\n{}", effective(&args, &options)));
    }
    let relay = start_when_reachable(options, json).await?;
    say(format!("relay address: {}", relay.address()))?;
    let data = args.data.as_deref().map_or_else(String::new, |d| d.display().to_string());
    notice(json, &format!("serving on {}; data in {data}; Ctrl-C to stop", relay.local_addr()));
    if let Some(addr) = relay.metrics_addr() {
        notice(json, &format!("metrics on http://{addr}/metrics"));
    }
    shutdown_signal().await?;
    notice(json, "shutting down");
    relay.shutdown().await;
    Ok(())
}

/// A line for the operator on stderr: plain, or (with JSON logs) as a log event, so that
/// every line of a JSON log is one object.
fn notice(json: bool, text: &str) {
    if json {
        tracing::warn!(notice = text);
    } else {
        eprintln!("{text}");
    }
}

/// Starts the relay; while its PostgreSQL server is unreachable, tries again (every 1 s at
/// first, then less often, up to every 30 s) instead of exiting, so a node started before its
/// database comes up by itself. Its port stays closed meanwhile, so clients use other nodes.
async fn start_when_reachable(options: RelayOptions, json: bool) -> Result<backchannel_relay::RunningRelay> {
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        match backchannel_relay::start(options.clone()).await {
            Err(backchannel_relay::RelayError::PostgresUnreachable { location, reason }) => {
                notice(
                    json,
                    &format!(
                        "PostgreSQL at {location} is unreachable ({reason}); trying again in {} s",
                        wait.as_secs()
                    ),
                );
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    r = shutdown_signal() => { r?; bail!("stopped before PostgreSQL could be reached") }
                }
                wait = (wait * 2).min(std::time::Duration::from_secs(30));
            }
            other => return Ok(other?),
        }
    }
}

/// The flags (and file), checked and turned into the relay's options.
fn options(args: &RelayArgs) -> Result<RelayOptions> {
    let data = args.data.clone().context("--data DIR is needed (or `data = \"DIR\"` in --config)")?;
    let store: StoreSpec = args.store.as_deref().unwrap_or("sqlite").parse()?;
    let queue_rate = args.queue_rate.unwrap_or(100);
    if let Some(format) = &args.log_format {
        check_log_format(format)?;
    }
    let metrics_token = match &args.metrics_token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the metrics token file {}", path.display()))?;
            Some(MetricsToken::new(&text)?)
        }
        None => None,
    };
    let config = RelayConfig {
        block_size: args.block_size.unwrap_or(backchannel_wire::DEFAULT_BLOCK_SIZE),
        ttl: config::duration(args.ttl.as_deref().unwrap_or("14d"))?,
        max_store_bytes: args.max_store_mb.map(|mb| mb.saturating_mul(1024 * 1024)),
        queue_creations_per_sec: queue_rate,
        queue_creation_burst: queue_rate.saturating_mul(10),
        max_connections: args.max_connections.map_or(1024, |n| n as usize),
        metrics_listen: args.metrics_listen,
        metrics_token,
        log_client_ips: args.log_client_ips,
        ..RelayConfig::default()
    };
    config.validate()?;
    let nodes = match &args.nodes {
        Some(list) => settings::parse_nodes(list)?,
        None => Vec::new(),
    };
    if nodes.len() > backchannel_wire::MAX_NODES {
        bail!("--nodes lists at most {} nodes", backchannel_wire::MAX_NODES);
    }
    let tls = TlsFiles {
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
        next_cert: args.tls_next_cert.clone(),
        next_key: args.tls_next_key.clone(),
    };
    Ok(RelayOptions {
        listen: args.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4443))),
        data_dir: data,
        store,
        public_host: args.public_host.clone(),
        nodes,
        tls,
        config,
    })
}

/// The settings in force, as a config file would hold them (no secrets: the store URL's
/// password and the metrics token are left out).
fn effective(args: &RelayArgs, o: &RelayOptions) -> String {
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| format!("{:?}", p.display().to_string()));
    let c = &o.config;
    let mut lines = vec![
        format!("listen = \"{}\"", o.listen),
        format!("data = {:?}", o.data_dir.display().to_string()),
        format!("store = {:?}", store_shown(&o.store)),
        format!("block-size = {}", c.block_size),
        format!("ttl = \"{}s\"", c.ttl_secs()),
        format!("queue-rate = {}", c.queue_creations_per_sec),
        format!("max-connections = {}", c.max_connections),
        format!("log-format = {:?}", args.log_format.as_deref().unwrap_or("text")),
        format!("log-client-ips = {}", c.log_client_ips),
    ];
    let optional = [
        ("public-host", o.public_host.as_ref().map(|h| format!("{h:?}"))),
        ("nodes", args.nodes.as_ref().map(|n| format!("{n:?}"))),
        ("tls-cert", path(&o.tls.cert)),
        ("tls-key", path(&o.tls.key)),
        ("tls-next-cert", path(&o.tls.next_cert)),
        ("tls-next-key", path(&o.tls.next_key)),
        ("max-store-mb", args.max_store_mb.map(|n| n.to_string())),
        ("metrics-listen", c.metrics_listen.map(|a| format!("\"{a}\""))),
        ("metrics-token-file", path(&args.metrics_token_file)),
    ];
    lines.extend(optional.into_iter().filter_map(|(k, v)| Some(format!("{k} = {}", v?))));
    lines.join("\n")
}

fn store_shown(store: &StoreSpec) -> String {
    match store {
        StoreSpec::Sqlite => "sqlite".into(),
        // The Debug form hides a password.
        StoreSpec::Postgres(_) => {
            let shown = format!("{store:?}");
            shown.trim_start_matches("Postgres(").trim_end_matches(')').to_owned()
        }
    }
}

async fn shutdown_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot watch for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("cannot watch for Ctrl-C")?;
    Ok(())
}
