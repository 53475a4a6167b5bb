//! Probes. A single-value probe over 0..=2^32 end to end between two real parties (encrypted
//! stores, durable outboxes) in a direct channel, through an in-process relay on loopback.
//! And package probes of 10,000 × 10,000 and 100,000 × 100,000 items, both sides in this
//! process through encoded bytes (as `crates/redline/benches/psi.rs` does), beside OpenMined
//! PSI 2.0.6 on the same task in the same run when its Python package is installed
//! (`pip install openmined.psi==2.0.6`); otherwise beside the figure measured earlier on this machine class, labelled
//! as a constant.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use backchannel_client::{
    Asker, Engine, EngineConfig, Passphrase, ProbeBudget, ProbeInputSpec, ProbeRequest, ProbeSpec,
    ProbeStatus, ProbeView,
};
use backchannel_proto::channel::{Mode, Role};
use backchannel_redline::{
    Disclosure, Initiator, IssueOptions, MayAsk, OptionSpace, Package, PackageTerms, ProbeInput, ProbeKind,
    ProbeLedger, ProbeResult, ProbeTerms, Query, Reply, Responder,
};
use backchannel_relay::{RelayOptions, RunningRelay};

use crate::Timing;
use crate::report::Report;

/// OpenMined PSI 2.0.6 as measured on this machine class (2 cores): used only when it cannot
/// run here, and labelled so.
const BASELINE_OPENMINED_10K_S: f64 = 2.44;
const BASELINE_OPENMINED_100K_S: f64 = 24.3;

pub async fn run(report: &mut Report, timing: Timing) -> Result<()> {
    single_end_to_end(report, if timing.quick { 5 } else { 15 }).await?;
    psi(report, timing)
}

async fn single_end_to_end(report: &mut Report, runs: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let relay =
        backchannel_relay::start(RelayOptions::new("127.0.0.1:0".parse()?, dir.path().join("relay"))).await?;
    let outcome = single_runs(report, dir.path(), &relay, runs).await;
    relay.shutdown().await;
    outcome
}

/// Alice and Bao in a direct channel; `runs` timed probes, then one more counting relay blocks.
async fn single_runs(report: &mut Report, dir: &Path, relay: &RunningRelay, runs: usize) -> Result<()> {
    let pass = Passphrase::new("bench passphrase".into());
    let alice = Engine::init(&dir.join("alice"), &pass, "Alice", "Delegation A", EngineConfig::default())?;
    let bao = Engine::init(&dir.join("bao"), &pass, "Bao", "Delegation B", EngineConfig::default())?;
    let invitation = alice.invite(std::slice::from_ref(relay.address()), 3600).await?;
    bao.accept(&invitation, &[]).await?;
    alice.sync_once().await?;
    alice.channel_create("talks", Mode::Direct, Role::Principal, None, None)?;
    alice.channel_add("talks", "Bao", Role::Principal).await?;
    alice.flush().await?;
    bao.sync_once().await?;
    let (mut psi_ms, mut whole_ms) = (Vec::new(), Vec::new());
    let mut psi_bytes = 0;
    for k in 0..runs {
        let (t, view) = one_probe(&alice, &bao, k, None).await?;
        psi_ms.push(t.psi_ms);
        whole_ms.push(t.whole_ms);
        psi_bytes = view.bytes;
    }
    let mut blocks = Blocks { relay, sizes: Vec::new() };
    one_probe(&alice, &bao, runs, Some(&mut blocks)).await?;
    let block_bytes = |range: std::ops::Range<usize>| blocks.sizes[range].iter().sum::<u64>() as f64;
    report.set("probe_single_ms", median(psi_ms));
    report.set("probe_single_with_terms_ms", median(whole_ms));
    report.set("probe_single_bytes", block_bytes(2..5));
    report.set("probe_single_with_terms_bytes", block_bytes(0..5));
    report.set("probe_single_psi_bytes", psi_bytes as f64);
    report.note(format!(
        "probe_single: a single-value probe over 0..=2^32 between two parties in a direct channel through a relay on \
         loopback, median of {runs}. probe_single_ms = from the asker's sync that takes in the acceptance (it starts \
         the probe) to the answerer knowing the result: query, reply and disclosure each sealed, stored durably, sent, \
         fetched and committed (4 syncs); probe_single_with_terms_ms adds proposing and accepting the terms. \
         probe_single_bytes = relay blocks ({} B each) carrying query, reply and disclosure: {} blocks; with the terms \
         messages {} blocks; probe_single_psi_bytes = the encoded query + reply + disclosure inside them",
        backchannel_wire::DEFAULT_BLOCK_SIZE,
        blocks.sizes[2..5].iter().sum::<u64>() / backchannel_wire::DEFAULT_BLOCK_SIZE as u64,
        blocks.sizes.iter().sum::<u64>() / backchannel_wire::DEFAULT_BLOCK_SIZE as u64,
    ));
    Ok(())
}

