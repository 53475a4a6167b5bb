//! Wakes the WebSocket followers of a queue when a block for it has been committed (or the
//! queue deleted). In memory only, per relay node: a follower that misses a wake-up loses
//! nothing, because it always reads the store for everything after the last seq it pushed.

use std::collections::HashMap;
use std::sync::Mutex;

use backchannel_wire::QueueId;
use tokio::sync::watch;

#[derive(Debug, Default)]
pub(crate) struct Notifier {
    queues: Mutex<HashMap<QueueId, watch::Sender<()>>>,
}

impl Notifier {
    /// A receiver that fires on the next [`Notifier::wake`] of `recv_id`. Take it *before*
    /// reading the store, so nothing committed after the read goes unnoticed.
    pub fn follow(&self, recv_id: QueueId) -> watch::Receiver<()> {
        let mut queues = self.lock();
        queues.entry(recv_id).or_insert_with(|| watch::channel(()).0).subscribe()
    }

    /// Wakes every follower of `recv_id`; forgets the queue if nobody follows it any more.
    pub fn wake(&self, recv_id: &QueueId) {
        let mut queues = self.lock();
        if let Some(sender) = queues.get(recv_id) {
            if sender.receiver_count() == 0 {
                queues.remove(recv_id);
            } else {
                sender.send_replace(());
            }
        }
    }

    /// Wakes every follower of every queue.
    pub fn wake_all(&self) {
        for sender in self.lock().values() {
            sender.send_replace(());
        }
    }

    /// Drops entries nobody follows (called by the periodic purge).
    pub fn prune(&self) {
        self.lock().retain(|_, sender| sender.receiver_count() > 0);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<QueueId, watch::Sender<()>>> {
        self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

    #[tokio::test]
    async fn wakes_followers_of_that_queue_only() {
        let n = Notifier::default();
        let (a, b) = (QueueId([1; 16]), QueueId([2; 16]));
        let mut fa = n.follow(a);
        let fb = n.follow(b);
        n.wake(&a);
        fa.changed().await.unwrap();
        assert!(!fb.has_changed().unwrap());
        n.wake(&QueueId([3; 16]));
        assert_eq!(n.len(), 2);
    }

    #[tokio::test]
    async fn wake_all_wakes_everyone() {
        let n = Notifier::default();
        let mut followers: Vec<_> = (0..3).map(|i| n.follow(QueueId([i; 16]))).collect();
        n.wake_all();
        for f in &mut followers {
            f.changed().await.unwrap();
        }
    }

    #[test]
    fn forgets_queues_nobody_follows() {
        let n = Notifier::default();
        let a = QueueId([1; 16]);
        drop(n.follow(a));
        n.wake(&a);
        assert_eq!(n.len(), 0);
        drop(n.follow(a));
        n.prune();
        assert_eq!(n.len(), 0);
    }
}
