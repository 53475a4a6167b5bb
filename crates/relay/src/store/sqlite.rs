//! The embedded engine: one SQLite file in WAL mode with `synchronous=FULL`, so a commit is
//! on disk before anyone is told "stored". A dedicated thread owns the only writing
//! connection and group-commits (see `batch.rs`); a small pool of read-only
//! connections serves fetches concurrently, which WAL allows.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use backchannel_wire::{Delivered, QueueId, SecretHash};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{Semaphore, mpsc};

use super::batch::{Batch, Command, Job, PutPlan, QueueRow, WriteDone, WriteOp, WriterHandle};
use super::{Fetched, NewQueue, Purged, PutItem, StoreOptions, StoreStats, fixed, to_i64, to_u64, unix_now};
use crate::notify::{Committed, Hub};
use crate::{RelayError, StoreError};

/// Schema migrations, applied in order once each and recorded in `schema_version`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_settings.sql")),
];
/// Read-only connections; more than the cores would only contend.
const READERS: usize = 2;

/// A relay store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: WriterHandle,
    hub: Arc<Hub>,
    readers: Mutex<Vec<Connection>>,
    read_permits: Semaphore,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Self::DiskFull,
            _ => Self::Backend { engine: "SQLite", message: err.to_string() },
        }
    }
}

impl SqliteStore {
    /// Opens or creates the database at `path` and starts its writer thread.
    pub async fn open(path: &Path, options: StoreOptions) -> Result<Self, RelayError> {
        let path = path.to_owned();
        let location = path.display().to_string();
        let opened = tokio::task::spawn_blocking(move || open_blocking(&path, options)).await;
        let failed = |reason: String| RelayError::OpenStore { location: location.clone(), reason };
        opened.map_err(|e| failed(e.to_string()))?.map_err(|e| failed(e.to_string()))
    }

    pub(crate) fn writer(&self) -> &WriterHandle {
        &self.inner.writer
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    pub(crate) async fn fetch(
        &self,
        recv_id: QueueId,
        hash: SecretHash,
        after: u64,
        max: usize,
    ) -> Result<Fetched, StoreError> {
        self.read(move |conn| fetch(conn, recv_id, hash, after, max)).await
    }

    pub(crate) async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.read(stats).await
    }

    pub(crate) async fn stored_block_size(&self) -> Result<Option<usize>, StoreError> {
        self.read(|conn| {
            let len: Option<i64> =
                conn.query_row("SELECT length(data) FROM blocks LIMIT 1", [], |r| r.get(0)).optional()?;
            Ok(len.map(|n| usize::try_from(n).unwrap_or(0)))
        })
        .await
    }

    /// Closes the readers first (waiting for reads in flight), then the writer: the last
    /// connection to close must be able to write, so it can fold the WAL into the database
    /// and delete it.
    pub(crate) async fn close(&self) {
        if let Ok(all) = self.inner.read_permits.acquire_many(READERS as u32).await {
            self.inner.read_permits.close();
            lock(&self.inner.readers).clear();
            drop(all);
        }
        self.inner.writer.close().await;
        let thread = lock(&self.inner.thread).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Runs `f` on a pooled read connection, off the async threads.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self.inner.read_permits.acquire().await.map_err(|_| StoreError::Closed)?;
        let inner = Arc::clone(&self.inner);
        let run = move || {
            let conn = lock(&inner.readers).pop().ok_or(StoreError::Closed)?;
            let result = f(&conn);
            lock(&inner.readers).push(conn);
            result
        };
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|e| StoreError::Backend { engine: "SQLite", message: e.to_string() })?
    }
}

/// A poisoned lock only means another thread panicked while holding a plain list.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn open_blocking(path: &Path, options: StoreOptions) -> Result<SqliteStore, StoreError> {
    let mut conn = open_writer(path, options)?;
    migrate(&mut conn)?;
    let readers = (0..READERS).map(|_| open_reader(path)).collect::<Result<Vec<_>, _>>()?;
    let (writer, rx) = WriterHandle::new();
    let hub = Arc::new(Hub::default());
    let thread_hub = Arc::clone(&hub);
    let thread = std::thread::Builder::new()
        .name("relay-sqlite-writer".into())
        .spawn(move || writer_loop(conn, rx, thread_hub))
        .map_err(|e| StoreError::Backend {
            engine: "SQLite",
            message: format!("cannot start writer: {e}"),
        })?;
    Ok(SqliteStore {
        inner: Arc::new(Inner {
            writer,
            hub,
            readers: Mutex::new(readers),
            read_permits: Semaphore::new(READERS),
            thread: Mutex::new(Some(thread)),
        }),
    })
}

