//! The block layer: what the host stores. A frame (one sealed message) is cut into fragments,
//! and each fragment is padded and sealed into a block of exactly the deployment's block size
//! under the destination queue's block key, which the host never has:
//!
//! `block = nonce[24] | XChaCha20-Poly1305(block_key, frame_id[16] | index u16 | count u16 |
//! len u16 | chunk | zero padding) | tag[16]`
//!
//! So every block looks alike: no sizes, counters or frame boundaries show.

use std::collections::HashMap;

use backchannel_wire::codec::{Reader, Writer};

use crate::crypto::{SecretKey, open_random_nonce, seal_random_nonce_in_place};
use crate::error::{ProtoError, Result};

const LABEL: &[u8] = b"backchannel/block/v1";
/// Nonce and tag around every block's content.
pub const SEAL_OVERHEAD: usize = 24 + 16;
/// frame_id, index, count, len.
pub const FRAGMENT_HEADER: usize = 16 + 2 + 2 + 2;
/// Largest frame, in blocks (about 4 MiB at the default block size).
pub const MAX_FRAME_BLOCKS: usize = 1024;

/// Random id of one frame; the receiver also uses it to drop duplicates.
pub type FrameId = [u8; 16];

/// Payload bytes that fit in one block of `block_size`.
pub fn chunk_capacity(block_size: usize) -> usize {
    block_size.saturating_sub(SEAL_OVERHEAD + FRAGMENT_HEADER)
}

/// A frame's id, so that the same frame cut again (a resend after a crash, a copy over a
/// second route) has the same id and the receiver takes it in once: its last 16 bytes, which
/// are the tag of its post-quantum layer, a MAC under a key used for this frame only (so ids do
/// not repeat); a frame too short to end in a tag is hashed.
pub fn frame_id_of(frame: &[u8]) -> FrameId {
    let mut id = [0u8; 16];
    match frame.len() {
        n if n >= 32 => id.copy_from_slice(&frame[n - 16..]),
        _ => id.copy_from_slice(&crate::crypto::sha256(&[b"backchannel/frame-id/v1", frame])[..16]),
    }
    id
}

/// Cuts `frame` into sealed blocks of exactly `block_size` bytes.
pub fn seal_frame(frame: &[u8], key: &SecretKey, block_size: usize) -> Result<(FrameId, Vec<Vec<u8>>)> {
    let cap = chunk_capacity(block_size);
    if cap == 0 {
        return Err(ProtoError::ApiMisuse("block size too small"));
    }
    let count = frame.len().div_ceil(cap).max(1);
    if count > MAX_FRAME_BLOCKS {
        return Err(ProtoError::ApiMisuse("message too large (more than 1024 blocks)"));
    }
    let frame_id = frame_id_of(frame);
    let blocks = (0..count)
        .map(|i| {
            let chunk = &frame[(i * cap).min(frame.len())..((i + 1) * cap).min(frame.len())];
            let mut w = Writer { buf: Vec::with_capacity(block_size) };
            w.raw(&frame_id).u16(i as u16).u16(count as u16).bytes16(chunk);
            w.buf.resize(block_size - SEAL_OVERHEAD, 0);
            seal_random_nonce_in_place(key, LABEL, w.buf)
        })
        .collect();
    Ok((frame_id, blocks))
}

/// One opened block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub frame_id: FrameId,
    pub index: u16,
    pub count: u16,
    pub chunk: Vec<u8>,
}

/// Opens one block; fails if it was altered, injected, or sealed for another queue.
pub fn open_block(block: &[u8], key: &SecretKey) -> Result<Fragment> {
    let plain = open_random_nonce(key, LABEL, block).ok_or(ProtoError::Forged("block"))?;
    let m = ProtoError::malformed("block");
    let mut r = Reader::new(&plain);
    let frame_id = r.array().map_err(m)?;
    let index = r.u16().map_err(ProtoError::malformed("block"))?;
    let count = r.u16().map_err(ProtoError::malformed("block"))?;
    let chunk = r.bytes16(plain.len()).map_err(ProtoError::malformed("block"))?.to_vec();
    if count == 0 || usize::from(count) > MAX_FRAME_BLOCKS || index >= count {
        return Err(ProtoError::PeerMisbehaved("block numbering out of range"));
    }
    Ok(Fragment { frame_id, index, count, chunk })
}

