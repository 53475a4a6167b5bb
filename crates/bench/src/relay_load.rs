//! Relay throughput: an in-process relay, 64 queues, 4 KiB blocks. Producer connections send
//! batches whose items go round-robin over the queues; consumer connections each own a share
//! of the queues, fetch and acknowledge. A block counts once its acknowledgement is answered
//! (so it was stored, fetched and deleted). Warm up, then count over a fixed window.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use backchannel_client::RelayClient;
use backchannel_relay::{RelayConfig, RelayOptions, StoreSpec};
use backchannel_wire::{DEFAULT_BLOCK_SIZE, QueueId, QueueSecret, RelayAddress, SendItem, SendOutcome};
use tokio::task::JoinSet;

use crate::Timing;
use crate::report::Report;

pub const QUEUES: usize = 64;
pub const SEND_BATCH: usize = 64;
pub const FETCH_MAX: usize = 256;
/// Producers pause while this many blocks are stored but not yet acknowledged, so the rate
/// measured is a sustained one and not a backlog filling up.
pub const BACKLOG_CAP: u64 = 8_192;
/// Chosen by trying 1–8 of each on 2 cores; 4 producers and 2 consumers did best with push
/// consumers (override with BACKCHANNEL_BENCH_RELAY_CONNS=P,C).
const PRODUCERS: usize = 4;
const CONSUMERS: usize = 2;
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// How consumers receive: pushed over one WebSocket per connection (what `watch` uses), or
/// by polling each queue with fetch (what `sync` uses).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Consume {
    Push,
    Fetch,
}

pub async fn run_sqlite(report: &mut Report, timing: Timing) -> Result<()> {
    for (consume, key) in
        [(Consume::Push, "relay_blocks_per_s"), (Consume::Fetch, "relay_blocks_per_s_fetch")]
    {
        let dir = tempfile::tempdir()?;
        let (rate, shape) = measure(StoreSpec::Sqlite, dir.path(), timing, consume).await?;
        report.set(key, rate);
        report.note(format!("relay (SQLite, {consume:?} consumers): {shape}"));
    }
    Ok(())
}

/// The same load against PostgreSQL, in a schema of its own that is dropped afterwards.
pub async fn run_postgres(report: &mut Report, timing: Timing) -> Result<()> {
    let url = std::env::var("BACKCHANNEL_BENCH_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
    let admin = match connect_postgres(&url).await {
        Ok(client) => client,
        Err(e) => {
            report.note(format!("PostgreSQL unreachable ({e:#}); relay_blocks_per_s_postgres skipped"));
            return Ok(());
        }
    };
    let schema = format!("bcbench_{}_{}", std::process::id(), unix_ms());
    admin.batch_execute(&format!("CREATE SCHEMA {schema}")).await.context("cannot create a bench schema")?;
    let result = postgres_both(report, &with_search_path(&url, &schema), timing).await;
    let dropped = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await;
    result?;
    dropped.with_context(|| format!("cannot drop bench schema {schema}"))?;
    Ok(())
}

async fn postgres_both(report: &mut Report, url: &str, timing: Timing) -> Result<()> {
    let modes = [
        (Consume::Push, "relay_blocks_per_s_postgres"),
        (Consume::Fetch, "relay_blocks_per_s_postgres_fetch"),
    ];
    for (consume, key) in modes {
        let dir = tempfile::tempdir()?;
        let (rate, shape) = measure(StoreSpec::Postgres(url.to_owned()), dir.path(), timing, consume).await?;
        report.set(key, rate);
        report.note(format!(
            "relay (PostgreSQL, {consume:?} consumers, a schema of its own dropped after): {shape}"
        ));
    }
    let (rate, shape) = measure_two_nodes(url, timing).await?;
    report.set("relay_blocks_per_s_postgres_two_nodes", rate);
    report.note(format!(
        "relay (PostgreSQL, two nodes: producers on one, WebSocket consumers on the other, woken by the \
         first node's notifications): {shape}"
    ));
    Ok(())
}

/// Two relay nodes on one database: producers send through the first, consumers follow
/// through the second, so every block crosses from node to node by way of the database.
async fn measure_two_nodes(url: &str, timing: Timing) -> Result<(f64, String)> {
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = backchannel_relay::start(options(StoreSpec::Postgres(url.to_owned()), dir_a.path())?).await?;
    let b = backchannel_relay::start(options(StoreSpec::Postgres(url.to_owned()), dir_b.path())?).await?;
    let result = drive(a.address(), b.address(), timing, Consume::Push).await;
    a.shutdown().await;
    b.shutdown().await;
    let (rate, waits) = result?;
    Ok((rate, format!("as the one-node PostgreSQL run; {waits}")))
}

fn options(store: StoreSpec, dir: &Path) -> Result<RelayOptions> {
    let mut options = RelayOptions::new("127.0.0.1:0".parse()?, dir);
    options.store = store;
    // The per-connection request limit guards against abuse; here it would cap the load.
    options.config = RelayConfig { rate_per_sec: 1_000_000, rate_burst: 1_000_000, ..RelayConfig::default() };
    Ok(options)
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

async fn connect_postgres(url: &str) -> Result<tokio_postgres::Client> {
    let connecting = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, connection) =
        tokio::time::timeout(Duration::from_secs(5), connecting).await.context("timed out")??;
    tokio::spawn(connection);
    Ok(client)
}

/// The URL with the server told to use `schema` first, so the relay's unqualified tables
/// land there.
fn with_search_path(url: &str, schema: &str) -> String {
    if url.contains("://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-c%20search_path%3D{schema}")
    } else {
        format!("{url} options='-c search_path={schema}'")
    }
}

