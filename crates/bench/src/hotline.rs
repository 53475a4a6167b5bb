//! A hotline over two hosts, one of them killed: Alice and Bao share a hotline channel
//! (heartbeat every second) over two relay processes on loopback, and each sends one note per
//! second. A third of the way in, relay A is SIGKILLed; two thirds in, it is started again on
//! the same port and directory. Measured: notes lost and notes shown twice (both must be 0),
//! the sent → shown latency while A is dead beside the same before the kill, and the time from
//! the kill until each side's engine reports A's route down.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use backchannel_client::{
    Engine, EngineConfig, Entry, Event, Hotline, Mode, Passphrase, Role, RouteState, Update,
};
use tokio::sync::watch;

use crate::Timing;
use crate::report::Report;
use crate::sockets::ChildRelay;

const HEARTBEAT_SECS: u32 = 1;
/// How long to wait, after the last note, for every note to arrive.
const DRAIN: Duration = Duration::from_secs(30);

/// What one side's engine showed: when each note was shown (ns since the origin), how many
/// times, and every time a relay's route was reported down (a fresh line's routes are down
/// until first heard, so only reports after the kill count).
#[derive(Default)]
struct Seen {
    shown: HashMap<String, (u64, u32)>,
    down: Vec<(String, u64)>,
}

pub async fn run(report: &mut Report, timing: Timing) -> Result<()> {
    let total = if timing.quick { Duration::from_secs(15) } else { Duration::from_secs(45) };
    let dir = tempfile::tempdir()?;
    let mut hosts = [
        ChildRelay::spawn_at(&dir.path().join("relay-a"), 256, "127.0.0.1:0")?,
        ChildRelay::spawn_at(&dir.path().join("relay-b"), 256, "127.0.0.1:0")?,
    ];
    let result = exchange(dir.path(), &mut hosts, total, report).await;
    for h in &mut hosts {
        h.kill();
    }
    result
}

async fn exchange(
    dir: &Path,
    hosts: &mut [ChildRelay; 2],
    total: Duration,
    report: &mut Report,
) -> Result<()> {
    let pass = Passphrase::new("bench passphrase, not secret".into());
    let alice = Engine::init(&dir.join("alice"), &pass, "Alice", "Delegation A", EngineConfig::default())?;
    let bao = Engine::init(&dir.join("bao"), &pass, "Bao", "Delegation B", EngineConfig::default())?;
    let addresses = [hosts[0].address().clone(), hosts[1].address().clone()];
    let invitation = alice.invite(&addresses, 3600).await?;
    bao.accept(&invitation, &[]).await?;
    for e in [&alice, &bao, &alice] {
        e.sync_once().await?;
    }
    let hotline = Hotline { heartbeat_secs: HEARTBEAT_SECS, path_test_secs: 3600 };
    alice.channel_create("line", Mode::Direct, Role::Principal, None, Some(hotline))?;
    alice.channel_add("line", "Bao", Role::Principal).await?;
    bao.sync_once().await?;
    alice.sync_once().await?;

    let origin = Instant::now();
    let seen = [Arc::new(Mutex::new(Seen::default())), Arc::new(Mutex::new(Seen::default()))];
    let followers = [follow(&alice, &seen[0], origin), follow(&bao, &seen[1], origin)];
    let (stop, stopped) = watch::channel(false);
    let drivers = [drive(&alice, stopped.clone()), drive(&bao, stopped)];
    let (talk, talking) = watch::channel(true);
    let senders = [send(&alice, "alice", talking.clone(), origin), send(&bao, "bao", talking, origin)];

    // Let the routes settle, then kill A a third of the way in and bring it back at two thirds.
    let killed_relay = hosts[0].address().to_string();
    tokio::time::sleep(total / 3).await;
    let killed_at = origin.elapsed().as_nanos() as u64;
    hosts[0].kill();
    tokio::time::sleep(total / 3).await;
    let listen = port_of(&killed_relay)?;
    let back = tokio::task::block_in_place(|| {
        ChildRelay::spawn_at(&dir.join("relay-a"), 256, &format!("127.0.0.1:{listen}"))
    })?;
    if back.address().to_string() != killed_relay {
        bail!("relay A came back as {} rather than {killed_relay}", back.address());
    }
    hosts[0] = back;
    let back_at = origin.elapsed().as_nanos() as u64;
    tokio::time::sleep(total / 3).await;
    talk.send(false)?;
    let mut sent = Vec::new();
    for s in senders {
        sent.push(s.await??);
    }

    // Drain: wait until each note reached the other side (or DRAIN passed).
    let deadline = Instant::now() + DRAIN;
    while Instant::now() < deadline && !all_shown(&sent, &seen) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true)?;
    for d in drivers {
        d.await?.context("an engine's driver stopped")?;
    }
    followers.iter().for_each(|f| f.abort());

    let figures = Figures::of(&sent, &seen, killed_at, back_at, &killed_relay);
    report.set("hotline_lost", figures.lost as f64);
    report.set("hotline_dup_shown", figures.doubled as f64);
    report.set("hotline_p99_ms_two_hosts", figures.before_p99_ms);
    report.set("hotline_failover_p99_ms", figures.failover_p99_ms);
    report.set("hotline_down_detect_s", figures.detect_s);
    report.set("hotline_heartbeat_s", f64::from(HEARTBEAT_SECS));
    report.note(format!(
        "hotline: a hotline channel (heartbeat {HEARTBEAT_SECS} s) between two engines over two relay processes \
         on loopback, one note per second each way for {} s; relay A SIGKILLed at {:.0} s and started again \
         on the same port at {:.0} s; {} notes sent, {} of them while A was dead ({} p99 samples); detection = \
         kill until both engines reported A's route down (the later of the two)",
        total.as_secs(),
        killed_at as f64 / 1e9,
        back_at as f64 / 1e9,
        figures.sent,
        figures.during,
        figures.during,
    ));
    Ok(())
}

