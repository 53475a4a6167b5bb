//! Many WebSocket followers on one relay node: what an idle follower costs the relay, and
//! how fast a block reaches one follower while all the others sit idle.
//!
//! The relay runs in a child process (this binary again, with `--serve-relay`), so its
//! resident memory is the relay's alone: `VmRSS` from `/proc/PID/status` after N followers
//! subscribed (each to a queue of its own, over TLS, the relay's `subscribed` received by
//! every one), minus before any connected, divided by N. Then one follower's queue gets a
//! block at a time: latency from the send to the push arriving, with the N − 1 others idle.
//! Baseline in the same run: the same latency with that one follower alone.

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use backchannel_client::{RelayClient, WsStream, connect_ws};
use backchannel_relay::{RelayConfig, RelayOptions};
use backchannel_wire::{QueueId, QueueSecret, RelayAddress, SendItem, WsClientMessage, WsServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::Timing;
use crate::relay_load::payload;
use crate::report::Report;

/// Hidden argument: run a relay for this phase and report its address on stdout.
pub const SERVE_FLAG: &str = "--serve-relay";
/// Descriptors the relay needs beyond one per socket (store, listener, stdio).
const SPARE_FDS: u64 = 64;
/// Connections opened at once while setting up (TLS handshakes are CPU; this bounds the burst).
const CONNECTING: usize = 64;

pub async fn run(report: &mut Report, timing: Timing) -> Result<()> {
    let n: usize = std::env::var("BACKCHANNEL_BENCH_SOCKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if timing.quick { 2_000 } else { 10_000 });
    let samples = if timing.quick { 200 } else { 1_000 };
    let limit = raise_fd_limit(n as u64 + SPARE_FDS)?;
    let dir = tempfile::tempdir()?;
    let mut relay = ChildRelay::spawn(dir.path(), n + 16)?;
    let result = measure(&relay, n, samples).await;
    relay.stop();
    let m = result?;
    report.set("relay_rss_bytes_per_socket", m.rss_per_socket);
    report.set("relay_ws_10k_p99_ms", m.loaded.1);
    report.set("relay_ws_10k_p50_ms", m.loaded.0);
    report.set("relay_ws_alone_p99_ms", m.alone.1);
    report.set("relay_ws_alone_p50_ms", m.alone.0);
    report.note(format!(
        "sockets: relay in a child process (SQLite), {n} WebSocket followers over TLS on loopback, each \
         subscribed to a queue of its own; RSS per socket = growth of the relay's VmRSS from before the first \
         connection to after the last `subscribed` ({:.1} MiB for {n}), divided by {n}; latency = POST /v1/send \
         of one 4 KiB block → its push at the follower, {samples} blocks one after another, first with that \
         follower alone, then with the {} others connected and idle; file descriptors raised to {limit} \
         (soft limit, both processes)",
        m.rss_growth as f64 / (1024.0 * 1024.0),
        n - 1
    ));
    Ok(())
}

struct Measured {
    rss_per_socket: f64,
    rss_growth: u64,
    /// (p50, p99) in ms.
    alone: (f64, f64),
    loaded: (f64, f64),
}

async fn measure(relay: &ChildRelay, n: usize, samples: usize) -> Result<Measured> {
    let address = &relay.address;
    let queues = create_queues(address, n).await?;
    let mut sender = RelayClient::connect(address).await?;
    let (active, idle) = queues.split_first().context("no queues")?;
    let mut probe = follow(address, active).await?;
    let alone = latencies(&mut sender, &mut probe, active, samples).await?;
    let before = relay.rss()?;
    let followers = follow_all(address, idle).await?;
    settle(relay).await?;
    let after = relay.rss()?;
    let loaded = latencies(&mut sender, &mut probe, active, samples).await?;
    ensure!(followers.len() == n - 1, "only {} of {} followers connected", followers.len(), n - 1);
    drop(followers);
    let growth = after.saturating_sub(before);
    Ok(Measured { rss_per_socket: growth as f64 / (n - 1) as f64, rss_growth: growth, alone, loaded })
}

/// Waits until the relay's memory stops moving (deferred frees, allocator trims).
async fn settle(relay: &ChildRelay) -> Result<()> {
    let mut last = relay.rss()?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = relay.rss()?;
        if now.abs_diff(last) < 64 * 1024 {
            return Ok(());
        }
        last = now;
    }
    Ok(())
}

struct Queue {
    recv_id: QueueId,
    recv_secret: QueueSecret,
    send_id: QueueId,
    send_secret: QueueSecret,
}

async fn create_queues(address: &RelayAddress, n: usize) -> Result<Vec<Queue>> {
    let mut tasks = JoinSet::new();
    for c in 0..4 {
        let address = address.clone();
        let share = n / 4 + usize::from(c < n % 4);
        tasks.spawn(async move {
            let mut client = RelayClient::connect(&address).await?;
            let mut out = Vec::with_capacity(share);
            for _ in 0..share {
                let (created, recv_secret, send_secret) = client.create_queue().await?;
                out.push(Queue {
                    recv_id: created.recv_id,
                    recv_secret,
                    send_id: created.send_id,
                    send_secret,
                });
            }
            Ok::<_, anyhow::Error>(out)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok(all)
}

/// A WebSocket following `q`, once the relay said `subscribed`.
async fn follow(address: &RelayAddress, q: &Queue) -> Result<WsStream> {
    let mut ws = connect_ws(address).await?;
    let subscribe = WsClientMessage::Subscribe { recv_id: q.recv_id, secret: q.recv_secret.to_hex() };
    ws.send(Message::text(serde_json::to_string(&subscribe)?)).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => match serde_json::from_str::<WsServerMessage>(&t)? {
                WsServerMessage::Subscribed { .. } => return Ok(ws),
                other => bail!("relay answered the subscription with {other:?}"),
            },
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("the relay closed a WebSocket while subscribing"),
        }
    }
}

async fn follow_all(address: &RelayAddress, queues: &[Queue]) -> Result<Vec<WsStream>> {
    let mut out = Vec::with_capacity(queues.len());
    for chunk in queues.chunks(CONNECTING) {
        let opened = futures_util::future::join_all(chunk.iter().map(|q| follow(address, q))).await;
        for ws in opened {
            out.push(ws?);
        }
    }
    Ok(out)
}

/// Sends one block at a time to `q` and times its push to `ws`; returns (p50, p99) in ms.
async fn latencies(
    sender: &mut RelayClient,
    ws: &mut WsStream,
    q: &Queue,
    samples: usize,
) -> Result<(f64, f64)> {
    let mut ms = Vec::with_capacity(samples);
    let block = payload(7);
    for _ in 0..samples {
        let item = SendItem { send_id: q.send_id, secret: q.send_secret.clone(), block: block.clone() };
        let started = Instant::now();
        sender.send(vec![item]).await?;
        let seq = loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => break backchannel_wire::ws_delivery_decode(&b)?.1.seq,
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(e.into()),
                Ok(None) => bail!("the relay closed the measured WebSocket"),
                Err(_) => bail!("a block was not pushed within 10 s"),
            }
        };
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let ack = WsClientMessage::Ack { recv_id: q.recv_id, seqs: vec![seq] };
        ws.send(Message::text(serde_json::to_string(&ack)?)).await?;
    }
    ms.sort_by(f64::total_cmp);
    Ok((percentile(&ms, 50.0), percentile(&ms, 99.0)))
}

