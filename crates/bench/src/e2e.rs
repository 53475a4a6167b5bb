//! End-to-end note latency: Alice and Bao, two real parties (encrypted stores, durable
//! outboxes) talking through an in-process relay. Bao runs `watch` (WebSocket push) in a
//! task; Alice seals, stores and sends one note per tick of a 1 ms interval. Latency is Bao's
//! callback time minus the time Alice started sending that note (both carried in the note).

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use backchannel_client::{Engine, EngineConfig, Entry, Event, Passphrase, Update};
use backchannel_relay::{RelayOptions, RunningRelay};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::Timing;
use crate::report::Report;

const RATE_PER_S: f64 = 1_000.0;
const NOTE_BYTES: usize = 256;
/// How long to wait for stragglers after the last send.
const DRAIN: Duration = Duration::from_secs(5);

/// How many notes to send: the first `warmup` are not measured.
pub struct Pace {
    pub warmup: u64,
    pub measured: u64,
}

impl Pace {
    fn new(timing: Timing) -> Self {
        let (warmup, measured) = if timing.quick { (500, 2_000) } else { (1_000, 5_000) };
        Self { warmup, measured }
    }
}

/// One received note: its index and how long it took.
pub struct Sample {
    pub index: u64,
    pub latency_ns: u64,
}

/// Latency percentiles over the measured notes, the rate actually offered, and losses.
pub struct Measured {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub offered: Offered,
    pub missing: u64,
}

/// The rate a paced sender achieved, and how long one send took on average.
#[derive(Clone, Copy)]
pub struct Offered {
    pub per_s: f64,
    pub mean_send_ms: f64,
    /// Notes per send (1 for a sender that sends each on its own).
    pub notes_per_turn: f64,
}

pub async fn run(report: &mut Report, timing: Timing) -> Result<()> {
    let pace = Pace::new(timing);
    let dir = tempfile::tempdir()?;
    let relay =
        backchannel_relay::start(RelayOptions::new("127.0.0.1:0".parse()?, dir.path().join("relay"))).await?;
    let result = parties(&dir.path().join("one"), &[&relay], &pace).await;
    let second =
        backchannel_relay::start(RelayOptions::new("127.0.0.1:0".parse()?, dir.path().join("relay-2")))
            .await?;
    // The same at the same rate, with every note going over two hosts at once.
    let two = match &result {
        Ok(_) => Some(parties(&dir.path().join("two"), &[&relay, &second], &pace).await),
        Err(_) => None,
    };
    relay.shutdown().await;
    second.shutdown().await;
    let measured = result?;
    if let Some(two) = two {
        let two = two.context("over two hosts")?;
        report.set("e2e_p99_ms_two_routes", two.p99_ms);
        report.set("e2e_p50_ms_two_routes", two.p50_ms);
        report.set("e2e_notes_missing_two_routes", two.missing as f64);
        report.note(format!(
            "e2e over two hosts: the same exchange with an invitation naming two in-process relays, so every \
             note is sent to both and taken in once; offered {:.0} notes/s, {:.2} ms per send turn",
            two.offered.per_s, two.offered.mean_send_ms
        ));
    }
    report.set("e2e_p50_ms", measured.p50_ms);
    report.set("e2e_p99_ms", measured.p99_ms);
    report.set("e2e_offered_per_s", measured.offered.per_s);
    report.set("e2e_notes_missing", measured.missing as f64);
    report.note(format!(
        "e2e: {} warm-up + {} measured notes of {NOTE_BYTES} B at a target of {RATE_PER_S} per s (1 ms tokio \
         interval in a pacer task, missed ticks skipped, never bursts); Alice's loop seals what the pacer emitted \
         since its last turn in one SQLite transaction (queue_notes) and sends it in one relay request \
         (flush_outbox): {:.2} notes and {:.2} ms per turn; receipt = Bao's watch callback over WebSocket",
        pace.warmup, pace.measured, measured.offered.notes_per_turn, measured.offered.mean_send_ms
    ));
    if measured.offered.per_s < RATE_PER_S * 0.95 {
        report.note(format!(
            "e2e: the pacer offered only {:.0} of {RATE_PER_S} notes/s (its ticks were delayed: the machine was \
             too busy), and the latency is at that rate",
            measured.offered.per_s
        ));
    }
    crate::jetstream::run_latency(report, &pace).await
}

