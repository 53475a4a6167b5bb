//! `backchannel-bench`: measures Backchannel against baselines on the same machine, in one run,
//! and reports ratios (machines differ; ratios travel).
//!
//! Phases: `idle` (relay cost of idle queues), `client` (protocol CPU per note vs raw Olm),
//! `channel` (fan-out to 50 members vs raw Olm; ratify + verify vs raw Ed25519),
//! `relay` and `postgres` (relay throughput), `sockets` (10,000 WebSocket followers on one
//! node), `jetstream` (the broker baseline), `e2e` (note latency between two parties vs
//! JetStream publish → receipt; also over two hosts at once), `hotline` (a hotline over two
//! relay processes, one SIGKILLed mid-run: lost, doubled, failover latency, time to see the
//! host down), `engine` (the event stream of a running engine under load:
//! events per second, none lost), `probe` (a single-value probe end
//! to end through a relay; 10k and 100k package probes vs OpenMined PSI).
#![forbid(unsafe_code)]

mod channel;
mod client_cpu;
mod e2e;
mod engine_events;
mod hotline;
mod idle;
mod jetstream;
mod probe;
mod relay_load;
mod relay_push;
mod report;
mod sockets;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use report::{Machine, Report};

const HELP: &str = "\
backchannel-bench: Backchannel's own figures beside baselines measured in the same run.

USAGE: backchannel-bench [--json FILE] [--quick] [--only NAME,...]

  --json FILE   also write the results as one flat JSON object of numbers
  --quick       short phases (the whole run in about a minute), for CI smoke tests
  --only NAMES  run only these phases: idle, client, channel, relay, postgres, sockets,
                jetstream, e2e, hotline, engine, probe

Environment: BACKCHANNEL_BENCH_POSTGRES (PostgreSQL URL, default
postgres://postgres@127.0.0.1:5432/test), BACKCHANNEL_BENCH_NATS (default 127.0.0.1:4222),
BACKCHANNEL_BENCH_RELAY_CONNS=P,C (producer and consumer connections, to tune the load),
BACKCHANNEL_BENCH_SOCKETS=N (WebSocket followers in the sockets phase, default 10000; the
file-descriptor soft limit is raised to fit, with prlimit).
";

const PHASES: [&str; 11] = [
    "idle",
    "client",
    "channel",
    "relay",
    "postgres",
    "sockets",
    "jetstream",
    "e2e",
    "hotline",
    "engine",
    "probe",
];

struct Args {
    json: Option<PathBuf>,
    quick: bool,
    only: Vec<String>,
}

impl Args {
    fn parse() -> Result<Option<Self>> {
        let mut args =
            Args { json: None, quick: false, only: PHASES.iter().map(|p| (*p).to_owned()).collect() };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(None),
                "--quick" => args.quick = true,
                "--json" => args.json = Some(it.next().context("--json needs a file name")?.into()),
                "--only" => args.only = phases(&it.next().context("--only needs phase names")?)?,
                other => bail!("unknown argument {other:?}; see --help"),
            }
        }
        Ok(Some(args))
    }

    fn wants(&self, phase: &str) -> bool {
        self.only.iter().any(|p| p == phase)
    }
}

fn phases(list: &str) -> Result<Vec<String>> {
    let names: Vec<String> = list.split(',').map(|s| s.trim().to_ascii_lowercase()).collect();
    if let Some(bad) = names.iter().find(|n| !PHASES.contains(&n.as_str())) {
        bail!("unknown phase {bad:?}; the phases are {}", PHASES.join(", "));
    }
    Ok(names)
}

/// How long each timed phase runs.
#[derive(Clone, Copy)]
pub struct Timing {
    pub quick: bool,
    pub warmup: Duration,
    pub window: Duration,
}

impl Timing {
    fn new(quick: bool) -> Self {
        let (warmup, window) = if quick { (1, 3) } else { (3, 10) };
        Self { quick, warmup: Duration::from_secs(warmup), window: Duration::from_secs(window) }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    match argv.as_slice() {
        [_, flag, dir, connections] if flag == sockets::SERVE_FLAG => {
            return sockets::serve(dir, connections, "127.0.0.1:0").await;
        }
        [_, flag, dir, connections, listen] if flag == sockets::SERVE_FLAG => {
            return sockets::serve(dir, connections, listen).await;
        }
        _ => {}
    }
    let Some(args) = Args::parse()? else {
        print!("{HELP}");
        return Ok(());
    };
    let machine = Machine::detect();
    let timing = Timing::new(args.quick);
    let mut report = Report::default();
    let mut failed = Vec::new();
    // Idle first: the RSS reading is least disturbed before the heavy phases grow the heap.
    for phase in PHASES.iter().filter(|p| args.wants(p)) {
        eprintln!("== {phase}");
        if let Err(e) = run_phase(phase, &mut report, timing).await {
            report.note(format!("phase {phase} FAILED: {e:#}"));
            failed.push(*phase);
        }
    }
    report.add_ratios();
    report.print(&machine);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json(&machine))?;
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !failed.is_empty() {
        bail!("phases failed: {}", failed.join(", "));
    }
    Ok(())
}

async fn run_phase(phase: &str, report: &mut Report, timing: Timing) -> Result<()> {
    match phase {
        "idle" => idle::run(report, timing).await,
        "client" => client_cpu::run(report, timing),
        "channel" => channel::run(report, timing).await,
        "relay" => relay_load::run_sqlite(report, timing).await,
        "postgres" => relay_load::run_postgres(report, timing).await,
        "sockets" => sockets::run(report, timing).await,
        "jetstream" => jetstream::run_throughput(report, timing).await,
        "e2e" => e2e::run(report, timing).await,
        "hotline" => hotline::run(report, timing).await,
        "engine" => engine_events::run(report, timing).await,
        "probe" => probe::run(report, timing).await,
        other => bail!("no phase {other}"),
    }
}
