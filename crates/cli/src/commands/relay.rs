//! `backchannel relay`: run a host until Ctrl-C or SIGTERM.

use anyhow::{Context, Result};
use backchannel_relay::{RelayConfig, RelayOptions, StoreSpec};

use super::say;
use crate::args::RelayArgs;
use crate::config;

pub async fn run(args: RelayArgs) -> Result<()> {
    let store: StoreSpec = args.store.parse()?;
    let config = RelayConfig {
        block_size: args.block_size,
        ttl: config::duration(&args.ttl)?,
        max_store_bytes: args.max_store_mb.map(|mb| mb.saturating_mul(1024 * 1024)),
        queue_creations_per_sec: args.queue_rate,
        queue_creation_burst: args.queue_rate.saturating_mul(10),
        ..RelayConfig::default()
    };
    let options = RelayOptions {
        listen: args.listen,
        data_dir: args.data.clone(),
        store,
        public_host: args.public_host,
        config,
    };
    let relay = backchannel_relay::start(options).await?;
    say(format!("relay address: {}", relay.address()))?;
    eprintln!("serving on {}; data in {}; Ctrl-C to stop", relay.local_addr(), args.data.display());
    shutdown_signal().await?;
    eprintln!("shutting down");
    relay.shutdown().await;
    Ok(())
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
