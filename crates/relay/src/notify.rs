//! The hand-off from the store's writer to the WebSocket sessions of this node.
//!
//! After each commit the writer hands every stored block to the sessions following its queue
//! (in commit order, from memory: followers on this node never re-read what was just
//! written). A session that falls behind, or a block committed through another node, turns
//! into a "re-read" mark: the session reads the store after the last seq it pushed. Seqs of a
//! queue are consecutive, so a session also detects a block it has not seen (through another
//! node, or dropped here) when the next one arrives, and re-reads. Nothing is lost if a
//! hand-off is dropped: the store has every block.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use backchannel_wire::QueueId;
use bytes::Bytes;
use tokio::sync::Notify;

/// Blocks waiting in one session's mailbox; past this it is told to re-read instead.
pub(crate) const MAILBOX_BLOCKS: usize = 256;

/// A block just committed.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    pub recv_id: QueueId,
    pub seq: u64,
    pub block: Bytes,
}

/// What one WebSocket session has been handed and not yet sent.
#[derive(Debug, Default)]
pub(crate) struct Mail {
    pub blocks: VecDeque<Committed>,
    /// Queues to read from the store again (after the last seq pushed).
    pub reread: Vec<QueueId>,
    /// Text frames to send (answers to acknowledgements made in the background).
    pub texts: Vec<String>,
}

/// A session's mailbox: filled by the hub and by background acks, emptied by the session.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    mail: Mutex<Mail>,
    ready: Notify,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, Mail> {
        self.mail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes everything waiting.
    pub fn take(&self) -> Mail {
        std::mem::take(&mut *self.lock())
    }

    /// Completes when something was put in since the last `take` (or is waiting already).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    pub fn reread(&self, recv_id: QueueId) {
        let mut mail = self.lock();
        if !mail.reread.contains(&recv_id) {
            mail.reread.push(recv_id);
        }
        drop(mail);
        self.ready.notify_one();
    }

    pub fn text(&self, text: String) {
        self.lock().texts.push(text);
        self.ready.notify_one();
    }

    fn block(&self, committed: &Committed) {
        let mut mail = self.lock();
        if mail.blocks.len() < MAILBOX_BLOCKS {
            mail.blocks.push_back(committed.clone());
        } else if !mail.reread.contains(&committed.recv_id) {
            mail.reread.push(committed.recv_id);
        }
        drop(mail);
        self.ready.notify_one();
    }
}

/// The sessions following one queue on this node, and the highest seq of it they were handed
/// or read.
#[derive(Debug, Default)]
struct Followed {
    mailboxes: Vec<Weak<Mailbox>>,
    seen: u64,
}

/// Which sessions follow which queue, on this node.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    queues: Mutex<HashMap<QueueId, Followed>>,
}

impl Hub {
    /// From now on `mailbox` gets the blocks of `recv_id`. Call it *before* reading the
    /// store, so nothing committed after the read goes unnoticed.
    pub fn follow(&self, recv_id: QueueId, mailbox: &Arc<Mailbox>) {
        let mut queues = self.lock();
        let list = &mut queues.entry(recv_id).or_default().mailboxes;
        list.retain(|m| m.strong_count() > 0);
        if !list.iter().any(|m| std::ptr::eq(m.as_ptr(), Arc::as_ptr(mailbox))) {
            list.push(Arc::downgrade(mailbox));
        }
    }

    /// Stops handing `recv_id` to `mailbox`.
    pub fn unfollow(&self, recv_id: &QueueId, mailbox: &Arc<Mailbox>) {
        let mut queues = self.lock();
        if let Some(f) = queues.get_mut(recv_id) {
            f.mailboxes.retain(|m| m.strong_count() > 0 && !std::ptr::eq(m.as_ptr(), Arc::as_ptr(mailbox)));
            if f.mailboxes.is_empty() {
                queues.remove(recv_id);
            }
        }
    }

    /// Hands blocks committed here, in commit order, to their followers.
    pub fn committed(&self, blocks: &[Committed]) {
        let mut queues = self.lock();
        for c in blocks {
            let Some(f) = queues.get_mut(&c.recv_id) else { continue };
            f.seen = f.seen.max(c.seq);
            for mailbox in f.mailboxes.iter().filter_map(Weak::upgrade) {
                mailbox.block(c);
            }
        }
    }

    /// A session read `recv_id` from the store, whose last seq was then `latest`.
    pub fn saw(&self, recv_id: &QueueId, latest: u64) {
        if let Some(f) = self.lock().get_mut(recv_id) {
            f.seen = f.seen.max(latest);
        }
    }

