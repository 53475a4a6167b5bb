//! A batched discrete-log-equality proof (Chaum–Pedersen, made non-interactive by Fiat–Shamir)
//! over ristretto255: the prover shows that one secret scalar `k` gives both `A = k·G` and
//! `S_i = k·R_i` for every `i`, without revealing `k`. The textbook construction, batched as
//! RFC 9497 does (one proof for all pairs, through random-looking weights from the transcript):
//!
//! ```text
//! seed = SHA-512(DST ‖ "/seed" ‖ context[32] ‖ A ‖ u32 n ‖ R_1..R_n ‖ S_1..S_n)
//! d_i  = scalar(SHA-512(DST ‖ "/weight" ‖ seed ‖ u32 i))          i = 0..n-1
//! M    = Σ d_i·R_i        Z = Σ d_i·S_i                          (Z = k·M for an honest prover)
//! prove:  r random;  T1 = r·G;  T2 = r·M
//!         c = scalar(SHA-512(DST ‖ "/challenge" ‖ seed ‖ M ‖ Z ‖ T1 ‖ T2));  s = r − c·k
//! proof = c[32] ‖ s[32]
//! check:  T1 = s·G + c·A;  T2 = s·M + c·Z;  recompute c and compare
//! ```
//! `scalar(h)` is `Scalar::from_bytes_mod_order_wide` of the 64-byte hash; points are their
//! 32-byte encodings; `G` is the ristretto255 base point. `context` binds a proof to one run
//! of a protocol, so it cannot be replayed in another.
//! Known-answer vectors: `tests/vectors/dleq.json`.
//!
//! **Not used by the probes**, on purpose (docs/probes.md §7): a proof about the asker's query
//! points says nothing, because the answerer never sees their bases `H(e)`, and an asker using
//! a scalar per element is indistinguishable from an honest one with other bases; a proof about
//! the asker's re-blinding of the answerer's points (`a·b·H(f)`, in the answerer's order) would
//! hand the answerer `a·H(f)` for each of its own elements, and so tell it which of them are in
//! the asker's set. It is kept, tested against fixed vectors, as the building block for a
//! later maliciously secure variant (a proof over a verifiable shuffle, say).

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::error::{RedlineError, Result};

const DST: &[u8] = b"backchannel-redline/v2/dleq";
pub const PROOF_LEN: usize = 64;

/// `c ‖ s`.
pub type Proof = [u8; PROOF_LEN];

/// Proves `A = k·G` and `S_i = k·R_i` for all `i` (the caller computed `A` and `S` with `k`).
pub fn prove(
    k: &Scalar,
    context: &[u8; 32],
    a: &RistrettoPoint,
    r: &[RistrettoPoint],
    s: &[RistrettoPoint],
) -> Proof {
    let mut wide = Zeroizing::new([0u8; 64]);
    crate::group::fill_random(wide.as_mut_slice());
    let nonce = Zeroizing::new(Scalar::from_bytes_mod_order_wide(&wide));
    prove_with_nonce(k, &nonce, context, a, r, s)
}

/// [`prove`] with a given nonce: for the known-answer vectors only (a repeated nonce reveals `k`).
pub(crate) fn prove_with_nonce(
    k: &Scalar,
    nonce: &Scalar,
    context: &[u8; 32],
    a: &RistrettoPoint,
    r: &[RistrettoPoint],
    s: &[RistrettoPoint],
) -> Proof {
    let seed = seed(context, a, r, s);
    let (m, z) = composites(&seed, r, s);
    let (t1, t2) = (RistrettoPoint::mul_base(nonce), nonce * m);
    let c = challenge(&seed, &m, &z, &t1, &t2);
    let resp = nonce - c * k;
    let mut proof = [0u8; PROOF_LEN];
    proof[..32].copy_from_slice(c.as_bytes());
    proof[32..].copy_from_slice(resp.as_bytes());
    proof
}