async fn parties(dir: &Path, relays: &[&RunningRelay], pace: &Pace) -> Result<Measured> {
    let pass = Passphrase::new("bench passphrase, not secret".into());
    let alice = Engine::init(&dir.join("alice"), &pass, "Alice", "Delegation A", EngineConfig::default())?;
    let bao = Engine::init(&dir.join("bao"), &pass, "Bao", "Delegation B", EngineConfig::default())?;
    let hosts: Vec<_> = relays.iter().map(|r| r.address().clone()).collect();
    let invitation = alice.invite(&hosts, 3600).await?;
    bao.accept(&invitation, &[]).await?;
    // The Hello, then (with several hosts) the move to fresh inboxes and its confirmation.
    for e in [&alice, &bao, &alice] {
        e.sync_once().await?;
    }
    let origin = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel();
    let (status_tx, mut status_rx) = mpsc::unbounded_channel();
    let mut updates = bao.subscribe();
    let listener = tokio::spawn(async move {
        while let Ok(update) = updates.recv().await {
            match update {
                Update::Party { event: Event::Entry { entry: Entry::Note { text, .. }, .. } } => {
                    let now = origin.elapsed().as_nanos() as u64;
                    if let Some(sample) = parse_note(&text, now) {
                        let _ = tx.send(sample);
                    }
                }
                Update::Link { up, detail, .. } => {
                    let _ = status_tx.send((up, detail));
                }
                _ => {}
            }
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let driver = tokio::spawn({
        let bao = bao.clone();
        async move {
            bao.run(async {
                let _ = stop_rx.await;
            })
            .await
        }
    });
    let result = async {
        for _ in relays {
            match tokio::time::timeout(Duration::from_secs(10), status_rx.recv()).await {
                Ok(Some((true, None))) => {}
                other => bail!("Bao's watch did not connect: {other:?}"),
            }
        }
        let offered = send_batched(pace, origin, &alice).await?;
        Ok(collect(pace, offered, rx).await)
    }
    .await;
    let _ = stop_tx.send(());
    driver.await?.context("Bao's watch stopped")?;
    listener.abort();
    result
}

/// A pacer task emits one note per 1 ms tick (missed ticks skipped, never bursts). Alice's
/// loop takes everything emitted since its last turn, seals it in one transaction
/// (`queue_notes`) and sends it in one request (`flush_outbox`), as a client whose user
/// interface and sender run side by side would. Latency counts from the tick, so time spent
/// waiting for Alice's loop is included.
async fn send_batched(pace: &Pace, origin: Instant, alice: &Engine) -> Result<Offered> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, u64)>();
    let (warmup, total) = (pace.warmup, pace.warmup + pace.measured);
    let pacer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE_PER_S));
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut measured_from = Instant::now();
        for i in 0..total {
            tick.tick().await;
            if i == warmup {
                measured_from = Instant::now();
            }
            let _ = tx.send((i, origin.elapsed().as_nanos() as u64));
        }
        measured_from.elapsed()
    });
    let (mut turns, mut busy) = (0u32, Duration::ZERO);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = rx.try_recv() {
            batch.push(next);
        }
        let started = Instant::now();
        let texts: Vec<String> = batch.iter().map(|(i, t)| note_text(*i, *t)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        alice.queue_notes("Bao", &refs)?;
        alice.flush().await?;
        busy += started.elapsed();
        turns += 1;
    }
    let window = pacer.await?;
    Ok(Offered {
        per_s: pace.measured as f64 / window.as_secs_f64(),
        mean_send_ms: busy.as_secs_f64() * 1e3 / f64::from(turns.max(1)),
        notes_per_turn: total as f64 / f64::from(turns.max(1)),
    })
}

fn note_text(index: u64, t_ns: u64) -> String {
    let mut text = format!("bench-note {index} {t_ns} ");
    text.extend(std::iter::repeat_n('.', NOTE_BYTES.saturating_sub(text.len())));
    text
}

fn parse_note(text: &str, now_ns: u64) -> Option<Sample> {
    let mut words = text.split_whitespace();
    if words.next() != Some("bench-note") {
        return None;
    }
    let index = words.next()?.parse().ok()?;
    let sent: u64 = words.next()?.parse().ok()?;
    Some(Sample { index, latency_ns: now_ns.saturating_sub(sent) })
}

/// Calls `send(index, ns since origin)` once per tick of a 1 ms interval; returns the rate
/// actually achieved over the measured part and the mean send time. A slow send makes the
/// next ticks skip rather than burst, so a sender that cannot keep up shows up as a lower rate.
pub async fn paced(
    pace: &Pace,
    origin: Instant,
    mut send: impl AsyncFnMut(u64, u64) -> Result<()>,
) -> Result<Offered> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE_PER_S));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (mut measured_from, mut busy) = (Instant::now(), Duration::ZERO);
    for i in 0..pace.warmup + pace.measured {
        tick.tick().await;
        if i == pace.warmup {
            (measured_from, busy) = (Instant::now(), Duration::ZERO);
        }
        let started = Instant::now();
        send(i, origin.elapsed().as_nanos() as u64).await?;
        busy += started.elapsed();
    }
    let n = pace.measured as f64;
    Ok(Offered {
        per_s: n / measured_from.elapsed().as_secs_f64(),
        mean_send_ms: busy.as_secs_f64() * 1e3 / n,
        notes_per_turn: 1.0,
    })
}

/// Gathers samples until every measured note arrived or `DRAIN` passed with none missing.
pub async fn collect(pace: &Pace, offered: Offered, mut rx: mpsc::UnboundedReceiver<Sample>) -> Measured {
    let wanted = pace.warmup..pace.warmup + pace.measured;
    let mut seen = HashSet::new();
    let mut latencies = Vec::with_capacity(pace.measured as usize);
    let deadline = tokio::time::Instant::now() + DRAIN;
    while (seen.len() as u64) < pace.measured {
        let Ok(Some(sample)) = tokio::time::timeout_at(deadline, rx.recv()).await else { break };
        if wanted.contains(&sample.index) && seen.insert(sample.index) {
            latencies.push(sample.latency_ns as f64 / 1e6);
        }
    }
    latencies.sort_by(f64::total_cmp);
    Measured {
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        offered,
        missing: pace.measured - seen.len() as u64,
    }
}

/// Nearest-rank percentile of sorted values (NaN when there are none).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_carry_index_and_time() {
        let text = note_text(42, 1_000_000);
        assert_eq!(text.len(), NOTE_BYTES);
        let s = parse_note(&text, 3_500_000).unwrap_or(Sample { index: 0, latency_ns: 0 });
        assert_eq!((s.index, s.latency_ns), (42, 2_500_000));
        assert!(parse_note("hello", 0).is_none());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
