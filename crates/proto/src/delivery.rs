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
    /// `u64::MAX` itself was received: nothing is left to expect.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    exhausted: bool,
}

impl SeqTracker {
    /// A tracker expecting `first` as the first number.
    pub fn starting_at(first: u64) -> Self {
        Self { next: first, above: BTreeSet::new(), exhausted: false }
    }

    pub fn record(&mut self, seq: u64) -> Arrival {
        if seq < self.next || self.exhausted || self.above.contains(&seq) {
            return Arrival::Duplicate;
        }
        if seq > self.next {
            self.above.insert(seq);
            return Arrival::AfterGap { missing: self.missing() };
        }
        let had_gap = !self.above.is_empty();
        self.advance();
        while self.above.remove(&self.next) {
            self.advance();
        }
        if had_gap { Arrival::Late } else { Arrival::InOrder }
    }

    /// Moves past `next`. `u64::MAX` is the last number there is: once it has arrived,
    /// `next` stays there and every later arrival is a duplicate (a peer that numbers this
    /// far can only be replaying; nothing it sends may overflow or panic us).
    fn advance(&mut self) {
        match self.next.checked_add(1) {
            Some(n) => self.next = n,
            None => self.exhausted = true,
        }
    }

    /// Inclusive ranges of numbers still missing.
    pub fn missing(&self) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        if self.exhausted {
            return gaps;
        }
        let mut expect = Some(self.next);
        for &s in &self.above {
            let Some(e) = expect else { break };
            if s > e {
                gaps.push((e, s - 1));
            }
            expect = s.checked_add(1);
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

    /// L1: a peer numbering at the very end of the range (u64::MAX) panicked `missing` in
    /// debug builds ("attempt to add with overflow") and wrapped in release.
    #[test]
    fn the_last_number_neither_overflows_nor_repeats() {
        let mut t = SeqTracker::starting_at(1);
        assert_eq!(t.record(u64::MAX), Arrival::AfterGap { missing: vec![(1, u64::MAX - 1)] });
        assert_eq!(t.record(u64::MAX), Arrival::Duplicate);
        assert_eq!(t.missing(), vec![(1, u64::MAX - 1)]);
        let mut t = SeqTracker::starting_at(u64::MAX - 1);
        assert_eq!(t.record(u64::MAX - 1), Arrival::InOrder);
        assert_eq!(t.record(u64::MAX), Arrival::InOrder);
        assert!(t.missing().is_empty());
        assert_eq!(t.record(u64::MAX), Arrival::Duplicate, "nothing comes after the last number");
        assert_eq!(t.record(3), Arrival::Duplicate);
        let mut t = SeqTracker::starting_at(u64::MAX);
        assert_eq!(t.record(u64::MAX), Arrival::InOrder);
        assert_eq!(t.record(u64::MAX), Arrival::Duplicate);
    }

    /// Huge and edge numbers in any order: never a panic, each number delivered once, and the
    /// missing ranges are exactly the numbers not yet seen between `first` and the highest.
    fn edge_seq() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..8, (u64::MAX - 8)..=u64::MAX, (1u64 << 63) - 4..(1u64 << 63) + 4, any::<u64>(),]
    }

    proptest! {
        #[test]
        fn edge_numbers_never_panic_and_deliver_once(
            first in prop_oneof![Just(0u64), Just(1u64), (u64::MAX - 4)..=u64::MAX, any::<u64>()],
            seqs in proptest::collection::vec(edge_seq(), 1..60),
        ) {
            let mut t = SeqTracker::starting_at(first);
            let mut seen = BTreeSet::new();
            for s in seqs {
                let fresh = s >= first && seen.insert(s);
                prop_assert_eq!(t.record(s) != Arrival::Duplicate, fresh, "seq {}", s);
                let missing = t.missing();
                for w in missing.windows(2) {
                    prop_assert!(w[0].1 < w[1].0);
                }
                for &(a, b) in &missing {
                    prop_assert!(a <= b && a >= first);
                    prop_assert!(!seen.contains(&a) && !seen.contains(&b));
                }
            }
            if let Some(&max) = seen.iter().max() {
                let missing: u128 = t.missing().iter().map(|(a, b)| u128::from(b - a) + 1).sum();
                prop_assert_eq!(missing, u128::from(max - first) + 1 - seen.len() as u128);
            }
        }

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