/// Checks a proof that one scalar links `G → A` and every `R_i → S_i`.
pub fn verify(
    proof: &Proof,
    context: &[u8; 32],
    a: &RistrettoPoint,
    r: &[RistrettoPoint],
    s: &[RistrettoPoint],
) -> Result<()> {
    let bad = || RedlineError::PeerMisbehaved("a proof of one blinding scalar does not verify");
    if r.len() != s.len() {
        return Err(bad());
    }
    let scalar = |b: &[u8]| -> Option<Scalar> {
        let bytes: [u8; 32] = b.try_into().ok()?;
        Scalar::from_canonical_bytes(bytes).into()
    };
    let (c, resp) = (scalar(&proof[..32]).ok_or_else(bad)?, scalar(&proof[32..]).ok_or_else(bad)?);
    let seed = seed(context, a, r, s);
    let (m, z) = composites(&seed, r, s);
    let t1 = RistrettoPoint::vartime_multiscalar_mul(
        [resp, c],
        [curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT, *a],
    );
    let t2 = RistrettoPoint::vartime_multiscalar_mul([resp, c], [m, z]);
    match challenge(&seed, &m, &z, &t1, &t2) == c {
        true => Ok(()),
        false => Err(bad()),
    }
}

fn seed(context: &[u8; 32], a: &RistrettoPoint, r: &[RistrettoPoint], s: &[RistrettoPoint]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(DST);
    h.update(b"/seed");
    h.update(context);
    h.update(a.compress().as_bytes());
    h.update((r.len() as u32).to_be_bytes());
    for p in r.iter().chain(s) {
        h.update(p.compress().as_bytes());
    }
    h.finalize().into()
}

fn composites(
    seed: &[u8; 64],
    r: &[RistrettoPoint],
    s: &[RistrettoPoint],
) -> (RistrettoPoint, RistrettoPoint) {
    if r.is_empty() {
        return (RistrettoPoint::identity(), RistrettoPoint::identity());
    }
    let weights: Vec<Scalar> = (0..r.len() as u32)
        .map(|i| {
            let h: [u8; 64] = Sha512::new()
                .chain_update(DST)
                .chain_update(b"/weight")
                .chain_update(seed)
                .chain_update(i.to_be_bytes())
                .finalize()
                .into();
            Scalar::from_bytes_mod_order_wide(&h)
        })
        .collect();
    (
        RistrettoPoint::vartime_multiscalar_mul(&weights, r),
        RistrettoPoint::vartime_multiscalar_mul(&weights, s),
    )
}