/// Collects fragments until a frame is whole. Holds only frames still in progress.
#[derive(Default)]
pub struct Reassembler {
    partial: HashMap<FrameId, Vec<Option<Vec<u8>>>>,
}

impl Reassembler {
    /// Adds a fragment; returns the frame when its last piece arrives. Duplicated fragments
    /// are ignored.
    pub fn push(&mut self, f: Fragment) -> Result<Option<(FrameId, Vec<u8>)>> {
        let slots = self.partial.entry(f.frame_id).or_insert_with(|| vec![None; usize::from(f.count)]);
        if slots.len() != usize::from(f.count) {
            return Err(ProtoError::PeerMisbehaved("fragments of one frame disagree on its length"));
        }
        slots[usize::from(f.index)].get_or_insert(f.chunk);
        if slots.iter().any(Option::is_none) {
            return Ok(None);
        }
        let whole = self.partial.remove(&f.frame_id).unwrap_or_default();
        Ok(Some((f.frame_id, whole.into_iter().flatten().flatten().collect())))
    }

    /// Drops what was collected of a frame that will not complete.
    pub fn forget(&mut self, frame: &FrameId) {
        self.partial.remove(frame);
    }

    /// Frames still waiting for fragments.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_block_has_the_same_size() {
        let k = SecretKey::random();
        for len in [0, 1, chunk_capacity(1024), chunk_capacity(1024) + 1, 5000] {
            let (_, blocks) = seal_frame(&vec![9u8; len], &k, 1024).unwrap();
            assert!(blocks.iter().all(|b| b.len() == 1024), "len {len}");
        }
    }

    /// A frame cut twice, or for two routes, keeps its id: the receiver takes it in once.
    #[test]
    fn a_frame_keeps_its_id_however_often_it_is_cut() {
        let frame: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let (a, _) = seal_frame(&frame, &SecretKey::random(), 1024).unwrap();
        let (b, _) = seal_frame(&frame, &SecretKey::random(), 4096).unwrap();
        assert_eq!(a, b);
        let (other, _) = seal_frame(&frame[..599], &SecretKey::random(), 1024).unwrap();
        assert_ne!(a, other);
    }

    #[test]
    fn altered_or_foreign_blocks_are_refused() {
        let k = SecretKey::random();
        let (_, blocks) = seal_frame(b"hello", &k, 1024).unwrap();
        let mut bad = blocks[0].clone();
        bad[500] ^= 0x80;
        assert_eq!(open_block(&bad, &k), Err(ProtoError::Forged("block")));
        assert_eq!(open_block(&blocks[0], &SecretKey::random()), Err(ProtoError::Forged("block")));
        assert_eq!(open_block(&[0u8; 10], &k), Err(ProtoError::Forged("block")));
    }

    #[test]
    fn too_large_frame_is_refused() {
        let k = SecretKey::random();
        let big = vec![0u8; chunk_capacity(1024) * MAX_FRAME_BLOCKS + 1];
        assert!(seal_frame(&big, &k, 1024).is_err());
    }

    proptest! {
        #[test]
        fn reassembles_in_any_order_with_duplicates(
            frame in proptest::collection::vec(any::<u8>(), 0..6000),
            seed in any::<u64>(),
        ) {
            let k = SecretKey::random();
            let (id, mut blocks) = seal_frame(&frame, &k, 1024).unwrap();
            blocks.push(blocks[0].clone());
            let n = blocks.len();
            blocks.rotate_left((seed as usize) % n);
            let mut r = Reassembler::default();
            let mut out = None;
            for b in &blocks {
                if let Some(done) = r.push(open_block(b, &k).unwrap()).unwrap() {
                    out = Some(done);
                }
            }
            prop_assert_eq!(out, Some((id, frame)));
        }

        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = open_block(&bytes, &SecretKey([1; 32]));
        }
    }
}
