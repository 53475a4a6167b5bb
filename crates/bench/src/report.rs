//! The results: named numbers, each printed beside the baseline measured in the same run,
//! with ratios and the project's targets, and written out as one flat JSON object.

use std::time::{SystemTime, UNIX_EPOCH};

/// Which way a target points.
#[derive(Clone, Copy)]
enum Target {
    AtLeast(f64),
    Below(f64),
    /// The ratio to the baseline, at least this.
    AtLeastRatio(f64),
}

/// One table line: our figure, its baseline, the ratio's key, and the target if any.
struct Line {
    label: &'static str,
    ours: &'static str,
    baseline: Option<&'static str>,
    ratio: Option<&'static str>,
    target: Option<Target>,
}

const fn line(label: &'static str, ours: &'static str) -> Line {
    Line { label, ours, baseline: None, ratio: None, target: None }
}

const fn vs(label: &'static str, ours: &'static str, baseline: &'static str, ratio: &'static str) -> Line {
    Line { label, ours, baseline: Some(baseline), ratio: Some(ratio), target: None }
}

const LINES: [Line; 34] = [
    Line {
        target: Some(Target::AtLeast(20_000.0)),
        ..vs("relay, SQLite (blocks/s)", "relay_blocks_per_s", "jetstream_msgs_per_s", "ratio_vs_jetstream")
    },
    vs(
        "relay, SQLite, fetch (blocks/s)",
        "relay_blocks_per_s_fetch",
        "jetstream_msgs_per_s",
        "ratio_fetch_vs_jetstream",
    ),
    Line {
        target: Some(Target::AtLeastRatio(1.0)),
        ..vs(
            "relay, PostgreSQL, push (blocks/s)",
            "relay_blocks_per_s_postgres",
            "jetstream_msgs_per_s",
            "ratio_postgres_vs_jetstream",
        )
    },
    Line {
        target: Some(Target::AtLeastRatio(1.0)),
        ..vs(
            "relay, PostgreSQL, fetch (blocks/s)",
            "relay_blocks_per_s_postgres_fetch",
            "jetstream_msgs_per_s",
            "ratio_postgres_fetch_vs_jetstream",
        )
    },
    vs(
        "relay, PostgreSQL, two nodes (blocks/s)",
        "relay_blocks_per_s_postgres_two_nodes",
        "jetstream_msgs_per_s",
        "ratio_postgres_two_nodes_vs_jetstream",
    ),
    Line {
        target: Some(Target::Below(8192.0)),
        ..line("relay RSS per idle WebSocket (bytes)", "relay_rss_bytes_per_socket")
    },
    vs(
        "WebSocket delivery p99, 10k sockets (ms)",
        "relay_ws_10k_p99_ms",
        "relay_ws_alone_p99_ms",
        "ratio_ws_10k_p99_vs_alone",
    ),
    vs(
        "WebSocket delivery p50, 10k sockets (ms)",
        "relay_ws_10k_p50_ms",
        "relay_ws_alone_p50_ms",
        "ratio_ws_10k_p50_vs_alone",
    ),
    vs("e2e latency p50 (ms)", "e2e_p50_ms", "jetstream_e2e_p50_ms", "ratio_e2e_p50_vs_jetstream"),
    Line {
        target: Some(Target::Below(10.0)),
        ..vs("e2e latency p99 (ms)", "e2e_p99_ms", "jetstream_e2e_p99_ms", "ratio_e2e_p99_vs_jetstream")
    },
    Line {
        target: Some(Target::Below(10.0)),
        ..vs(
            "e2e latency p99, two hosts (ms)",
            "e2e_p99_ms_two_routes",
            "e2e_p99_ms",
            "ratio_e2e_p99_two_routes_vs_one",
        )
    },
    Line { target: Some(Target::Below(0.5)), ..line("hotline notes lost", "hotline_lost") },
    Line { target: Some(Target::Below(0.5)), ..line("hotline notes shown twice", "hotline_dup_shown") },
    Line {
        target: Some(Target::Below(2000.0)),
        ..vs(
            "hotline p99, a host dead (ms)",
            "hotline_failover_p99_ms",
            "hotline_p99_ms_two_hosts",
            "ratio_hotline_failover_vs_two_hosts",
        )
    },
    Line {
        target: Some(Target::Below(3.0)),
        ..line("hotline kill -> route down (s; 1 s beats)", "hotline_down_detect_s")
    },
    Line {
        baseline: Some("jetstream_e2e_offered_per_s"),
        ..line("e2e offered rate (per s)", "e2e_offered_per_s")
    },
    Line {
        target: Some(Target::Below(50.0)),
        ..vs("client CPU per note (µs)", "client_us_per_note", "olm_us_per_note", "ratio_client_vs_olm")
    },
    Line {
        target: Some(Target::Below(50.0)),
        ..vs(
            "client CPU per note, one way (µs)",
            "client_us_per_note_one_way",
            "olm_us_per_note_one_way",
            "ratio_client_vs_olm_one_way",
        )
    },
    Line {
        target: Some(Target::Below(2.0)),
        ..vs(
            "channel of 50, CPU per note (ms)",
            "fanout_ms_per_note_50",
            "olm_fanout_ms_per_note_50",
            "ratio_fanout_vs_olm",
        )
    },
    line("channel of 50, wall per note incl. fsync (ms)", "fanout_wall_ms_per_note_50"),
    vs(
        "channel of 50, seals alone, in memory (ms)",
        "fanout_seal_ms_per_note_50",
        "olm_fanout_ms_per_note_50",
        "ratio_fanout_seal_vs_olm",
    ),
    vs("ratify + verify (ms)", "ratify_verify_ms", "ed25519_sign_verify_ms", "ratio_ratify_vs_ed25519"),
    line("idle queue, relay disk (bytes)", "relay_disk_bytes_per_idle_queue"),
    line("idle queue, process RSS (bytes)", "relay_rss_bytes_per_idle_queue"),
    line("e2e notes lost or late", "e2e_notes_missing"),
    line("engine events to a subscriber (per s)", "engine_events_per_s"),
    Line { target: Some(Target::Below(0.5)), ..line("engine events lost", "engine_events_lost") },
    Line { target: Some(Target::Below(50.0)), ..line("probe, single value e2e (ms)", "probe_single_ms") },
    line("probe, single value + terms (ms)", "probe_single_with_terms_ms"),
    Line {
        target: Some(Target::Below(16_384.0)),
        ..line("probe, single value (relay bytes)", "probe_single_bytes")
    },
    line("probe, single value (PSI bytes)", "probe_single_psi_bytes"),
    vs("PSI 10k x 10k (s)", "psi_10k_s", "openmined_psi_10k_s", "ratio_psi_10k_vs_openmined"),
    vs(
        "PSI 10k x 10k (bytes per item)",
        "psi_10k_bytes_per_item",
        "openmined_psi_10k_bytes_per_item",
        "ratio_psi_10k_bytes_vs_openmined",
    ),
    vs("PSI 100k x 100k (s)", "psi_100k_s", "openmined_psi_100k_s", "ratio_psi_100k_vs_openmined"),
];