fn open_writer(path: &Path, options: StoreOptions) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend {
            engine: "SQLite",
            message: format!("cannot use WAL (got {mode})"),
        });
    }
    // FULL: the WAL is synced at every commit, so "stored" survives a power cut.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "secure_delete", options.scrub_deleted)?;
    // Blocks are written, read back and deleted within moments: a 64 MiB page cache keeps
    // them from being re-read from disk, and checkpointing every 64 MiB of WAL (not every
    // 4 MiB) lets a page rewritten many times be copied to the database once. Together about
    // 2.5x the throughput on a 2-core machine.
    conn.pragma_update(None, "cache_size", -64 * 1024)?;
    conn.pragma_update(None, "wal_autocheckpoint", 16 * 1024)?;
    if let Some(max) = options.max_bytes {
        let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages = i64::try_from(max).unwrap_or(i64::MAX) / page.max(1);
        conn.query_row(&format!("PRAGMA max_page_count = {}", pages.max(1)), [], |_| Ok(()))?;
    }
    Ok(conn)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    let current: i64 =
        conn.query_row("SELECT coalesce(max(version), 0) FROM schema_version", [], |r| r.get(0))?;
    let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if current > latest {
        return Err(StoreError::Backend {
            engine: "SQLite",
            message: format!(
                "schema version {current} is newer than this relay knows ({latest}); upgrade the relay"
            ),
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO schema_version VALUES (?1, ?2)", params![version, to_i64(unix_now())])?;
        tx.commit()?;
    }
    Ok(())
}

/// The writer thread: take everything pending, apply it in one transaction, commit, answer.
fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Command>, hub: Arc<Hub>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = Batch::drain(first, &mut rx);
        if !batch.jobs.is_empty() {
            let mut written = Vec::new();
            let results = apply(&mut conn, &mut batch.jobs, &mut written);
            hub.committed(&written);
            Batch::answer(batch.jobs, results);
        }
        if let Some(done) = batch.close {
            finish(conn);
            let _ = done.send(());
            return;
        }
    }
    finish(conn);
}

/// Folds the WAL back into the database file so a closed store is one self-contained file.
fn finish(conn: Connection) {
    if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %err, "SQLite checkpoint at close failed");
    }
}

type Results = Result<Vec<Result<WriteDone, StoreError>>, StoreError>;

/// Applies a batch in one transaction. A per-request error (wrong secret) answers that job
/// only; any other error rolls everything back and fails every job of the batch.
fn apply(conn: &mut Connection, jobs: &mut [Job], written: &mut Vec<Committed>) -> Results {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(jobs.len());
    let mut plan = PutPlan::default();
    for job in jobs.iter_mut() {
        let result = match &mut job.op {
            WriteOp::Put { items, quota, now } => put(&tx, &mut plan, std::mem::take(items), *quota, *now),
            other => flush(&tx, &mut plan).and_then(|()| apply_other(&tx, other)),
        };
        match result {
            Err(err) if !err.is_per_request() => return Err(err),
            result => results.push(result),
        }
    }
    flush(&tx, &mut plan)?;
    tx.commit()?;
    *written = plan.written;
    Ok(results)
}

fn apply_other(tx: &Connection, op: &mut WriteOp) -> Result<WriteDone, StoreError> {
    match op {
        WriteOp::Create { queue, now } => create(tx, queue, *now),
        WriteOp::Ack { recv_id, hash, seqs, now } => ack(tx, *recv_id, *hash, seqs, *now),
        WriteOp::Touch { recv_id, now } => touch(tx, *recv_id, *now),
        WriteOp::Delete { recv_id, hash } => delete(tx, *recv_id, *hash),
        WriteOp::Purge { cutoff } => purge(tx, *cutoff),
        WriteOp::Setting { name, value } => {
            let (name, value): (&str, &str) = (name, value);
            tx.execute(
                "INSERT INTO relay_settings (name, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![name, value],
            )?;
            let held =
                tx.query_row("SELECT value FROM relay_settings WHERE name = ?1", [name], |r| r.get(0))?;
            Ok(WriteDone::Setting(held))
        }
        WriteOp::Put { .. } => Err(StoreError::Backend { engine: "SQLite", message: "misrouted put".into() }),
    }
}

