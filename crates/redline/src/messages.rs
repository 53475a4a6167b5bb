//! The three probe messages and their byte codec.
//!
//! ```text
//! header  version u8 (1) | step u8 (1 query, 2 reply, 3 disclosure) | kind u8 (1 single, 2 package)
//!         | probe id [16] | transcript [32]
//! query       n u32 | n × point [32]
//! reply       n u32 | n × tag [16] | m u32 | m × point [32]
//! disclosure  n u32 | n bytes
//! ```
//! Integers are big-endian. The decoder accepts exactly one encoding of each message: no
//! trailing bytes, at most [`MAX_ITEMS`] items, checked before anything is allocated.
//!
//! The transcript field chains the terms and every message so far, this one included:
//! `t_0 = SHA-256(DOMAIN | "/opening" | probe id | terms)`,
//! `t_i = SHA-256(DOMAIN | "/transcript" | t_{i-1} | message i without its transcript field)`.

use sha2::{Digest, Sha256};

use crate::encoding::{DOMAIN, Writer};
use crate::error::{RedlineError, Result};
use crate::terms::ProbeTerms;

pub const VERSION: u8 = 1;
/// The most items (points, tags or bytes) one list in a message may hold.
pub const MAX_ITEMS: usize = 1 << 21;
const HEADER_LEN: usize = 3 + 16 + 32;

/// A compressed ristretto255 point as sent.
pub type PointBytes = [u8; 32];
/// The first 16 bytes of a compressed point that is only ever compared, never used.
pub type Tag = [u8; 16];

/// 16 random bytes naming one probe; every element and message is bound to it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ProbeId([u8; 16]);

impl ProbeId {
    pub fn random() -> Self {
        Self(crate::group::random_array())
    }
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::fmt::Display for ProbeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl std::fmt::Debug for ProbeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProbeId({self})")
    }
}

/// The fields every message starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub step: u8,
    pub kind: u8,
    pub probe_id: ProbeId,
    pub transcript: [u8; 32],
}

/// Step 1, initiator → responder: the initiator's blinded set `a·H(e)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub(crate) header: Header,
    pub(crate) points: Vec<PointBytes>,
}

/// Step 2, responder → initiator: tags of `b·a·H(e)` for the query's points, and the
/// responder's blinded set `b·H(f)` (shuffled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub(crate) header: Header,
    pub(crate) tags: Vec<Tag>,
    pub(crate) points: Vec<PointBytes>,
}

/// Step 3, initiator → responder: the result, so both sides learn it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosure {
    pub(crate) header: Header,
    pub(crate) result: Vec<u8>,
}

/// The transcript hash before the first message: binds the probe id and the terms.
pub(crate) fn opening_transcript(id: &ProbeId, terms: &ProbeTerms) -> [u8; 32] {
    Sha256::new()
        .chain_update(DOMAIN)
        .chain_update(b"/opening")
        .chain_update(id.as_bytes())
        .chain_update(terms.canonical_bytes())
        .finalize()
        .into()
}

/// The next transcript hash: the previous one and this message without its transcript field.
fn chain(previous: &[u8; 32], header: &Header, body: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(DOMAIN)
        .chain_update(b"/transcript")
        .chain_update(previous)
        .chain_update([VERSION, header.step, header.kind])
        .chain_update(header.probe_id.as_bytes())
        .chain_update(body)
        .finalize()
        .into()
}

macro_rules! message_codec {
    ($ty:ty, $step:expr) => {
        impl $ty {
            pub const STEP: u8 = $step;

            /// A message whose transcript field chains `previous` and this message.
            pub(crate) fn sealed(mut self, previous: &[u8; 32]) -> Self {
                self.header.transcript = chain(previous, &self.header, &self.body());
                self
            }

            /// The transcript hash this message ends with, if `previous` came before it.
            pub(crate) fn expected_transcript(&self, previous: &[u8; 32]) -> [u8; 32] {
                chain(previous, &self.header, &self.body())
            }

            pub fn probe_id(&self) -> ProbeId {
                self.header.probe_id
            }

            pub fn header(&self) -> &Header {
                &self.header
            }

            pub fn encode(&self) -> Vec<u8> {
                let body = self.body();
                let mut w = Writer(Vec::with_capacity(HEADER_LEN + body.len()));
                w.u8(VERSION).u8(self.header.step).u8(self.header.kind);
                w.bytes(self.header.probe_id.as_bytes()).bytes(&self.header.transcript).bytes(&body);
                w.0
            }

            pub fn decode(bytes: &[u8]) -> Result<Self> {
                let mut r = Reader(bytes);
                let header = r.header(Self::STEP)?;
                let message = Self::decode_body(header, &mut r)?;
                r.finish()?;
                Ok(message)
            }
        }
    };
}

message_codec!(Query, 1);
message_codec!(Reply, 2);
message_codec!(Disclosure, 3);

