//! The store key: Argon2id over the passphrase, with a random salt and parameters saved
//! beside the store so they can be raised later without breaking old stores.

use backchannel_proto::crypto::{SecretKey, random_array};
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};

/// A passphrase, zeroed on drop and never printed.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The text, for handing to the running engine of the same home (over its 0600 socket).
    pub(crate) fn reveal(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Argon2id cost: memory in KiB, passes, lanes.
pub struct Params {
    bytes: [u8; 12],
}

/// 64 MiB, 3 passes, 1 lane: about a quarter of a second on a laptop core, so a stolen
/// store costs an attacker as much per guess.
const M_COST_KIB: u32 = 64 * 1024;
const T_COST: u32 = 3;
const P_COST: u32 = 1;

impl Params {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Reads stored parameters, refusing any outside what this version would ever write or
    /// a user could wait for (a damaged or planted file must not make unlocking take hours).
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let params = Self { bytes: b.try_into().ok()? };
        let (m, t, p) = (params.get(0), params.get(1), params.get(2));
        let sane = (8 * 1024..=1024 * 1024).contains(&m) && (1..=16).contains(&t) && (1..=8).contains(&p);
        sane.then_some(params)
    }

    fn get(&self, i: usize) -> u32 {
        u32::from_be_bytes([
            self.bytes[i * 4],
            self.bytes[i * 4 + 1],
            self.bytes[i * 4 + 2],
            self.bytes[i * 4 + 3],
        ])
    }
}

pub fn new_salt_and_params() -> ([u8; 16], Params) {
    let mut bytes = [0u8; 12];
    for (i, v) in [M_COST_KIB, T_COST, P_COST].into_iter().enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    (random_array(), Params { bytes })
}

pub fn derive(passphrase: &Passphrase, salt: &[u8], params: &Params) -> Result<SecretKey> {
    let bad =
        |e: argon2::Error| ClientError::Store { path: String::new(), why: format!("key derivation: {e}") };
    let p = argon2::Params::new(params.get(0), params.get(1), params.get(2), Some(32)).map_err(bad)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut key = SecretKey([0; 32]);
    argon.hash_password_into(passphrase.0.as_bytes(), salt, &mut key.0).map_err(bad)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn params(m: u32, t: u32, p: u32) -> Vec<u8> {
        [m, t, p].iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    /// L8: stored key-derivation parameters are bounded: a planted or damaged file cannot make
    /// unlocking take hours or gigabytes, nor weaken the key with a trivial cost.
    #[test]
    fn stored_kdf_parameters_outside_the_bounds_are_refused() {
        let (_, ours) = new_salt_and_params();
        assert!(Params::from_bytes(ours.as_bytes()).is_some(), "what we write is read");
        for (m, t, p) in
            [(4 << 20, 3, 1), (64 * 1024, 1000, 1), (64 * 1024, 3, 0), (64, 3, 1), (64 * 1024, 0, 1)]
        {
            assert!(Params::from_bytes(&params(m, t, p)).is_none(), "m={m} t={t} p={p}");
        }
        assert!(Params::from_bytes(&ours.as_bytes()[..8]).is_none(), "cut short");
    }
}