fn create(tx: &Connection, q: &NewQueue, now: u64) -> Result<WriteDone, StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO queues (recv_id, send_id, recv_hash, send_hash, touched_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    )?;
    let n = stmt.execute(params![q.recv_id.0, q.send_id.0, q.recv_hash.0, q.send_hash.0, to_i64(now)])?;
    if n == 0 { Err(StoreError::IdTaken) } else { Ok(WriteDone::Created) }
}

fn put(
    tx: &Connection,
    plan: &mut PutPlan,
    items: Vec<PutItem>,
    quota: u32,
    now: u64,
) -> Result<WriteDone, StoreError> {
    for send_id in plan.missing(&items) {
        let row = load_by_send_id(tx, send_id)?;
        plan.rows.insert(send_id, row);
    }
    Ok(WriteDone::Put(plan.plan(items, quota, now)))
}

fn load_by_send_id(tx: &Connection, send_id: QueueId) -> Result<Option<QueueRow>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, recv_id, send_hash, next_seq, stored, touched_at FROM queues WHERE send_id = ?1",
    )?;
    let raw = stmt
        .query_row([send_id.0], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .optional()?;
    let Some((key, recv_id, send_hash, next_seq, stored, touched_at)) = raw else { return Ok(None) };
    Ok(Some(QueueRow {
        key,
        recv_id: QueueId(fixed(&recv_id)?),
        send_hash: SecretHash(fixed(&send_hash)?),
        next_seq: to_u64(next_seq),
        stored: to_u64(stored),
        touched_at: to_u64(touched_at),
        dirty: false,
    }))
}

/// Writes the planned blocks and queue counters.
fn flush(tx: &Connection, plan: &mut PutPlan) -> Result<(), StoreError> {
    let (rows, blocks) = plan.take_dirty();
    if !blocks.is_empty() {
        let mut insert =
            tx.prepare_cached("INSERT INTO blocks (queue, seq, stored_at, data) VALUES (?1, ?2, ?3, ?4)")?;
        for b in &blocks {
            insert.execute(params![b.queue_key, to_i64(b.seq), to_i64(b.stored_at), b.block.as_ref()])?;
        }
        plan.inserted(blocks);
    }
    let mut update = tx.prepare_cached(
        "UPDATE queues SET next_seq = ?1, stored = ?2, touched_at = max(touched_at, ?3) WHERE id = ?4",
    )?;
    for r in &rows {
        update.execute(params![to_i64(r.next_seq), to_i64(r.stored), to_i64(r.touched_at), r.key])?;
    }
    Ok(())
}

/// The queue's key if `hash` opens it for receiving.
fn authorize(conn: &Connection, recv_id: QueueId, hash: SecretHash) -> Result<(i64, u64), StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id, recv_hash, touched_at FROM queues WHERE recv_id = ?1")?;
    let row = stmt
        .query_row([recv_id.0], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?)))
        .optional()?;
    match row {
        Some((key, stored_hash, touched)) if SecretHash(fixed(&stored_hash)?) == hash => {
            Ok((key, to_u64(touched)))
        }
        _ => Err(StoreError::NotAuthorized),
    }
}

fn ack(
    tx: &Connection,
    recv_id: QueueId,
    hash: SecretHash,
    seqs: &[u64],
    now: u64,
) -> Result<WriteDone, StoreError> {
    let (key, _) = authorize(tx, recv_id, hash)?;
    let mut delete = tx.prepare_cached("DELETE FROM blocks WHERE queue = ?1 AND seq = ?2")?;
    let mut deleted = 0u64;
    for seq in seqs {
        deleted += delete.execute(params![key, to_i64(*seq)])? as u64;
    }
    tx.prepare_cached(
        "UPDATE queues SET stored = stored - ?1, touched_at = max(touched_at, ?2) WHERE id = ?3",
    )?
    .execute(params![to_i64(deleted), to_i64(now), key])?;
    Ok(WriteDone::Acked(deleted))
}