impl Query {
    fn body(&self) -> Vec<u8> {
        let mut w = Writer::default();
        put_list(&mut w, &self.points);
        w.0
    }
    fn decode_body(header: Header, r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { header, points: r.list()? })
    }
}

impl Reply {
    fn body(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(8 + 16 * self.tags.len() + 32 * self.points.len()));
        put_list(&mut w, &self.tags);
        put_list(&mut w, &self.points);
        w.0
    }
    fn decode_body(header: Header, r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { header, tags: r.list()?, points: r.list()? })
    }
}

impl Disclosure {
    fn body(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(self.result.len() as u32).bytes(&self.result);
        w.0
    }
    fn decode_body(header: Header, r: &mut Reader<'_>) -> Result<Self> {
        let n = r.count()?;
        Ok(Self { header, result: r.take(n)?.to_vec() })
    }
}

fn put_list<const N: usize>(w: &mut Writer, items: &[[u8; N]]) {
    w.u32(items.len() as u32);
    items.iter().for_each(|i| {
        w.bytes(i);
    });
}

/// A cursor over untrusted bytes; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(RedlineError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| RedlineError::Malformed("truncated"))
    }

    /// A u32 item count, refused above [`MAX_ITEMS`] before anything is allocated.
    fn count(&mut self) -> Result<usize> {
        let n = u32::from_be_bytes(self.array()?) as usize;
        match n <= MAX_ITEMS {
            true => Ok(n),
            false => Err(RedlineError::Oversized { items: n as u64, limit: MAX_ITEMS as u64 }),
        }
    }

    fn list<const N: usize>(&mut self) -> Result<Vec<[u8; N]>> {
        let n = self.count()?;
        let bytes = self.take(n.saturating_mul(N))?;
        Ok(bytes.chunks_exact(N).filter_map(|c| c.try_into().ok()).collect())
    }

    fn header(&mut self, expected_step: u8) -> Result<Header> {
        let [version, step, kind] = self.array()?;
        if version != VERSION {
            return Err(RedlineError::UnsupportedVersion(version));
        }
        if step != expected_step {
            return Err(RedlineError::WrongStep { expected: expected_step, got: step });
        }
        if !(1..=2).contains(&kind) {
            return Err(RedlineError::Malformed("unknown probe kind"));
        }
        Ok(Header { step, kind, probe_id: ProbeId(self.array()?), transcript: self.array()? })
    }

    fn finish(self) -> Result<()> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(RedlineError::Malformed("trailing bytes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(step: u8) -> Header {
        Header { step, kind: 2, probe_id: ProbeId::random(), transcript: [0; 32] }
    }

    fn reply() -> Reply {
        Reply { header: header(2), tags: vec![[7; 16]; 3], points: vec![[9; 32]; 2] }.sealed(&[1; 32])
    }

    #[test]
    fn round_trips() {
        let q = Query { header: header(1), points: vec![[5; 32]; 4] }.sealed(&[0; 32]);
        assert_eq!(Query::decode(&q.encode()).unwrap(), q);
        let r = reply();
        assert_eq!(Reply::decode(&r.encode()).unwrap(), r);
        assert_eq!(r.encode().len(), HEADER_LEN + 4 + 3 * 16 + 4 + 2 * 32);
        let d = Disclosure { header: header(3), result: vec![1] }.sealed(&[2; 32]);
        assert_eq!(Disclosure::decode(&d.encode()).unwrap(), d);
    }

    #[test]
    fn refuses_what_it_must() {
        let bytes = reply().encode();
        assert_eq!(Query::decode(&bytes), Err(RedlineError::WrongStep { expected: 1, got: 2 }));
        assert_eq!(Reply::decode(&bytes[..bytes.len() - 1]), Err(RedlineError::Malformed("truncated")));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Reply::decode(&longer), Err(RedlineError::Malformed("trailing bytes")));
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(Reply::decode(&v2), Err(RedlineError::UnsupportedVersion(2)));
        let mut huge = bytes[..HEADER_LEN].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(Reply::decode(&huge), Err(RedlineError::Oversized { .. })));
    }

    #[test]
    fn transcript_covers_every_byte() {
        let r = reply();
        let bytes = r.encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            if let Ok(m) = Reply::decode(&bad) {
                let intact =
                    m.expected_transcript(&[1; 32]) == m.header.transcript && m.probe_id() == r.probe_id();
                assert!(!intact, "flip at byte {i} went unnoticed");
            }
        }
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Query::decode(&bytes);
            let _ = Reply::decode(&bytes);
            let _ = Disclosure::decode(&bytes);
        }

        #[test]
        fn decoders_never_panic_on_valid_headers(step in 1u8..=3, kind in 0u8..=3, rest in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = vec![VERSION, step, kind];
            bytes.extend_from_slice(&[0; 48]);
            bytes.extend_from_slice(&rest);
            let _ = (Query::decode(&bytes), Reply::decode(&bytes), Disclosure::decode(&bytes));
        }
    }
}