/// Follows an engine's updates into `seen`.
fn follow(engine: &Engine, seen: &Arc<Mutex<Seen>>, origin: Instant) -> tokio::task::JoinHandle<()> {
    let (mut updates, seen) = (engine.subscribe(), seen.clone());
    tokio::spawn(async move {
        while let Ok(update) = updates.recv().await {
            let now = origin.elapsed().as_nanos() as u64;
            let mut seen = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match update {
                Update::Party { event: Event::Entry { entry: Entry::Note { text, .. }, .. } } => {
                    let e = seen.shown.entry(text).or_insert((now, 0));
                    e.1 += 1;
                }
                Update::Route { relay, state: RouteState::Down, .. } => seen.down.push((relay, now)),
                _ => {}
            }
        }
    })
}

fn drive(
    engine: &Engine,
    mut stopped: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<backchannel_client::Result<()>> {
    let engine = engine.clone();
    tokio::spawn(async move {
        engine
            .run(async move {
                while !*stopped.borrow_and_update() {
                    if stopped.changed().await.is_err() {
                        return;
                    }
                }
            })
            .await
    })
}

/// One note per second until `talking` turns false; each note carries its send time.
fn send(
    engine: &Engine,
    who: &'static str,
    talking: watch::Receiver<bool>,
    origin: Instant,
) -> tokio::task::JoinHandle<Result<Vec<(String, u64)>>> {
    let engine = engine.clone();
    tokio::spawn(async move {
        let mut sent = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        while *talking.borrow() {
            tick.tick().await;
            let at = origin.elapsed().as_nanos() as u64;
            let text = format!("hotline {who} {}", sent.len());
            engine.send("line", &text, &[]).await?;
            sent.push((text, at));
        }
        Ok(sent)
    })
}

/// `sent[0]` are Alice's notes (shown at Bao, `seen[1]`), `sent[1]` Bao's.
fn all_shown(sent: &[Vec<(String, u64)>], seen: &[Arc<Mutex<Seen>>; 2]) -> bool {
    sent.iter().enumerate().all(|(i, notes)| {
        let seen = seen[1 - i].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        notes.iter().all(|(t, _)| seen.shown.contains_key(t))
    })
}

struct Figures {
    sent: usize,
    during: usize,
    lost: usize,
    doubled: u32,
    before_p99_ms: f64,
    failover_p99_ms: f64,
    detect_s: f64,
}

impl Figures {
    fn of(
        sent: &[Vec<(String, u64)>],
        seen: &[Arc<Mutex<Seen>>; 2],
        killed: u64,
        back: u64,
        relay: &str,
    ) -> Self {
        let (mut before, mut during) = (Vec::new(), Vec::new());
        let (mut lost, mut doubled, mut total) = (0, 0, 0);
        for (i, notes) in sent.iter().enumerate() {
            let receiver = seen[1 - i].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (text, at) in notes {
                total += 1;
                let Some((shown, times)) = receiver.shown.get(text) else {
                    lost += 1;
                    continue;
                };
                doubled += times - 1;
                let ms = shown.saturating_sub(*at) as f64 / 1e6;
                match *at {
                    t if t < killed => before.push(ms),
                    t if t < back => during.push(ms),
                    _ => {}
                }
            }
        }
        let detect = seen
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let first =
                    s.down.iter().filter(|(r, at)| r == relay && *at >= killed).map(|(_, at)| *at).min();
                first.map_or(f64::NAN, |at| (at - killed) as f64 / 1e9)
            })
            .fold(0.0, |worst: f64, d| if d.is_nan() || worst.is_nan() { f64::NAN } else { worst.max(d) });
        let n = during.len();
        Figures {
            sent: total,
            during: n,
            lost,
            doubled,
            before_p99_ms: p99(before),
            failover_p99_ms: p99(during),
            detect_s: detect,
        }
    }
}

fn p99(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = (0.99 * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The port of a single-node relay address (`bcr://HOST:PORT#FINGERPRINT`).
fn port_of(address: &str) -> Result<u16> {
    address
        .rsplit_once('#')
        .and_then(|(a, _)| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .with_context(|| format!("no port in {address}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_the_address() {
        assert_eq!(port_of("bcr://127.0.0.1:4443#abcd").ok(), Some(4443));
        assert!(port_of("nonsense").is_err());
    }

    #[test]
    fn p99_is_nearest_rank() {
        assert_eq!(p99((1..=100).map(f64::from).collect()), 99.0);
        assert!(p99(Vec::new()).is_nan());
    }
}
