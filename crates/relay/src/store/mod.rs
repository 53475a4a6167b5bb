//! Where queues and blocks live: one interface, two engines (SQLite embedded, PostgreSQL for
//! several relay nodes), one conformance suite.
//!
//! A store holds only queue ids, secret hashes, seqs, timestamps and opaque blocks: no
//! addresses, no names. Writes go through one group-committing writer per store
//! (`batch.rs`); "stored" means committed to disk. Time is always passed in, never read here.

pub(crate) mod batch;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod postgres;
mod sqlite;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use backchannel_wire::{Delivered, QueueId, SecretHash, SendOutcome};

use crate::{RelayError, StoreError, StoreSpec};
use batch::{WriteDone, WriteOp, WriterHandle};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Seconds since the Unix epoch: the unit of every timestamp in a store.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A queue to create: its two ids and the hashes of its two capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewQueue {
    pub recv_id: QueueId,
    pub send_id: QueueId,
    pub recv_hash: SecretHash,
    pub send_hash: SecretHash,
}

/// One block to store, with the hash of the send secret presented for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutItem {
    pub send_id: QueueId,
    pub hash: SecretHash,
    pub block: Vec<u8>,
}

/// What became of one [`PutItem`]; `Stored` names the receive queue so its followers can be
/// woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutResult {
    Stored { recv_id: QueueId, seq: u64 },
    Refused,
    QueueFull,
}

impl PutResult {
    /// The answer the sender gets.
    pub fn outcome(&self) -> SendOutcome {
        match self {
            Self::Stored { .. } => SendOutcome::Stored,
            Self::Refused => SendOutcome::Refused,
            Self::QueueFull => SendOutcome::QueueFull,
        }
    }
}

/// Blocks read from a queue, oldest first, and when the queue was last active.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fetched {
    pub items: Vec<Delivered>,
    pub touched_at: u64,
    /// The last seq the queue ever assigned, when the engine tells (PostgreSQL: nodes compare
    /// it with what their followers have seen, to catch a wake-up lost with a node).
    pub latest: Option<u64>,
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    pub blocks: u64,
    pub queues: u64,
}

/// A nudge from the store that a queue (or any queue) may have new blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Queue(QueueId),
    /// Wake-ups may have been missed (a listener reconnected): every follower should look.
    All,
}

/// How much a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    pub queues: u64,
    pub blocks: u64,
    pub bytes: u64,
}

/// How a store treats what it deletes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Overwrite acknowledged and expired blocks with zeros in the database file (SQLite's
    /// `secure_delete`) instead of leaving them in free pages until reused. Off by default:
    /// it writes about 50% more per block (measured on the 2-core reference machine: ~30k
    /// blocks/s through the store without it, 18k-28k with it), for little gain: blocks are
    /// end-to-end encrypted ciphertext the host already saw in transit, and the WAL keeps
    /// copies for a while regardless. PostgreSQL has no equivalent (`VACUUM` reclaims space).
    pub scrub_deleted: bool,
    /// Embedded store only: the most bytes the database file may hold. Past it, writes fail
    /// as on a full disk (sends get `503`, nothing stored is touched); acknowledgements, which
    /// free pages, still work. `None`: as much as the disk holds.
    pub max_bytes: Option<u64>,
}

