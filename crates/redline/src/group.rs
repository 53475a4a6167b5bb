//! ristretto255 operations for the PSI, split across two threads: hashing elements to the
//! group, blinding by a secret scalar, checking and re-blinding the other side's points,
//! and shuffling. Every scalar here is secret, so every multiplication is constant-time.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::encoding::Element;
use crate::error::{RedlineError, Result};
use crate::messages::{PointBytes, Tag};

/// Below this many items one thread is faster than two.
const PARALLEL_MIN: usize = 64;

/// A side's blinding exponent for one probe. Zeroed on drop, never printed.
///
/// It is stored halved: `compress(k·P)` is computed as `double_and_compress_batch(k/2 · P)`,
/// which replaces one inverse square root per point by one shared batch inversion.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct SecretScalar {
    half: Scalar,
}

impl std::fmt::Debug for SecretScalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretScalar(<redacted>)")
    }
}

/// Persisted as the 32 canonical bytes of the halved scalar, so a waiting probe survives a
/// restart (the client keeps it in its encrypted store). Never printed.
impl serde::Serialize for SecretScalar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let bytes = zeroize::Zeroizing::new(self.half.to_bytes());
        serde::Serialize::serialize(&*bytes, s)
    }
}

impl<'de> serde::Deserialize<'de> for SecretScalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bytes = zeroize::Zeroizing::new(<[u8; 32] as serde::Deserialize>::deserialize(d)?);
        let half: Option<Scalar> = Scalar::from_canonical_bytes(*bytes).into();
        match half {
            Some(half) if half != Scalar::ZERO => Ok(Self { half }),
            _ => Err(serde::de::Error::custom("not a valid probe scalar")),
        }
    }
}

impl SecretScalar {
    pub fn random() -> Self {
        let two_inverse = Scalar::from(2u8).invert();
        loop {
            let mut wide: [u8; 64] = random_array();
            let k = Scalar::from_bytes_mod_order_wide(&wide);
            wide.zeroize();
            if k != Scalar::ZERO {
                return Self { half: k * two_inverse };
            }
        }
    }

    /// `compress(k·P)` for every point, one batch inversion for all.
    fn times_compressed(&self, points: &[RistrettoPoint]) -> Vec<PointBytes> {
        let halves: Vec<RistrettoPoint> = points.iter().map(|p| self.half * p).collect();
        RistrettoPoint::double_and_compress_batch(&halves).into_iter().map(|c| c.to_bytes()).collect()
    }
}

/// An array of fresh random bytes from the operating system.
pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill_random(&mut out);
    out
}

/// `k·H(e)` for each element, compressed: the blinded set a side sends.
pub(crate) fn blind(elements: &[Element], k: &SecretScalar) -> Result<Vec<PointBytes>> {
    in_two(elements, |chunk| {
        let points: Vec<RistrettoPoint> = chunk.iter().map(RistrettoPoint::from_uniform_bytes).collect();
        Ok(k.times_compressed(&points))
    })
}

/// Checks the other side's points and returns `k·P` for each, compressed.
pub(crate) fn reblind(points: &[PointBytes], k: &SecretScalar) -> Result<Vec<PointBytes>> {
    in_two(points, |chunk| Ok(k.times_compressed(&decompress_all(chunk)?)))
}

/// Like [`reblind`], keeping only the tags (first 16 bytes) of the results.
pub(crate) fn reblind_tags(points: &[PointBytes], k: &SecretScalar) -> Result<Vec<Tag>> {
    Ok(reblind(points, k)?.iter().map(tag).collect())
}

pub(crate) fn tag(point: &PointBytes) -> Tag {
    let mut t = [0u8; 16];
    t.copy_from_slice(&point[..16]);
    t
}

fn decompress_all(points: &[PointBytes]) -> Result<Vec<RistrettoPoint>> {
    points.iter().map(decompress).collect()
}

fn decompress(bytes: &PointBytes) -> Result<RistrettoPoint> {
    let point = CompressedRistretto(*bytes)
        .decompress()
        .ok_or(RedlineError::PeerMisbehaved("sent bytes that are not a ristretto255 point"))?;
    match point.is_identity() {
        true => Err(RedlineError::PeerMisbehaved("sent the identity point")),
        false => Ok(point),
    }
}

