//! What an idle queue costs the relay: N queues created on a fresh in-process SQLite relay,
//! then the growth of its data directory (measured with the relay shut down, so the WAL is
//! checkpointed into relay.db) and of this process's resident memory, each divided by N.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use backchannel_client::RelayClient;
use backchannel_relay::{RelayConfig, RelayOptions};
use backchannel_wire::RelayAddress;
use tokio::task::JoinSet;

use crate::Timing;
use crate::report::Report;

/// Connections creating queues at once (creation is one durable commit each, grouped).
const CREATORS: usize = 4;

pub async fn run(report: &mut Report, timing: Timing) -> Result<()> {
    let n = if timing.quick { 2_000 } else { 10_000 };
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("relay");
    let listen = "127.0.0.1:0".parse()?;
    // First start creates the schema; measure the empty, checkpointed store.
    backchannel_relay::start(RelayOptions::new(listen, &data)).await?.shutdown().await;
    let disk_before = dir_bytes(&data)?;
    let mut options = RelayOptions::new(listen, &data);
    // The relay-wide limit on new queues (100/s) guards against floods; here it would cap
    // the very thing measured.
    options.config = RelayConfig {
        queue_creations_per_sec: 1_000_000,
        queue_creation_burst: 1_000_000,
        ..RelayConfig::default()
    };
    let relay = backchannel_relay::start(options).await?;
    let created = async {
        create(relay.address(), CREATORS).await?; // warms the connection and request paths
        let rss_before = rss_bytes()?;
        create(relay.address(), n).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<_, anyhow::Error>(rss_bytes()?.saturating_sub(rss_before))
    }
    .await;
    relay.shutdown().await;
    let rss_growth = created?;
    let disk_growth = dir_bytes(&data)?.saturating_sub(disk_before);
    report.set("relay_disk_bytes_per_idle_queue", disk_growth as f64 / n as f64);
    report.set("relay_rss_bytes_per_idle_queue", rss_growth as f64 / n as f64);
    report.note(format!(
        "idle: {n} queues created over {CREATORS} connections; disk = growth of the data dir after shutdown \
         (WAL checkpointed), RSS = growth of this whole process (relay and clients) from /proc/self/statm"
    ));
    Ok(())
}

/// Creates `n` queues spread over `CREATORS` connections; the secrets are dropped (the
/// queues stay idle).
async fn create(address: &RelayAddress, n: usize) -> Result<()> {
    let mut tasks = JoinSet::new();
    for c in 0..CREATORS {
        let share = n / CREATORS + usize::from(c < n % CREATORS);
        let address = address.clone();
        tasks.spawn(async move {
            let mut client = RelayClient::connect(&address).await?;
            for _ in 0..share {
                client.create_queue().await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

/// Resident set size: pages from /proc/self/statm times the page size from the aux vector.
fn rss_bytes() -> Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm.split_whitespace().nth(1).context("short /proc/self/statm")?.parse()?;
    Ok(pages * page_size())
}

fn page_size() -> u64 {
    const AT_PAGESZ: u64 = 6;
    let auxv = std::fs::read("/proc/self/auxv").unwrap_or_default();
    let words: Vec<u64> =
        auxv.chunks_exact(8).filter_map(|c| c.try_into().ok().map(u64::from_ne_bytes)).collect();
    words.chunks_exact(2).find(|kv| kv[0] == AT_PAGESZ).map_or(4096, |kv| kv[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory() {
        assert!(page_size().is_power_of_two());
        assert!(rss_bytes().unwrap_or(0) > 0);
    }
}