/// The relay as a child process of this bench.
pub(crate) struct ChildRelay {
    child: Child,
    stdin: Option<ChildStdin>,
    address: RelayAddress,
}

impl ChildRelay {
    fn spawn(dir: &Path, connections: usize) -> Result<Self> {
        Self::spawn_at(dir, connections, "127.0.0.1:0")
    }

    /// A relay process listening on `listen` (a restart on the same port and directory keeps
    /// its address: same certificate, same port).
    pub(crate) fn spawn_at(dir: &Path, connections: usize, listen: &str) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args([SERVE_FLAG, &dir.display().to_string(), &connections.to_string(), listen])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the relay process")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let address = line.trim().parse().with_context(|| format!("the relay process said {line:?}"))?;
        let stdin = child.stdin.take();
        Ok(Self { child, stdin, address })
    }

    fn rss(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/PID/status")?;
        Ok(kb * 1024)
    }

    pub(crate) fn address(&self) -> &RelayAddress {
        &self.address
    }

    /// SIGKILL: the relay dies with whatever it had in flight.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closing its stdin tells the relay to shut down.
    fn stop(&mut self) {
        drop(self.stdin.take());
        if self.child.wait().is_err() {
            let _ = self.child.kill();
        }
    }
}

/// Nearest rank of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The child side: a relay on `listen` with room for `connections`, its address on stdout,
/// until stdin closes.
pub async fn serve(dir: &str, connections: &str, listen: &str) -> Result<()> {
    let connections: usize = connections.parse().context("connections")?;
    raise_fd_limit(connections as u64 + SPARE_FDS)?;
    {
        let mut options = RelayOptions::new(listen.parse().context("listen address")?, dir);
        options.config = RelayConfig {
            max_connections: connections,
            rate_per_sec: 1_000_000,
            rate_burst: 1_000_000,
            queue_creations_per_sec: 1_000_000,
            queue_creation_burst: 1_000_000,
            ..RelayConfig::default()
        };
        let relay = backchannel_relay::start(options).await?;
        println!("{}", relay.address());
        std::io::stdout().flush()?;
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        })
        .await?;
        relay.shutdown().await;
        Ok(())
    }
}

/// Raises this process's soft limit on open files to at least `want` (up to the hard limit,
/// which an unprivileged process may not pass); returns the new soft limit.
fn raise_fd_limit(want: u64) -> Result<u64> {
    let (soft, hard) = current_fd_limits()?;
    if soft >= want {
        return Ok(soft);
    }
    if hard < want {
        bail!(
            "{want} file descriptors are needed but the hard limit is {hard}: raise it (ulimit -Hn) and run again"
        );
    }
    // No libc binding here (the code forbids unsafe): `prlimit` from util-linux sets it.
    let status = Command::new("prlimit")
        .args([format!("--pid={}", std::process::id()), format!("--nofile={want}:{hard}")])
        .status()
        .context("prlimit (util-linux) is needed to raise the file-descriptor limit")?;
    ensure!(status.success(), "prlimit could not raise the file-descriptor limit to {want}");
    Ok(want)
}

fn current_fd_limits() -> Result<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits.lines().find(|l| l.starts_with("Max open files")).context("no open-files limit")?;
    let nums: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    match nums.as_slice() {
        [soft, hard, ..] => Ok((*soft, *hard)),
        _ => bail!("cannot read {line:?}"),
    }
}