/// Starts a relay on `store` and drives the load; returns blocks/s and a description.
async fn measure(store: StoreSpec, dir: &Path, timing: Timing, consume: Consume) -> Result<(f64, String)> {
    let relay = backchannel_relay::start(options(store, dir)?).await?;
    let result = drive(relay.address(), relay.address(), timing, consume).await;
    relay.shutdown().await;
    let (rate, waits) = result?;
    let (producers, consumers) = connections()?;
    let shape = format!(
        "{QUEUES} queues, {producers} producer connections sending {SEND_BATCH}-block batches, {consumers} consumer \
         connections {}, backlog capped at {BACKLOG_CAP} blocks, TLS loopback, {:?} warm-up + {:?} window; {waits}",
        match consume {
            Consume::Push =>
                format!("each subscribed over WebSocket to its queues, acking up to {FETCH_MAX} at a time"),
            Consume::Fetch => format!("fetching up to {FETCH_MAX} per queue and acking"),
        },
        timing.warmup,
        timing.window
    );
    Ok((rate, shape))
}

fn connections() -> Result<(usize, usize)> {
    let Ok(text) = std::env::var("BACKCHANNEL_BENCH_RELAY_CONNS") else { return Ok((PRODUCERS, CONSUMERS)) };
    let parsed = text.split_once(',').map(|(p, c)| (p.trim().parse::<usize>(), c.trim().parse::<usize>()));
    match parsed {
        Some((Ok(p), Ok(c))) if p > 0 && c > 0 && c <= QUEUES => Ok((p, c)),
        _ => bail!("BACKCHANNEL_BENCH_RELAY_CONNS is `P,C` (producers, consumers), got {text:?}"),
    }
}

#[derive(Clone)]
pub struct Queue {
    pub recv_id: QueueId,
    pub recv_secret: QueueSecret,
    send_id: QueueId,
    send_secret: QueueSecret,
}

/// Counters shared by every connection of one run.
#[derive(Default)]
pub struct Progress {
    pub stop: AtomicBool,
    pub stored: AtomicU64,
    pub acked: AtomicU64,
    /// Microseconds spent waiting for send and ack answers, and how many there were.
    waits: [AtomicU64; 4],
}

