//! Probe cost: a 10,000 × 10,000 and a 100,000 × 100,000 package probe, and a single-value
//! probe over 0..=2^32, both sides in this process (two cores), every message encoded and
//! decoded. Beside it, in the same run, OpenMined PSI (`pip install openmined.psi==2.0.6`) on
//! the same 10k × 10k task, when its Python package is installed.
//!
//! `cargo bench -p backchannel-redline --bench psi [-- --json FILE]`

use std::process::Command;
use std::time::Instant;

use backchannel_redline::*;

type Error = Box<dyn std::error::Error>;

/// Four issues of twenty options: 160,000 packages.
fn terms(cap: u32) -> ProbeTerms {
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

/// One probe end to end through bytes; returns (seconds, bytes, what A learned).
fn run(terms: &ProbeTerms, a_in: &ProbeInput, b_in: &ProbeInput) -> Result<(f64, usize, ProbeResult), Error> {
    let budget = ProbeBudget { per_issue: 10, per_phase: 10 };
    let (mut a, mut b) = (ProbeLedger::new("A", budget), ProbeLedger::new("B", budget));
    let t = Instant::now();
    let (a_waits, q) = Initiator::start(&mut a, terms, a_in)?;
    let q = q.encode();
    let (b_waits, r) = Responder::respond(&mut b, terms, b_in, &Query::decode(&q)?)?;
    let r = r.encode();
    let (a_out, d) = a_waits.finish(&mut a, &Reply::decode(&r)?)?;
    let d = d.encode();
    let b_out = b_waits.finish(&mut b, &Disclosure::decode(&d)?)?;
    let secs = t.elapsed().as_secs_f64();
    if a_out != b_out {
        return Err("the two sides disagree".into());
    }
    Ok((secs, q.len() + r.len() + d.len(), a_out.result))
}

/// Median time of three runs of an `n × n` package probe with half the items in common.
fn psi(n: u32) -> Result<(f64, usize), Error> {
    let a_in = ProbeInput::Packages((0..n).map(package).collect());
    let b_in = ProbeInput::Packages((n / 2..n + n / 2).map(package).collect());
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..3 {
        let (secs, b, result) = run(&terms(n), &a_in, &b_in)?;
        if !matches!(&result, ProbeResult::Packages(p) if p.len() == (n / 2) as usize) {
            return Err("wrong intersection".into());
        }
        times.push(secs);
        bytes = b;
    }
    Ok((median(times), bytes))
}

fn single() -> Result<(f64, usize), Error> {
    let s = SingleTerms { issue: "amount".into(), max: 1 << 32, gives: "A".into(), takes: "B".into() };
    let terms =
        ProbeTerms { phase: "exploratory".into(), may_ask: MayAsk::Either, kind: ProbeKind::Single(s) };
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..3 {
        let (secs, b, result) =
            run(&terms, &ProbeInput::Value(3_000_000_000), &ProbeInput::Value(2_999_999_999))?;
        if result != (ProbeResult::Zone { non_empty: true }) {
            return Err("wrong single-value result".into());
        }
        times.push(secs);
        bytes = b;
    }
    Ok((median(times), bytes))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// OpenMined PSI 2.0.6 on the same task (reveal-intersection mode, GCS setup, fpr 1e-9):
/// client and server setup + request + response + intersection, median of three.
const OPENMINED: &str = r#"
import time, private_set_intersection.python as psi
n = 10000
ci = [f"p{i}" for i in range(n)]
si = [f"p{i}" for i in range(n // 2, n + n // 2)]
runs = []
for _ in range(3):
    t = time.perf_counter()
    c = psi.client.CreateWithNewKey(True)
    s = psi.server.CreateWithNewKey(True)
    setup = s.CreateSetupMessage(1e-9, n, si, psi.DataStructure.GCS)
    req = c.CreateRequest(ci)
    resp = s.ProcessRequest(req)
    inter = c.GetIntersection(setup, resp)
    dt = time.perf_counter() - t
    assert len(inter) == n // 2
    runs.append((dt, setup.ByteSize() + req.ByteSize() + resp.ByteSize()))
runs.sort()
print(runs[1][0], runs[1][1])
"#;

fn openmined() -> Option<(f64, usize)> {
    let out = Command::new("python3").args(["-c", OPENMINED]).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut words = text.split_whitespace();
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let json_path = args.iter().position(|a| a == "--json").and_then(|i| args.get(i + 1));
    let (single_s, single_bytes) = single()?;
    let (psi_10k_s, psi_10k_bytes) = psi(10_000)?;
    let (psi_100k_s, psi_100k_bytes) = psi(100_000)?;
    let per_item = psi_10k_bytes as f64 / 10_000.0;
    println!("probe_single_ms {:.2}", single_s * 1e3);
    println!("probe_single_bytes {single_bytes}");
    println!("psi_10k_s {psi_10k_s:.3}");
    println!("psi_10k_bytes {psi_10k_bytes}");
    println!("psi_10k_bytes_per_item {per_item:.1}");
    println!("psi_100k_s {psi_100k_s:.3}");
    println!("psi_100k_bytes {psi_100k_bytes}");
    let mut json = serde_json::json!({
        "probe_single_ms": single_s * 1e3, "probe_single_bytes": single_bytes,
        "psi_10k_s": psi_10k_s, "psi_10k_bytes": psi_10k_bytes, "psi_10k_bytes_per_item": per_item,
        "psi_100k_s": psi_100k_s, "psi_100k_bytes": psi_100k_bytes,
    });
    match openmined() {
        Some((s, bytes)) => {
            println!("openmined_psi_10k_s {s:.3}   (OpenMined PSI 2.0.6 via Python, same machine, same run)");
            println!("openmined_psi_10k_bytes {bytes}");
            println!("psi_10k_speedup_vs_openmined {:.2}x", s / psi_10k_s);
            println!("psi_10k_bytes_ratio_vs_openmined {:.2}", psi_10k_bytes as f64 / bytes as f64);
            json["openmined_psi_10k_s"] = s.into();
            json["openmined_psi_10k_bytes"] = bytes.into();
        }
        None => {
            println!("OpenMined PSI not installed here (pip install openmined.psi==2.0.6): not run.");
            println!("published anchor (OpenMined PSI, C++, 10k x 10k, other machine): 0.96 s, 341.8 KB");
            println!("psi_10k_ratio_vs_published_anchor {:.2}x   (machines differ)", 0.96 / psi_10k_s);
        }
    }
    if let Some(path) = json_path {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}