/// A store of either engine. Cheap to clone; every clone shares one writer.
#[derive(Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl AnyStore {
    /// Opens (creating if needed) the store `spec` names, and brings its schema up to date.
    pub async fn open(spec: &StoreSpec, data_dir: &Path, options: StoreOptions) -> Result<Self, RelayError> {
        match spec {
            StoreSpec::Sqlite => {
                Ok(Self::Sqlite(SqliteStore::open(&data_dir.join("relay.db"), options).await?))
            }
            StoreSpec::Postgres(conn) => Ok(Self::Postgres(PostgresStore::open(conn, None).await?)),
        }
    }

    /// The hand-off to this node's WebSocket followers, fed by the writer after each commit.
    pub(crate) fn hub(&self) -> &std::sync::Arc<crate::notify::Hub> {
        match self {
            Self::Sqlite(s) => s.hub(),
            Self::Postgres(p) => p.hub(),
        }
    }

    fn writer(&self) -> &WriterHandle {
        match self {
            Self::Sqlite(s) => s.writer(),
            Self::Postgres(p) => p.writer(),
        }
    }

    /// Creates a queue; [`StoreError::IdTaken`] if either id is in use.
    pub async fn create_queue(&self, queue: NewQueue, now: u64) -> Result<(), StoreError> {
        match self.writer().submit(WriteOp::Create { queue, now }).await? {
            WriteDone::Created => Ok(()),
            other => Err(mismatch(&other)),
        }
    }

    /// Stores a batch in one commit; one result per item, in order.
    pub async fn put(&self, items: Vec<PutItem>, quota: u32, now: u64) -> Result<Vec<PutResult>, StoreError> {
        match self.writer().submit(WriteOp::Put { items, quota, now }).await? {
            WriteDone::Put(results) => Ok(results),
            other => Err(mismatch(&other)),
        }
    }

    /// Up to `max` blocks with seq above `after`, oldest first.
    pub async fn fetch(
        &self,
        recv_id: QueueId,
        hash: SecretHash,
        after: u64,
        max: usize,
    ) -> Result<Fetched, StoreError> {
        match self {
            Self::Sqlite(s) => s.fetch(recv_id, hash, after, max).await,
            Self::Postgres(p) => p.fetch(recv_id, hash, after, max).await,
        }
    }

    /// Deletes the listed blocks; unknown seqs are ignored. Returns how many were deleted.
    pub async fn ack(
        &self,
        recv_id: QueueId,
        hash: SecretHash,
        seqs: Vec<u64>,
        now: u64,
    ) -> Result<u64, StoreError> {
        match self.writer().submit(WriteOp::Ack { recv_id, hash, seqs, now }).await? {
            WriteDone::Acked(n) => Ok(n),
            other => Err(mismatch(&other)),
        }
    }

    /// Marks a queue active at `now` so it does not expire as idle.
    pub async fn touch(&self, recv_id: QueueId, now: u64) -> Result<(), StoreError> {
        match self.writer().submit(WriteOp::Touch { recv_id, now }).await? {
            WriteDone::Touched => Ok(()),
            other => Err(mismatch(&other)),
        }
    }

    /// Deletes a queue and all its blocks.
    pub async fn delete_queue(&self, recv_id: QueueId, hash: SecretHash) -> Result<(), StoreError> {
        match self.writer().submit(WriteOp::Delete { recv_id, hash }).await? {
            WriteDone::Deleted => Ok(()),
            other => Err(mismatch(&other)),
        }
    }

    /// Deletes blocks stored before `cutoff`, then queues idle since before `cutoff`.
    pub async fn purge_expired(&self, cutoff: u64) -> Result<Purged, StoreError> {
        match self.writer().submit(WriteOp::Purge { cutoff }).await? {
            WriteDone::Purged(p) => Ok(p),
            other => Err(mismatch(&other)),
        }
    }

    /// Records `value` for the deployment setting `name` unless it is recorded already, and
    /// answers with the recorded value (the first node's).
    pub async fn setting(&self, name: &'static str, value: String) -> Result<String, StoreError> {
        match self.writer().submit(WriteOp::Setting { name, value }).await? {
            WriteDone::Setting(v) => Ok(v),
            other => Err(mismatch(&other)),
        }
    }

    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        match self {
            Self::Sqlite(s) => s.stats().await,
            Self::Postgres(p) => p.stats().await,
        }
    }

    /// The size of some stored block, to catch a restart with a different block size.
    pub async fn stored_block_size(&self) -> Result<Option<usize>, StoreError> {
        match self {
            Self::Sqlite(s) => s.stored_block_size().await,
            Self::Postgres(p) => p.stored_block_size().await,
        }
    }

    /// The last seq each of `ids` ever assigned, for engines shared by several nodes
    /// (`None` for SQLite, whose one node hands over everything it commits).
    pub async fn latest_seqs(&self, ids: &[QueueId]) -> Result<Option<Vec<(QueueId, u64)>>, StoreError> {
        match self {
            Self::Sqlite(_) => Ok(None),
            Self::Postgres(p) => p.latest_seqs(ids).await.map(Some),
        }
    }

    /// Blocks after the given seqs of these queues (up to `per_queue` each, in seq order), read
    /// in one go for this node's followers when other nodes said the queues have news; `None`
    /// for SQLite (one node, which hands over everything it commits).
    pub(crate) async fn tail(
        &self,
        wanted: &[(QueueId, u64)],
        per_queue: usize,
    ) -> Result<Option<Vec<crate::notify::Committed>>, StoreError> {
        match self {
            Self::Sqlite(_) => Ok(None),
            Self::Postgres(p) => p.tail(wanted, per_queue).await.map(Some),
        }
    }

    /// Wake-ups for blocks committed by any relay node sharing this store, or `None` when the
    /// engine serves one node only (SQLite), whose own sends wake its followers directly.
    pub fn wakes(&self) -> Option<tokio::sync::mpsc::Receiver<Wake>> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(p) => Some(p.wakes()),
        }
    }

    /// True when other nodes may write to this store (PostgreSQL).
    pub fn wakes_are_shared(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Finishes pending writes and closes the engine; later calls fail with `Closed`.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }
}

/// The writer answered with another operation's result: a bug, reported not panicked.
fn mismatch(done: &WriteDone) -> StoreError {
    StoreError::Backend { engine: "store", message: format!("writer answered with {done:?}") }
}

/// Converts a stored integer to a seq or count; the schema never holds negatives.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Converts a seq, count or timestamp to the databases' signed 64-bit integers.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Reads a 16-byte id or 32-byte hash column.
pub(crate) fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Backend {
        engine: "store",
        message: format!("a column holds {} bytes where {N} were expected", bytes.len()),
    })
}