    /// Those of `ids` followed here, with the highest seq their followers were handed or read.
    pub fn seen_of(&self, ids: &[QueueId]) -> Vec<(QueueId, u64)> {
        let queues = self.lock();
        ids.iter().filter_map(|id| queues.get(id).map(|f| (*id, f.seen))).collect()
    }

    /// Every followed queue with the highest seq its followers were handed or read.
    pub fn followed(&self) -> Vec<(QueueId, u64)> {
        self.lock().iter().map(|(id, f)| (*id, f.seen)).collect()
    }

    /// Tells the followers of `recv_id` to read the store again (a block committed through
    /// another node, or the queue deleted).
    pub fn wake(&self, recv_id: &QueueId) {
        let queues = self.lock();
        for mailbox in queues.get(recv_id).into_iter().flat_map(|f| &f.mailboxes).filter_map(Weak::upgrade) {
            mailbox.reread(*recv_id);
        }
    }

    /// Tells every follower to read the store again (wake-ups may have been missed).
    pub fn wake_all(&self) {
        let queues = self.lock();
        for (recv_id, f) in queues.iter() {
            for mailbox in f.mailboxes.iter().filter_map(Weak::upgrade) {
                mailbox.reread(*recv_id);
            }
        }
    }

    /// Drops entries of sessions that are gone (called by the periodic purge).
    pub fn prune(&self) {
        self.lock().retain(|_, f| {
            f.mailboxes.retain(|m| m.strong_count() > 0);
            !f.mailboxes.is_empty()
        });
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<QueueId, Followed>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn block(recv_id: QueueId, seq: u64) -> Committed {
        Committed { recv_id, seq, block: Bytes::from_static(b"x") }
    }

    #[tokio::test]
    async fn hands_blocks_to_followers_of_that_queue_only() {
        let hub = Hub::default();
        let (a, b) = (QueueId([1; 16]), QueueId([2; 16]));
        let (ma, mb) = (Arc::new(Mailbox::default()), Arc::new(Mailbox::default()));
        hub.follow(a, &ma);
        hub.follow(b, &mb);
        hub.committed(&[block(a, 1), block(a, 2), block(QueueId([3; 16]), 1)]);
        ma.ready().await;
        let mail = ma.take();
        assert_eq!(mail.blocks.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert!(mb.take().blocks.is_empty());
        hub.wake(&b);
        mb.ready().await;
        assert_eq!(mb.take().reread, vec![b]);
    }

    #[test]
    fn a_full_mailbox_turns_into_a_reread() {
        let hub = Hub::default();
        let a = QueueId([1; 16]);
        let m = Arc::new(Mailbox::default());
        hub.follow(a, &m);
        let many: Vec<_> = (1..=MAILBOX_BLOCKS as u64 + 5).map(|s| block(a, s)).collect();
        hub.committed(&many);
        let mail = m.take();
        assert_eq!(mail.blocks.len(), MAILBOX_BLOCKS);
        assert_eq!(mail.reread, vec![a]);
    }

    #[test]
    fn remembers_the_highest_seq_handed_over_or_read() {
        let hub = Hub::default();
        let a = QueueId([1; 16]);
        let m = Arc::new(Mailbox::default());
        hub.follow(a, &m);
        hub.committed(&[block(a, 4)]);
        hub.saw(&a, 3);
        assert_eq!(hub.followed(), vec![(a, 4)]);
        hub.saw(&a, 9);
        assert_eq!(hub.followed(), vec![(a, 9)]);
    }

    #[test]
    fn forgets_sessions_that_are_gone_or_unfollow() {
        let hub = Hub::default();
        let a = QueueId([1; 16]);
        let m = Arc::new(Mailbox::default());
        hub.follow(a, &m);
        hub.unfollow(&a, &m);
        assert_eq!(hub.len(), 0);
        hub.follow(a, &m);
        drop(m);
        hub.prune();
        assert_eq!(hub.len(), 0);
    }

    #[tokio::test]
    async fn wake_all_reaches_everyone() {
        let hub = Hub::default();
        let ms: Vec<_> = (0..3u8)
            .map(|i| {
                let m = Arc::new(Mailbox::default());
                hub.follow(QueueId([i; 16]), &m);
                m
            })
            .collect();
        hub.wake_all();
        for (i, m) in ms.iter().enumerate() {
            m.ready().await;
            assert_eq!(m.take().reread, vec![QueueId([i as u8; 16])]);
        }
    }
}
