//! The byte encodings both sides must compute identically: canonical terms, packages, and the
//! set elements fed to the PSI. Every element is SHA-512 of a domain-separated encoding that
//! names the probe, so elements of one probe mean nothing in another.
//!
//! The single-value probe uses the 0/1-encoding of Lin and Tzeng (2005). For `W`-bit numbers:
//! - 1-encoding `T1(X) = { (j, X >> j) : bit j of X is 1 }`,
//! - 0-encoding `T0(Y) = { (j, (Y >> j) | 1) : bit j of Y is 0 }`,
//!
//! and `X > Y` exactly when `T1(X) ∩ T0(Y)` is non-empty; it then holds one element, at the
//! highest bit where they differ. We want `x >= y`, so we compare `X = x + 1 > Y = y`, with
//! `W` the bit length of `max + 1` (public: it depends on the terms only).

use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::messages::ProbeId;
use crate::terms::Package;

/// Prefix of every hash input in this crate.
pub(crate) const DOMAIN: &[u8] = b"backchannel-redline/v1";

/// A set element: 64 uniform bytes, mapped to ristretto255 by `from_uniform_bytes`.
pub(crate) type Element = [u8; 64];

/// Which number a side holds in a single-value probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holds {
    /// The most it can give (`x`); encoded by the 1-encoding of `x + 1`.
    Gives,
    /// The least it can take (`y`); encoded by the 0-encoding of `y`.
    Takes,
}

/// Canonical, length-prefixed big-endian writer for hash inputs and terms.
#[derive(Default)]
pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// A string with a u32 length prefix (lengths are bounded by the terms' checks).
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX)).bytes(s.as_bytes())
    }
}

/// Bit width of the comparison for the range `0..=max`: enough bits for `max + 1`.
pub fn comparison_width(max: u64) -> u32 {
    u64::BITS - max.saturating_add(1).leading_zeros()
}

/// The prefixes `(j, prefix)` of the 1-encoding of `v` (over `width` bits).
fn one_prefixes(v: u64, width: u32) -> impl Iterator<Item = (u8, u64)> {
    (0..width).filter(move |&j| (v >> j) & 1 == 1).map(move |j| (j as u8, v >> j))
}

/// The prefixes `(j, prefix)` of the 0-encoding of `v` (over `width` bits).
fn zero_prefixes(v: u64, width: u32) -> impl Iterator<Item = (u8, u64)> {
    (0..width).filter(move |&j| (v >> j) & 1 == 0).map(move |j| (j as u8, (v >> j) | 1))
}

/// The single-value probe's set for one side, padded with dummies to `width` elements.
pub(crate) fn single_elements(id: &ProbeId, holds: Holds, value: u64, max: u64) -> Zeroizing<Vec<Element>> {
    let width = comparison_width(max);
    let hash_prefix = |(j, prefix): (u8, u64)| {
        hash(Writer::default().bytes(DOMAIN).bytes(b"/single").bytes(id.as_bytes()).u8(j).u64(prefix))
    };
    let mut out = Zeroizing::new(Vec::with_capacity(width as usize));
    match holds {
        Holds::Gives => out.extend(one_prefixes(value.saturating_add(1), width).map(hash_prefix)),
        Holds::Takes => out.extend(zero_prefixes(value, width).map(hash_prefix)),
    }
    pad_with_dummies(id, &mut out, width as usize);
    out
}

/// The package probe's set for one side, padded with dummies to `cap` elements.
pub(crate) fn package_elements(id: &ProbeId, packages: &[Package], cap: usize) -> Zeroizing<Vec<Element>> {
    let mut out = Zeroizing::new(Vec::with_capacity(cap));
    for package in packages {
        let mut w = Writer::default();
        w.bytes(DOMAIN).bytes(b"/package").bytes(id.as_bytes()).bytes(&package.canonical_bytes());
        out.push(hash(&mut w));
    }
    pad_with_dummies(id, &mut out, cap);
    out
}

/// Dummies hash 32 fresh random bytes under their own label, so they can never equal a real
/// element (that would need a SHA-512 collision across labels) nor each other.
fn pad_with_dummies(id: &ProbeId, set: &mut Vec<Element>, size: usize) {
    while set.len() < size {
        let nonce: [u8; 32] = crate::group::random_array();
        set.push(hash(Writer::default().bytes(DOMAIN).bytes(b"/dummy").bytes(id.as_bytes()).bytes(&nonce)));
    }
}

/// SHA-512 of what the writer holds; the input is wiped afterwards (it may encode a secret).
fn hash(w: &mut Writer) -> Element {
    let out = Sha512::digest(&w.0).into();
    zeroize::Zeroize::zeroize(&mut w.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meets(x: u64, y: u64, max: u64) -> bool {
        let w = comparison_width(max);
        let ones: Vec<_> = one_prefixes(x + 1, w).collect();
        let zeros: Vec<_> = zero_prefixes(y, w).collect();
        let common = ones.iter().filter(|p| zeros.contains(p)).count();
        assert!(common <= 1, "the 0/1-encodings meet at most once");
        common == 1
    }

    #[test]
    fn widths_cover_the_range() {
        assert_eq!(comparison_width(0), 1);
        assert_eq!(comparison_width(1), 2);
        assert_eq!(comparison_width(10), 4);
        assert_eq!(comparison_width(1 << 32), 33);
    }

    #[test]
    fn worked_example_from_the_docs() {
        // max 10 → 4 bits; x = 6 gives X = 7 = 0111, y = 5 = 0101.
        assert_eq!(one_prefixes(7, 4).collect::<Vec<_>>(), vec![(0, 7), (1, 3), (2, 1)]);
        assert_eq!(zero_prefixes(5, 4).collect::<Vec<_>>(), vec![(1, 3), (3, 1)]);
        assert!(meets(6, 5, 10));
        assert!(!meets(4, 5, 10));
    }

    #[test]
    fn edges_of_the_range() {
        let max = 1 << 32;
        assert!(meets(0, 0, max) && meets(max, max, max) && meets(max, 0, max));
        assert!(!meets(0, 1, max) && !meets(max - 1, max, max) && !meets(0, max, max));
        assert!(meets(0, 0, 0));
    }

    #[test]
    fn sets_are_padded_to_the_width() {
        let id = ProbeId::random();
        for (holds, v) in [(Holds::Gives, 0), (Holds::Gives, 1 << 32), (Holds::Takes, 0), (Holds::Takes, 7)] {
            assert_eq!(single_elements(&id, holds, v, 1 << 32).len(), 33);
        }
    }

    proptest! {
        #[test]
        fn encoding_decides_greater_or_equal(max in 0u64..=1 << 32, a in any::<u64>(), b in any::<u64>()) {
            let (x, y) = (a % (max + 1), b % (max + 1));
            prop_assert_eq!(meets(x, y, max), x >= y);
        }
    }
}