fn touch(tx: &Connection, recv_id: QueueId, now: u64) -> Result<WriteDone, StoreError> {
    tx.prepare_cached("UPDATE queues SET touched_at = max(touched_at, ?1) WHERE recv_id = ?2")?
        .execute(params![to_i64(now), recv_id.0])?;
    Ok(WriteDone::Touched)
}

fn delete(tx: &Connection, recv_id: QueueId, hash: SecretHash) -> Result<WriteDone, StoreError> {
    let (key, _) = authorize(tx, recv_id, hash)?;
    tx.execute("DELETE FROM blocks WHERE queue = ?1", [key])?;
    tx.execute("DELETE FROM queues WHERE id = ?1", [key])?;
    Ok(WriteDone::Deleted)
}

fn purge(tx: &Connection, cutoff: u64) -> Result<WriteDone, StoreError> {
    let cutoff = to_i64(cutoff);
    let mut per_queue: HashMap<i64, i64> = HashMap::new();
    {
        let mut stmt = tx.prepare("DELETE FROM blocks WHERE stored_at < ?1 RETURNING queue")?;
        let mut rows = stmt.query([cutoff])?;
        while let Some(row) = rows.next()? {
            *per_queue.entry(row.get(0)?).or_default() += 1;
        }
    }
    let mut update = tx.prepare_cached("UPDATE queues SET stored = stored - ?1 WHERE id = ?2")?;
    for (key, n) in &per_queue {
        update.execute(params![n, key])?;
    }
    let idle_blocks = tx.execute(
        "DELETE FROM blocks WHERE queue IN (SELECT id FROM queues WHERE touched_at < ?1)",
        [cutoff],
    )?;
    let queues = tx.execute("DELETE FROM queues WHERE touched_at < ?1", [cutoff])?;
    let blocks = per_queue.values().map(|n| to_u64(*n)).sum::<u64>() + idle_blocks as u64;
    Ok(WriteDone::Purged(Purged { blocks, queues: queues as u64 }))
}

fn fetch(
    conn: &Connection,
    recv_id: QueueId,
    hash: SecretHash,
    after: u64,
    max: usize,
) -> Result<Fetched, StoreError> {
    let (key, touched_at) = authorize(conn, recv_id, hash)?;
    let mut stmt = conn
        .prepare_cached("SELECT seq, data FROM blocks WHERE queue = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")?;
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let items = stmt
        .query_map(params![key, to_i64(after), limit], |r| {
            Ok(Delivered { seq: to_u64(r.get(0)?), block: r.get(1)? })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Fetched { items, touched_at, latest: None })
}

fn stats(conn: &Connection) -> Result<StoreStats, StoreError> {
    let (queues, blocks, bytes): (i64, i64, i64) = conn.query_row(
        "SELECT (SELECT count(*) FROM queues), (SELECT count(*) FROM blocks),
                (SELECT coalesce(sum(length(data)), 0) FROM blocks)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(StoreStats { queues: to_u64(queues), blocks: to_u64(blocks), bytes: to_u64(bytes) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn a_full_database_is_reported_as_disk_full() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (b BLOB); PRAGMA max_page_count = 8;").unwrap();
        let err =
            (0..100).find_map(|_| conn.execute("INSERT INTO t VALUES (zeroblob(4096))", []).err()).unwrap();
        assert_eq!(StoreError::from(err), StoreError::DiskFull);
    }

    #[test]
    fn writer_uses_wal_with_full_sync_and_secure_delete_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let scrub = StoreOptions { scrub_deleted: true, max_bytes: None };
        let conn = open_writer(&dir.path().join("relay.db"), scrub).unwrap();
        let get = |name: &str| conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(get("synchronous"), 2, "FULL");
        assert_eq!(get("secure_delete"), 1);
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let plain = open_writer(&dir.path().join("other.db"), StoreOptions::default()).unwrap();
        assert_eq!(plain.query_row("PRAGMA secure_delete", [], |r| r.get::<_, i64>(0)).unwrap(), 0);
    }
}