/// Everything one run measured, in the order it was measured, plus notices.
#[derive(Default)]
pub struct Report {
    metrics: Vec<(&'static str, f64)>,
    notes: Vec<String>,
}

impl Report {
    pub fn set(&mut self, key: &'static str, value: f64) {
        self.metrics.retain(|(k, _)| *k != key);
        self.metrics.push((key, value));
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.metrics.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// A line printed under the table (choices made, skips, shortfalls).
    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("  note: {text}");
        self.notes.push(text);
    }

    /// Adds each ratio whose two figures were both measured.
    pub fn add_ratios(&mut self) {
        for l in &LINES {
            let (Some(base_key), Some(ratio_key)) = (l.baseline, l.ratio) else { continue };
            if let (Some(ours), Some(base)) = (self.get(l.ours), self.get(base_key))
                && base > 0.0
            {
                self.set(ratio_key, ours / base);
            }
        }
    }

    pub fn print(&self, machine: &Machine) {
        println!("\nBackchannel bench, {} UTC", machine.date);
        println!("machine: {} cores, {}", machine.nproc, machine.cpu);
        println!("\n{:<34} {:>12} {:>12} {:>8}  target", "measure", "ours", "baseline", "ratio");
        for l in &LINES {
            let ours = self.get(l.ours);
            let base = l.baseline.and_then(|k| self.get(k));
            if ours.is_none() && base.is_none() {
                continue;
            }
            let ratio = l.ratio.and_then(|k| self.get(k)).map_or("-".to_owned(), |r| format!("{r:.2}"));
            let ratio_value = l.ratio.and_then(|k| self.get(k));
            let target = l.target.map_or(String::new(), |t| verdict(t, ours, ratio_value));
            println!("{:<34} {:>12} {:>12} {:>8}  {target}", l.label, show(ours), show(base), ratio);
        }
        println!(
            "(baselines: NATS JetStream for the relay and latency lines, the same follower alone for the \
             10k-socket latency, raw vodozemac Olm for client CPU, OpenMined PSI for PSI)"
        );
        for n in &self.notes {
            println!("- {n}");
        }
    }

    /// A flat JSON object of numbers: every metric, plus the machine's core count and time.
    pub fn to_json(&self, machine: &Machine) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (k, v) in &self.metrics {
            if let Some(n) = serde_json::Number::from_f64(*v) {
                map.insert((*k).to_owned(), n.into());
            }
        }
        map.insert("nproc".into(), machine.nproc.into());
        map.insert("unix_time".into(), machine.unix_time.into());
        serde_json::Value::Object(map)
    }
}

fn show(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 1000.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn verdict(t: Target, ours: Option<f64>, ratio: Option<f64>) -> String {
    if let Target::AtLeastRatio(min) = t {
        return match ratio {
            Some(r) => format!("{} >= {min}x", if r >= min { "met" } else { "MISSED" }),
            None => "not measured".into(),
        };
    }
    let Some(v) = ours else { return "not measured".into() };
    match t {
        Target::AtLeastRatio(_) => unreachable_ratio(),
        Target::AtLeast(min) => format!("{} >= {min}", if v >= min { "met" } else { "MISSED" }),
        Target::Below(max) => format!("{} < {max}", if v < max { "met" } else { "MISSED" }),
    }
}

/// Handled before the match; kept apart so the match stays exhaustive without a panic.
fn unreachable_ratio() -> String {
    String::new()
}

/// Where and when the run happened.
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub date: String,
    pub unix_time: u64,
}

impl Machine {
    pub fn detect() -> Self {
        let nproc = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim()))
            .unwrap_or("unknown CPU")
            .to_owned();
        let unix_time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self { nproc, cpu, date: utc_date(unix_time), unix_time }
    }
}

/// `YYYY-MM-DD HH:MM` for a Unix time (days-to-civil, proleptic Gregorian).
fn utc_date(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(utc_date(0), "1970-01-01 00:00");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13");
    }

    #[test]
    fn ratios_need_both_figures() {
        let mut r = Report::default();
        r.set("relay_blocks_per_s", 30_000.0);
        r.add_ratios();
        assert!(r.get("ratio_vs_jetstream").is_none());
        r.set("jetstream_msgs_per_s", 15_000.0);
        r.add_ratios();
        assert_eq!(r.get("ratio_vs_jetstream"), Some(2.0));
    }
}