struct Times {
    psi_ms: f64,
    whole_ms: f64,
}

/// What the relay holds after each step (the previous message is acknowledged, so deleted,
/// before the next is sent): the block bytes of propose, accept, query, reply, disclosure.
struct Blocks<'a> {
    relay: &'a RunningRelay,
    sizes: Vec<u64>,
}

impl Blocks<'_> {
    async fn take(this: &mut Option<&mut Self>) -> Result<()> {
        if let Some(b) = this {
            let stats = b.relay.stats().await?;
            b.sizes.push(stats.blocks * backchannel_wire::DEFAULT_BLOCK_SIZE as u64);
        }
        Ok(())
    }
}

/// One probe on its own issue: Alice asks and gives 3,000,000,000; Bao takes 2,999,999,999.
async fn one_probe(
    alice: &Engine,
    bao: &Engine,
    k: usize,
    mut blocks: Option<&mut Blocks<'_>>,
) -> Result<(Times, ProbeView)> {
    let spec = ProbeSpec::Single {
        issue: format!("amount {k}"),
        max: 1 << 32,
        gives: "me".into(),
        takes: "them".into(),
    };
    let budget = Some(ProbeBudget { per_issue: 1000, per_phase: 1000 });
    let req = ProbeRequest { with: "Bao".into(), spec, asker: Asker::Me, budget };
    let start = Instant::now();
    let id = alice.probe_propose("talks", &req).await?.0.id;
    alice.probe_input("talks", &id, &ProbeInputSpec::Value(3_000_000_000)).await?;
    Blocks::take(&mut blocks).await?;
    bao.probe_accept("talks", &id).await?;
    bao.probe_input("talks", &id, &ProbeInputSpec::Value(2_999_999_999)).await?;
    Blocks::take(&mut blocks).await?;
    let psi = Instant::now();
    alice.sync_once().await?; // takes in the acceptance, starts: the query
    Blocks::take(&mut blocks).await?;
    bao.sync_once().await?; // the reply
    Blocks::take(&mut blocks).await?;
    alice.sync_once().await?; // the result, and the disclosure
    Blocks::take(&mut blocks).await?;
    bao.sync_once().await?; // the result
    let times = Times { psi_ms: ms(psi), whole_ms: ms(start) };
    Ok((times, check_done(alice, bao, &id)?))
}

fn check_done(alice: &Engine, bao: &Engine, id: &str) -> Result<ProbeView> {
    let mut views = Vec::new();
    for party in [alice, bao] {
        let view = party.probes("talks")?.probes.into_iter().find(|p| p.id == id).context("probe missing")?;
        ensure!(
            matches!(view.status, ProbeStatus::Done { result: ProbeResult::Zone { non_empty: true } }),
            "probe {id}: {:?}",
            view.status
        );
        views.push(view);
    }
    views.pop().context("no view")
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Four issues of twenty options: 160,000 packages (as in crates/redline/benches/psi.rs).
fn package_terms(cap: u32) -> ProbeTerms {
    let issue =
        |i| IssueOptions { issue: format!("issue {i}"), options: (0..20).map(|o| format!("o{o}")).collect() };
    let space = OptionSpace { issues: (0..4).map(issue).collect() };
    ProbeTerms {
        phase: "drafting".into(),
        may_ask: MayAsk::Either,
        kind: ProbeKind::Package(PackageTerms { space, cap }),
    }
}

fn package(i: u32) -> Package {
    Package::new(vec![i % 20, i / 20 % 20, i / 400 % 20, i / 8000 % 20])
}

/// One `n × n` package probe, half the items shared, through encoded bytes: (seconds, bytes).
fn psi_once(n: u32) -> Result<(f64, usize)> {
    let terms = package_terms(n);
    let a_in = ProbeInput::Packages((0..n).map(package).collect());
    let b_in = ProbeInput::Packages((n / 2..n + n / 2).map(package).collect());
    let budget = backchannel_client::DEFAULT_BUDGET;
    let (mut a, mut b) = (ProbeLedger::new("A", budget), ProbeLedger::new("B", budget));
    let t = Instant::now();
    let (a_waits, q) = Initiator::start(&mut a, &terms, &a_in)?;
    let q = q.encode();
    let (b_waits, r) = Responder::respond(&mut b, &terms, &b_in, &Query::decode(&q)?)?;
    let r = r.encode();
    let (a_out, d) = a_waits.finish(&mut a, &Reply::decode(&r)?)?;
    let d = d.encode();
    let b_out = b_waits.finish(&mut b, &Disclosure::decode(&d)?)?;
    let secs = t.elapsed().as_secs_f64();
    ensure!(a_out == b_out, "the two sides disagree");
    if !matches!(&a_out.result, ProbeResult::Packages(p) if p.len() == (n / 2) as usize) {
        bail!("wrong intersection");
    }
    Ok((secs, q.len() + r.len() + d.len()))
}

/// Median of `runs`.
fn psi_median(n: u32, runs: usize) -> Result<(f64, usize)> {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let (s, b) = psi_once(n)?;
        times.push(s);
        bytes = b;
    }
    Ok((median(times), bytes))
}