/// Runs `f` on the two halves of `items` on two threads (the caller's and one more) and
/// concatenates the results in order. Falls back to one thread if none can be spawned.
fn in_two<T: Sync, U: Send>(items: &[T], f: impl Fn(&[T]) -> Result<Vec<U>> + Sync) -> Result<Vec<U>> {
    if items.len() < PARALLEL_MIN {
        return f(items);
    }
    let (left, right) = items.split_at(items.len() / 2);
    std::thread::scope(|s| {
        let Ok(handle) = std::thread::Builder::new().spawn_scoped(s, || f(right)) else {
            return f(items);
        };
        let mut out = f(left)?;
        let rest = handle.join().map_err(|_| RedlineError::ApiMisuse("a worker thread panicked"))?;
        out.extend(rest?);
        Ok(out)
    })
}

/// A uniformly random permutation of `0..n`: sorts by fresh 128-bit random keys (a tie, which
/// would bias it, has probability below n²/2^129).
pub(crate) fn random_permutation(n: usize) -> Vec<usize> {
    let mut keys = vec![0u8; n * 16];
    fill_random(&mut keys);
    let key =
        |i: usize| keys.get(i * 16..i * 16 + 16).and_then(|k| k.try_into().ok()).map(u128::from_le_bytes);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by_key(|&i| key(i));
    order
}

/// Applies a permutation: `out[i] = items[order[i]]`.
pub(crate) fn permute<T: Clone>(items: &[T], order: &[usize]) -> Vec<T> {
    order.iter().filter_map(|&i| items.get(i).cloned()).collect()
}

/// Fills `buf` from the operating system. Without randomness no probe is private, so this
/// is the one place the crate may abort.
#[allow(clippy::panic, reason = "no OS randomness means no safe way to continue")]
pub(crate) fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        panic!("the operating system's random number generator failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(n: usize) -> Vec<Element> {
        (0..n).map(|_| random_array()).collect()
    }

    #[test]
    fn batch_compression_of_halves_equals_plain_compression() {
        let k = SecretScalar::random();
        let es = elements(100);
        let full = k.half + k.half;
        let plain: Vec<PointBytes> =
            es.iter().map(|e| (full * RistrettoPoint::from_uniform_bytes(e)).compress().to_bytes()).collect();
        assert_eq!(blind(&es, &k).unwrap(), plain);
    }

    #[test]
    fn blinding_commutes() {
        let (a, b) = (SecretScalar::random(), SecretScalar::random());
        let es = elements(70);
        let ab = reblind(&blind(&es, &a).unwrap(), &b).unwrap();
        let ba = reblind(&blind(&es, &b).unwrap(), &a).unwrap();
        assert_eq!(ab, ba);
    }

    #[test]
    fn bad_points_are_refused() {
        let k = SecretScalar::random();
        let identity = RistrettoPoint::default().compress().to_bytes();
        assert_eq!(reblind(&[identity], &k), Err(RedlineError::PeerMisbehaved("sent the identity point")));
        assert!(reblind(&[[0xff; 32]], &k).is_err());
        let mut many = blind(&elements(100), &k).unwrap();
        many[99] = [0xff; 32];
        assert!(reblind(&many, &k).is_err(), "a bad point in the second thread's half");
    }

    #[test]
    fn permutations_are_permutations() {
        let mut p = random_permutation(1000);
        assert_ne!(p, (0..1000).collect::<Vec<_>>());
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn scalar_round_trips_and_refuses_zero_and_non_canonical_bytes() {
        let k = SecretScalar::random();
        let json = serde_json::to_string(&k).unwrap();
        let back: SecretScalar = serde_json::from_str(&json).unwrap();
        let es = elements(3);
        assert_eq!(blind(&es, &k).unwrap(), blind(&es, &back).unwrap());
        assert!(serde_json::from_str::<SecretScalar>(&serde_json::to_string(&[0u8; 32]).unwrap()).is_err());
        assert!(
            serde_json::from_str::<SecretScalar>(&serde_json::to_string(&[0xffu8; 32]).unwrap()).is_err()
        );
    }

    #[test]
    fn scalar_debug_is_redacted() {
        assert_eq!(format!("{:?}", SecretScalar::random()), "SecretScalar(<redacted>)");
    }
}