fn challenge(
    seed: &[u8; 64],
    m: &RistrettoPoint,
    z: &RistrettoPoint,
    t1: &RistrettoPoint,
    t2: &RistrettoPoint,
) -> Scalar {
    let mut h = Sha512::new();
    h.update(DST);
    h.update(b"/challenge");
    h.update(seed);
    for p in [m, z, t1, t2] {
        h.update(p.compress().as_bytes());
    }
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::ristretto::CompressedRistretto;
    use serde::{Deserialize, Serialize};

    fn hash_scalar(label: &str) -> Scalar {
        Scalar::from_bytes_mod_order_wide(&Sha512::digest(label.as_bytes()).into())
    }

    fn hash_point(label: &str) -> RistrettoPoint {
        RistrettoPoint::from_uniform_bytes(&Sha512::digest(label.as_bytes()).into())
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Vector {
        /// What the vector shows.
        comment: String,
        k: String,
        nonce: String,
        context: String,
        a: String,
        r: Vec<String>,
        s: Vec<String>,
        proof: String,
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn point(s: &str) -> RistrettoPoint {
        CompressedRistretto::from_slice(&unhex(s)).unwrap().decompress().unwrap()
    }

    fn scalar(s: &str) -> Scalar {
        Scalar::from_canonical_bytes(unhex(s).try_into().unwrap()).unwrap()
    }

    /// The vectors, built from fixed labels (so another implementation can rebuild and check them).
    fn make_vectors() -> Vec<Vector> {
        [0usize, 1, 3, 33].iter().map(|&n| {
            let k = hash_scalar(&format!("backchannel dleq vector k {n}"));
            let nonce = hash_scalar(&format!("backchannel dleq vector nonce {n}"));
            let context: [u8; 32] = Sha512::digest(format!("context {n}").as_bytes())[..32].try_into().unwrap();
            let a = RistrettoPoint::mul_base(&k);
            let r: Vec<RistrettoPoint> = (0..n).map(|i| hash_point(&format!("backchannel dleq vector R {n} {i}"))).collect();
            let s: Vec<RistrettoPoint> = r.iter().map(|p| k * p).collect();
            let proof = prove_with_nonce(&k, &nonce, &context, &a, &r, &s);
            let enc = |v: &[RistrettoPoint]| v.iter().map(|p| hex(p.compress().as_bytes())).collect();
            Vector {
                comment: format!("{n} pairs; k, nonce = scalar(SHA-512(label)), R_i = from_uniform_bytes(SHA-512(label))"),
                k: hex(k.as_bytes()),
                nonce: hex(nonce.as_bytes()),
                context: hex(&context),
                a: hex(a.compress().as_bytes()),
                r: enc(&r),
                s: enc(&s),
                proof: hex(&proof),
            }
        }).collect()
    }

    const VECTORS: &str = include_str!("../tests/vectors/dleq.json");

    #[test]
    fn known_answer_vectors() {
        let vectors: Vec<Vector> = serde_json::from_str(VECTORS).unwrap();
        assert_eq!(vectors, make_vectors(), "the construction changed: the vectors no longer match");
        for v in &vectors {
            let (r, s): (Vec<_>, Vec<_>) =
                (v.r.iter().map(|p| point(p)).collect(), v.s.iter().map(|p| point(p)).collect());
            let context: [u8; 32] = unhex(&v.context).try_into().unwrap();
            let proof: Proof = unhex(&v.proof).try_into().unwrap();
            verify(&proof, &context, &point(&v.a), &r, &s).unwrap();
            let again = prove_with_nonce(&scalar(&v.k), &scalar(&v.nonce), &context, &point(&v.a), &r, &s);
            assert_eq!(hex(&again), v.proof);
        }
    }

    #[test]
    #[ignore = "rewrites tests/vectors/dleq.json; run by hand after an intended change"]
    fn write_vectors() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/dleq.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_string_pretty(&make_vectors()).unwrap() + "\n").unwrap();
    }

    /// The proof's cost in a single-value probe over 0..=2^32 (33 pairs): prints the median
    /// time to prove and to verify. `cargo test --release -p backchannel-redline dleq_cost --
    /// --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn dleq_cost() {
        let k = hash_scalar("k");
        let a = RistrettoPoint::mul_base(&k);
        let r: Vec<RistrettoPoint> = (0..33).map(|i| hash_point(&format!("R{i}"))).collect();
        let s: Vec<RistrettoPoint> = r.iter().map(|p| k * p).collect();
        let time = |f: &dyn Fn()| {
            let mut runs: Vec<f64> = (0..5)
                .map(|_| {
                    let t = std::time::Instant::now();
                    (0..200).for_each(|_| f());
                    t.elapsed().as_secs_f64() / 200.0
                })
                .collect();
            runs.sort_by(f64::total_cmp);
            runs[2]
        };
        let proof = prove(&k, &[0; 32], &a, &r, &s);
        let p = time(&|| {
            std::hint::black_box(prove(&k, &[0; 32], &a, &r, &s));
        });
        let v = time(&|| {
            verify(&proof, &[0; 32], &a, &r, &s).unwrap();
        });
        println!("dleq_33_prove_us {:.0}\ndleq_33_verify_us {:.0}", p * 1e6, v * 1e6);
    }

    #[test]
    fn a_proof_holds_only_for_one_scalar_and_its_context() {
        let k = hash_scalar("k");
        let a = RistrettoPoint::mul_base(&k);
        let r: Vec<RistrettoPoint> = (0..5).map(|i| hash_point(&format!("R{i}"))).collect();
        let s: Vec<RistrettoPoint> = r.iter().map(|p| k * p).collect();
        let ctx = [1u8; 32];
        let proof = prove(&k, &ctx, &a, &r, &s);
        verify(&proof, &ctx, &a, &r, &s).unwrap();
        assert!(verify(&proof, &[2; 32], &a, &r, &s).is_err(), "another context");
        // One S_i under another scalar (the per-element blinding the proof rules out).
        let mut mixed = s.clone();
        mixed[3] = hash_scalar("other") * r[3];
        assert!(verify(&prove(&k, &ctx, &a, &r, &mixed), &ctx, &a, &r, &mixed).is_err());
        let mut swapped = s.clone();
        swapped.swap(0, 1);
        assert!(verify(&proof, &ctx, &a, &r, &swapped).is_err(), "order matters");
        assert!(verify(&proof, &ctx, &a, &r[..4], &s[..4]).is_err());
        let mut bent = proof;
        bent[40] ^= 1;
        assert!(verify(&bent, &ctx, &a, &r, &s).is_err());
        assert!(verify(&[0xff; 64], &ctx, &a, &r, &s).is_err(), "non-canonical scalars");
    }
}
