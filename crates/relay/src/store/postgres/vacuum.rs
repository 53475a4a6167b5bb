//! Vacuums the queue tables while they churn. Blocks live for moments: inserted, read,
//! deleted. Until PostgreSQL vacuums, every deleted row stays in the indexes, and each read of
//! a queue walks past all of its dead entries, so a busy relay slows down by the minute
//! between two autovacuum runs. This task vacuums `blocks` and `queues` once enough rows were
//! deleted (checked twice a second), on a connection of its own, skipping a run that another
//! node holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Target;

/// Rows deleted since the last vacuum before the next one runs.
const AFTER_DELETES: u64 = 4096;
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Counts deletions; the task stops when the last counter is dropped.
pub(super) fn spawn(target: Target) -> Arc<AtomicU64> {
    let deleted = Arc::new(AtomicU64::new(0));
    tokio::spawn(vacuum_loop(target, Arc::downgrade(&deleted)));
    deleted
}

async fn vacuum_loop(target: Target, deleted: Weak<AtomicU64>) {
    let mut client: Option<tokio_postgres::Client> = None;
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(counter) = deleted.upgrade() else { return };
        if counter.load(Ordering::Relaxed) < AFTER_DELETES {
            continue;
        }
        counter.store(0, Ordering::Relaxed);
        drop(counter);
        if client.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            client = target.connect().await.ok();
        }
        if let Some(c) = &client
            && let Err(err) = c.batch_execute("VACUUM (SKIP_LOCKED) blocks, queues").await
        {
            tracing::debug!(error = %err, "vacuum of the queue tables failed");
            client = None;
        }
    }
}