impl Progress {
    pub fn backlog(&self) -> u64 {
        self.stored.load(Ordering::Relaxed).saturating_sub(self.acked.load(Ordering::Relaxed))
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn waited(&self, which: usize, since: Instant) {
        self.waits[2 * which].fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.waits[2 * which + 1].fetch_add(1, Ordering::Relaxed);
    }

    /// Mean milliseconds a send (0) or an ack (1) waited for its answer.
    fn mean_wait_ms(&self, which: usize) -> f64 {
        let total = self.waits[2 * which].load(Ordering::Relaxed) as f64;
        total / 1000.0 / self.waits[2 * which + 1].load(Ordering::Relaxed).max(1) as f64
    }
}

/// Runs the load; returns blocks/s and how long requests waited.
async fn drive(
    address: &RelayAddress,
    consumer_address: &RelayAddress,
    timing: Timing,
    consume: Consume,
) -> Result<(f64, String)> {
    let (producers, consumers) = connections()?;
    let queues = Arc::new(create_queues(address).await?);
    let progress = Arc::new(Progress::default());
    let mut tasks = JoinSet::new();
    for p in 0..producers {
        tasks.spawn(produce(address.clone(), queues.clone(), p * SEND_BATCH / producers, progress.clone()));
    }
    for c in 0..consumers {
        let mine: Vec<Queue> = queues.iter().skip(c).step_by(consumers).cloned().collect();
        match consume {
            Consume::Push => {
                tasks.spawn(crate::relay_push::consume(consumer_address.clone(), mine, progress.clone()))
            }
            Consume::Fetch => tasks.spawn(consume_fetch(consumer_address.clone(), mine, progress.clone())),
        };
    }
    let rate = count_window(&mut tasks, &progress, timing).await?;
    let acks = progress.waits[3].load(Ordering::Relaxed).max(1);
    let waits = format!(
        "a send waited {:.1} ms for its answer on average, an ack {:.1} ms ({:.0} blocks per ack)",
        progress.mean_wait_ms(0),
        progress.mean_wait_ms(1),
        progress.acked.load(Ordering::Relaxed) as f64 / acks as f64
    );
    Ok((rate, waits))
}

/// Waits out the warm-up, counts acknowledged items over the window, then stops every task
/// and surfaces the first error any of them hit.
pub async fn count_window(
    tasks: &mut JoinSet<Result<()>>,
    progress: &Progress,
    timing: Timing,
) -> Result<f64> {
    run_for(tasks, timing.warmup).await?;
    let (start, before) = (Instant::now(), progress.acked.load(Ordering::Relaxed));
    run_for(tasks, timing.window).await?;
    let (elapsed, after) = (start.elapsed(), progress.acked.load(Ordering::Relaxed));
    progress.stop.store(true, Ordering::Relaxed);
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok((after - before) as f64 / elapsed.as_secs_f64())
}

/// Sleeps for `period` unless a task ends first, which during a run means it failed.
async fn run_for(tasks: &mut JoinSet<Result<()>>, period: Duration) -> Result<()> {
    tokio::select! {
        () = tokio::time::sleep(period) => Ok(()),
        Some(done) = tasks.join_next() => {
            done??;
            bail!("a load connection stopped early")
        }
    }
}

async fn create_queues(address: &RelayAddress) -> Result<Vec<Queue>> {
    let mut client = RelayClient::connect(address).await?;
    let mut queues = Vec::with_capacity(QUEUES);
    for _ in 0..QUEUES {
        let (created, recv_secret, send_secret) = client.create_queue().await?;
        ensure!(created.block_size == DEFAULT_BLOCK_SIZE, "relay block size is {}", created.block_size);
        queues.push(Queue { recv_id: created.recv_id, recv_secret, send_id: created.send_id, send_secret });
    }
    Ok(queues)
}

/// 4 KiB of bytes that do not compress (the relay stores ciphertext).
pub fn payload(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..DEFAULT_BLOCK_SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn produce(
    address: RelayAddress,
    queues: Arc<Vec<Queue>>,
    mut next: usize,
    progress: Arc<Progress>,
) -> Result<()> {
    let mut client = RelayClient::connect(&address).await?;
    let block = payload(next as u64 + 1);
    while !progress.stopping() {
        if progress.backlog() >= BACKLOG_CAP {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let items: Vec<SendItem> = (0..SEND_BATCH)
            .map(|i| {
                let q = &queues[(next + i) % queues.len()];
                SendItem { send_id: q.send_id, secret: q.send_secret.clone(), block: block.clone() }
            })
            .collect();
        next = (next + SEND_BATCH) % queues.len();
        let started = Instant::now();
        let answer = client.send(items).await?;
        progress.waited(0, started);
        let stored = answer.results.iter().filter(|o| **o == SendOutcome::Stored).count();
        progress.stored.fetch_add(stored as u64, Ordering::Relaxed);
    }
    Ok(())
}

async fn consume_fetch(address: RelayAddress, mine: Vec<Queue>, progress: Arc<Progress>) -> Result<()> {
    let mut client = RelayClient::connect(&address).await?;
    while !progress.stopping() {
        let mut got = 0;
        for q in &mine {
            let fetched = client.fetch(&q.recv_id, &q.recv_secret, FETCH_MAX).await?;
            if fetched.items.is_empty() {
                continue;
            }
            ensure!(
                fetched.items.iter().all(|d| d.block.len() == DEFAULT_BLOCK_SIZE),
                "a fetched block has the wrong size"
            );
            let seqs: Vec<u64> = fetched.items.iter().map(|d| d.seq).collect();
            let started = Instant::now();
            client.ack(&q.recv_id, &q.recv_secret, seqs).await?;
            progress.waited(1, started);
            progress.acked.fetch_add(fetched.items.len() as u64, Ordering::Relaxed);
            got += fetched.items.len();
        }
        if got == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_goes_into_either_connection_string_form() {
        assert_eq!(
            with_search_path("postgres://u@h/db", "s1"),
            "postgres://u@h/db?options=-c%20search_path%3Ds1"
        );
        assert_eq!(
            with_search_path("postgres://u@h/db?sslmode=disable", "s1"),
            "postgres://u@h/db?sslmode=disable&options=-c%20search_path%3Ds1"
        );
        assert_eq!(with_search_path("host=h user=u", "s1"), "host=h user=u options='-c search_path=s1'");
    }
}
