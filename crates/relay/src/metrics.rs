//! Counters for `/metrics`, in the Prometheus text format. Nothing here names a queue or a
//! peer: only totals.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::StoreStats;

/// Why a request (or a send item, or a WebSocket message) was turned down.
pub(crate) const REASONS: [&str; 9] = [
    "bad_request",
    "unauthorized",
    "too_large",
    "queue_full",
    "rate_limited",
    "unavailable",
    "internal",
    "refused",
    "other",
];

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub blocks_stored: AtomicU64,
    pub blocks_delivered: AtomicU64,
    pub blocks_acked: AtomicU64,
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    rejected: [AtomicU64; REASONS.len()],
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a rejection under its reason (an `ApiError` code, or "refused").
    pub fn reject(&self, reason: &str, n: u64) {
        let slot = REASONS.iter().position(|r| *r == reason).unwrap_or(REASONS.len() - 1);
        self.rejected[slot].fetch_add(n, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        Self::add(&self.connections_open, 1);
        Self::add(&self.connections_total, 1);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The exposition text; store gauges are left out when the store could not answer.
    pub fn render(&self, stats: Option<StoreStats>) -> String {
        let mut out = String::new();
        gauge(
            &mut out,
            "backchannel_relay_store_up",
            "1 if the store answered this scrape, else 0.",
            u64::from(stats.is_some()),
        );
        if let Some(s) = stats {
            gauge(&mut out, "backchannel_relay_queues", "Queues held.", s.queues);
            gauge(&mut out, "backchannel_relay_stored_blocks", "Unacknowledged blocks held.", s.blocks);
            gauge(
                &mut out,
                "backchannel_relay_stored_bytes",
                "Bytes of unacknowledged blocks held.",
                s.bytes,
            );
        }
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut out,
            "backchannel_relay_blocks_stored_total",
            "Blocks committed.",
            load(&self.blocks_stored),
        );
        counter(
            &mut out,
            "backchannel_relay_blocks_delivered_total",
            "Blocks sent to receivers.",
            load(&self.blocks_delivered),
        );
        counter(
            &mut out,
            "backchannel_relay_blocks_acked_total",
            "Blocks acknowledged and deleted.",
            load(&self.blocks_acked),
        );
        counter(
            &mut out,
            "backchannel_relay_connections_total",
            "Connections accepted.",
            load(&self.connections_total),
        );
        gauge(
            &mut out,
            "backchannel_relay_open_connections",
            "Connections open now.",
            load(&self.connections_open),
        );
        let _ = writeln!(
            out,
            "# HELP backchannel_relay_rejected_total Requests or items turned down, by reason."
        );
        let _ = writeln!(out, "# TYPE backchannel_relay_rejected_total counter");
        for (reason, n) in REASONS.iter().zip(&self.rejected) {
            let _ = writeln!(out, "backchannel_relay_rejected_total{{reason=\"{reason}\"}} {}", load(n));
        }
        out
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    metric(out, name, help, "gauge", value);
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    metric(out, name, help, "counter", value);
}

fn metric(out: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_reasons() {
        let m = Metrics::default();
        Metrics::add(&m.blocks_stored, 3);
        m.reject("queue_full", 2);
        m.reject("no such reason", 1);
        let text = m.render(Some(StoreStats { queues: 1, blocks: 2, bytes: 8192 }));
        assert!(text.contains("backchannel_relay_blocks_stored_total 3\n"), "{text}");
        assert!(text.contains("backchannel_relay_rejected_total{reason=\"queue_full\"} 2\n"), "{text}");
        assert!(text.contains("backchannel_relay_rejected_total{reason=\"other\"} 1\n"), "{text}");
        assert!(text.contains("backchannel_relay_stored_bytes 8192\n"), "{text}");
        assert!(!m.render(None).contains("backchannel_relay_queues"));
    }
}
