//! Tells the other relay nodes sharing the database which queues have news: one `NOTIFY` at
//! a time on a connection of its own, each listing every queue changed since the last one
//! (or `*` when too many to list), and at most one every [`EVERY`]. A signal only: its
//! payload is a few queue ids, never data; a node that misses it (its listener reconnecting)
//! wakes all its followers once it listens again.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backchannel_wire::QueueId;
use tokio::sync::Notify;

use super::Target;
use crate::StoreError;

/// Shortest time between two notifications from this node.
pub(super) const EVERY: Duration = Duration::from_millis(5);
/// Most queue ids in one notification (32 hex digits and a comma each, under the 8000-byte
/// payload limit); more are announced as `*`.
const MAX_IDS: usize = 200;

/// The writer's side: queue ids to announce.
pub(super) struct Announcer {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<BTreeSet<QueueId>>,
    ready: Notify,
}

impl Announcer {
    /// Starts the announcing task; it ends when the announcer is dropped. The backend
    /// process id of its connection goes into `own_pid`, so this node's listener can skip
    /// its own notifications (this node's followers had those blocks from memory).
    pub(super) fn spawn(target: Target, own_pid: Arc<AtomicI32>) -> Self {
        let shared = Arc::new(Shared::default());
        tokio::spawn(announce_loop(target, Arc::downgrade(&shared), own_pid));
        Self { shared }
    }

    pub(super) fn announce(&self, ids: Vec<QueueId>) {
        if ids.is_empty() {
            return;
        }
        self.shared.pending.lock().unwrap_or_else(PoisonError::into_inner).extend(ids);
        self.shared.ready.notify_one();
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.shared.ready.notify_one();
    }
}

/// The notification text for `ids`.
pub(super) fn payload(ids: &BTreeSet<QueueId>) -> String {
    if ids.len() > MAX_IDS {
        return "*".to_owned();
    }
    ids.iter().map(QueueId::to_hex).collect::<Vec<_>>().join(",")
}

async fn announce_loop(target: Target, shared: std::sync::Weak<Shared>, own_pid: Arc<AtomicI32>) {
    let mut client = None;
    loop {
        let Some(live) = shared.upgrade() else { return };
        live.ready.notified().await;
        let ids = std::mem::take(&mut *live.pending.lock().unwrap_or_else(PoisonError::into_inner));
        drop(live);
        if ids.is_empty() {
            continue;
        }
        if let Err(err) = notify(&target, &mut client, &own_pid, &payload(&ids)).await {
            tracing::warn!(error = %err, "cannot tell other relay nodes about new blocks");
            client = None;
        }
        tokio::time::sleep(EVERY).await;
    }
}

async fn notify(
    target: &Target,
    client: &mut Option<tokio_postgres::Client>,
    own_pid: &AtomicI32,
    text: &str,
) -> Result<(), StoreError> {
    if client.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
        let fresh = target.connect().await?;
        let pid: i32 = fresh.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
        own_pid.store(pid, Ordering::Relaxed);
        *client = Some(fresh);
    }
    if let Some(c) = client {
        c.execute("SELECT pg_notify($1, $2)", &[&target.wake_channel, &text]).await?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn payload_lists_ids_or_says_all() {
        let few: BTreeSet<QueueId> = (0..3u8).map(|i| QueueId([i; 16])).collect();
        let text = payload(&few);
        assert_eq!(text.split(',').count(), 3);
        assert!(text.split(',').all(|id| QueueId::from_hex(id).is_ok()));
        let many: BTreeSet<QueueId> = (0..=MAX_IDS as u16)
            .map(|i| {
                let mut id = [0u8; 16];
                id[..2].copy_from_slice(&i.to_be_bytes());
                QueueId(id)
            })
            .collect();
        assert_eq!(payload(&many), "*");
        assert!(payload(&few.iter().copied().take(MAX_IDS).collect()).len() < 8000);
    }
}