fn psi(report: &mut Report, timing: Timing) -> Result<()> {
    let (s10, b10) = psi_median(10_000, 3)?;
    report.set("psi_10k_s", s10);
    report.set("psi_10k_bytes", b10 as f64);
    report.set("psi_10k_bytes_per_item", b10 as f64 / 10_000.0);
    match openmined(10_000, 3) {
        Some((s, bytes)) => {
            report.set("openmined_psi_10k_s", s);
            report.set("openmined_psi_10k_bytes_per_item", bytes / 10_000.0);
        }
        None => {
            report.set("openmined_psi_10k_s", BASELINE_OPENMINED_10K_S);
            report.note(format!(
                "OpenMined PSI is not installed here (pip install openmined.psi==2.0.6): its line shows the CONSTANT \
                 measured earlier on this machine class ({BASELINE_OPENMINED_10K_S} s for 10k, {BASELINE_OPENMINED_100K_S} s for 100k, \
                 this machine class), not a measurement of this run"
            ));
        }
    }
    if timing.quick {
        report.note("psi_100k_s skipped in --quick (about 30 s)");
    } else {
        let (s100, b100) = psi_median(100_000, 3)?;
        report.set("psi_100k_s", s100);
        report.set("psi_100k_bytes", b100 as f64);
        let base = openmined(100_000, 1).map_or(BASELINE_OPENMINED_100K_S, |(s, _)| s);
        report.set("openmined_psi_100k_s", base);
    }
    report.note(
        "psi: package probes of n × n items (half shared) over 4 issues × 20 options, both sides in this process on \
         two threads through encoded query, reply and disclosure (the sans-IO core, no relay), median of 3, every \
         intersection checked; baseline: OpenMined PSI 2.0.6 (C++ via Python, P-256, one thread, reveal-intersection, \
         GCS, fpr 1e-9) on the same task in the same run, median of 3 for 10k, one run for 100k",
    );
    Ok(())
}

/// OpenMined PSI 2.0.6: client and server setup, request, response, intersection; the
/// median time of `runs` and the bytes per run (setup + request + response).
const OPENMINED: &str = r#"
import sys, time, private_set_intersection.python as psi
n, runs = int(sys.argv[1]), int(sys.argv[2])
ci = [f"p{i}" for i in range(n)]
si = [f"p{i}" for i in range(n // 2, n + n // 2)]
out = []
for _ in range(runs):
    t = time.perf_counter()
    c = psi.client.CreateWithNewKey(True)
    s = psi.server.CreateWithNewKey(True)
    setup = s.CreateSetupMessage(1e-9, n, si, psi.DataStructure.GCS)
    req = c.CreateRequest(ci)
    resp = s.ProcessRequest(req)
    inter = c.GetIntersection(setup, resp)
    dt = time.perf_counter() - t
    assert len(inter) == n // 2
    out.append((dt, setup.ByteSize() + req.ByteSize() + resp.ByteSize()))
out.sort()
print(out[len(out) // 2][0], out[len(out) // 2][1])
"#;

fn openmined(n: u32, runs: usize) -> Option<(f64, f64)> {
    let out =
        Command::new("python3").args(["-c", OPENMINED, &n.to_string(), &runs.to_string()]).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut words = text.split_whitespace();
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}
