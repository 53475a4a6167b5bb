//! Exactly once to the user: per-sender, per-channel sequence numbers show gaps (something was
//! dropped or is late) and duplicates (something was replayed or delivered twice).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// What the arrival of one sequence number means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// In order; nothing missing before it.
    InOrder,
    /// New, but earlier numbers are still missing (the gap is shown to the user).
    AfterGap { missing: Vec<(u64, u64)> },
    /// Fills (part of) a gap that was shown earlier.
    Late,
    /// Already delivered: a duplicate or a replay; not shown again.
    Duplicate,
}

/// Tracks one sender's sequence numbers in one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqTracker {
    /// Lowest number not yet received.
    next: u64,
    /// Numbers received above `next`.
    above: BTreeSet<u64>,
}

impl SeqTracker {
    /// A tracker expecting `first` as the first number.
    pub fn starting_at(first: u64) -> Self {
        Self { next: first, above: BTreeSet::new() }
    }

    pub fn record(&mut self, seq: u64) -> Arrival {
        if seq < self.next || self.above.contains(&seq) {
            return Arrival::Duplicate;
        }
        if seq > self.next {
            self.above.insert(seq);
            return Arrival::AfterGap { missing: self.missing() };
        }
        let had_gap = !self.above.is_empty();
        self.next += 1;
        while self.above.remove(&self.next) {
            self.next += 1;
        }
        if had_gap { Arrival::Late } else { Arrival::InOrder }
    }

    /// Inclusive ranges of numbers still missing.
    pub fn missing(&self) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut expect = self.next;
        for &s in &self.above {
            if s > expect {
                gaps.push((expect, s - 1));
            }
            expect = s + 1;
        }
        gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn gap_opens_and_closes() {
        let mut t = SeqTracker::starting_at(1);
        assert_eq!(t.record(1), Arrival::InOrder);
        assert_eq!(t.record(4), Arrival::AfterGap { missing: vec![(2, 3)] });
        assert_eq!(t.record(2), Arrival::Late);
        assert_eq!(t.missing(), vec![(3, 3)]);
        assert_eq!(t.record(3), Arrival::Late);
        assert!(t.missing().is_empty());
        assert_eq!(t.record(5), Arrival::InOrder);
        assert_eq!(t.record(4), Arrival::Duplicate);
        assert_eq!(t.record(1), Arrival::Duplicate);
    }

    proptest! {
        #[test]
        fn any_order_delivers_each_once(mut seqs in proptest::collection::vec(1u64..60, 1..120)) {
            let mut t = SeqTracker::starting_at(1);
            let mut seen = BTreeSet::new();
            for s in seqs.drain(..) {
                let fresh = seen.insert(s);
                prop_assert_eq!(t.record(s) != Arrival::Duplicate, fresh);
            }
            let max = seen.iter().max().copied().unwrap_or(0);
            let missing: u64 = t.missing().iter().map(|(a, b)| b - a + 1).sum();
            prop_assert_eq!(missing, max - seen.len() as u64);
        }
    }
}
