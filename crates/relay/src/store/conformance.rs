//! The store conformance suite: every engine must pass every check here.
//!
//! Each check takes `open`, which opens (or reopens) the same store, so restart durability
//! can be checked too. Time is injected, never read. The unit tests at the bottom run the
//! suite against SQLite always and against PostgreSQL at `BACKCHANNEL_TEST_POSTGRES` (default
//! `host=127.0.0.1 port=5432 user=postgres dbname=test`) when it is reachable; with `CI` set,
//! an unreachable PostgreSQL fails the run instead of skipping.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test suite: failing loudly is its job"
)]

use std::collections::HashSet;
use std::future::Future;

use backchannel_wire::{QueueId, QueueSecret};

use super::{AnyStore, NewQueue, Purged, PutItem, PutResult};
use crate::StoreError;

const QUOTA: u32 = 1000;
const T0: u64 = 1_700_000_000;

/// A queue made for a test, with the secrets a client would hold.
pub struct TestQueue {
    pub new: NewQueue,
    pub recv_secret: QueueSecret,
    pub send_secret: QueueSecret,
}

impl TestQueue {
    pub fn random() -> Self {
        let (recv_secret, send_secret) = (QueueSecret::random(), QueueSecret::random());
        let new = NewQueue {
            recv_id: QueueId::random(),
            send_id: QueueId::random(),
            recv_hash: recv_secret.hash(),
            send_hash: send_secret.hash(),
        };
        Self { new, recv_secret, send_secret }
    }

    pub fn item(&self, block: Vec<u8>) -> PutItem {
        PutItem { send_id: self.new.send_id, hash: self.send_secret.hash(), block }
    }
}

/// A recognisable block: `tag` repeated.
fn block(tag: u8) -> Vec<u8> {
    vec![tag; 1024]
}

async fn created(store: &AnyStore, now: u64) -> TestQueue {
    let q = TestQueue::random();
    store.create_queue(q.new, now).await.unwrap();
    q
}

async fn fetch_all(store: &AnyStore, q: &TestQueue) -> Vec<(u64, Vec<u8>)> {
    let got = store.fetch(q.new.recv_id, q.recv_secret.hash(), 0, 100_000).await.unwrap();
    got.items.into_iter().map(|d| (d.seq, d.block)).collect()
}

fn stored_seqs(results: &[PutResult]) -> Vec<u64> {
    results
        .iter()
        .map(|r| match r {
            PutResult::Stored { seq, .. } => *seq,
            other => panic!("expected Stored, got {other:?}"),
        })
        .collect()
}

/// Blocks come back oldest first with increasing seqs; `after` and `max` page; acked blocks
/// are gone; unknown seqs are ignored.
pub async fn round_trip_order_and_ack<F: Fn() -> Fut, Fut: Future<Output = AnyStore>>(open: F) {
    let store = open().await;
    let q = created(&store, T0).await;
    let first =
        store.put(vec![q.item(block(1)), q.item(block(2)), q.item(block(3))], QUOTA, T0).await.unwrap();
    let second = store.put(vec![q.item(block(4)), q.item(block(5))], QUOTA, T0).await.unwrap();
    let seqs: Vec<u64> = stored_seqs(&first).into_iter().chain(stored_seqs(&second)).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(
        first.iter().all(|r| matches!(r, PutResult::Stored { recv_id, .. } if *recv_id == q.new.recv_id))
    );

    let all = fetch_all(&store, &q).await;
    assert_eq!(all.iter().map(|(s, _)| *s).collect::<Vec<_>>(), seqs);
    assert_eq!(all.iter().map(|(_, b)| b[0]).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);

    let page = store.fetch(q.new.recv_id, q.recv_secret.hash(), 0, 2).await.unwrap();
    assert_eq!(page.items.iter().map(|d| d.seq).collect::<Vec<_>>(), seqs[..2]);
    let rest = store.fetch(q.new.recv_id, q.recv_secret.hash(), seqs[1], 10).await.unwrap();
    assert_eq!(rest.items.iter().map(|d| d.seq).collect::<Vec<_>>(), seqs[2..]);

    let deleted =
        store.ack(q.new.recv_id, q.recv_secret.hash(), vec![seqs[0], seqs[2], 999_999], T0).await.unwrap();
    assert_eq!(deleted, 2);
    let left = fetch_all(&store, &q).await;
    assert_eq!(left.iter().map(|(_, b)| b[0]).collect::<Vec<_>>(), vec![2, 4, 5]);
    assert_eq!(store.ack(q.new.recv_id, q.recv_secret.hash(), vec![seqs[0]], T0).await.unwrap(), 0);
    store.close().await;
}

/// The wrong secret opens nothing, and the send secret is not a receive secret.
pub async fn wrong_secret_refused<F: Fn() -> Fut, Fut: Future<Output = AnyStore>>(open: F) {
    let store = open().await;
    let q = created(&store, T0).await;
    let wrong = QueueSecret::random();
    let bad_put = PutItem { send_id: q.new.send_id, hash: wrong.hash(), block: block(1) };
    assert_eq!(store.put(vec![bad_put], QUOTA, T0).await.unwrap(), vec![PutResult::Refused]);
    let recv_as_send = PutItem { send_id: q.new.send_id, hash: q.recv_secret.hash(), block: block(1) };
    assert_eq!(store.put(vec![recv_as_send], QUOTA, T0).await.unwrap(), vec![PutResult::Refused]);
    for hash in [wrong.hash(), q.send_secret.hash()] {
        let fetched = store.fetch(q.new.recv_id, hash, 0, 10).await;
        assert_eq!(fetched.unwrap_err(), StoreError::NotAuthorized);
        assert_eq!(store.ack(q.new.recv_id, hash, vec![1], T0).await.unwrap_err(), StoreError::NotAuthorized);
        assert_eq!(store.delete_queue(q.new.recv_id, hash).await.unwrap_err(), StoreError::NotAuthorized);
    }
    // The send id is not a receive id either.
    let by_send_id = store.fetch(q.new.send_id, q.recv_secret.hash(), 0, 10).await;
    assert_eq!(by_send_id.unwrap_err(), StoreError::NotAuthorized);
    assert!(fetch_all(&store, &q).await.is_empty());
    store.close().await;
}

/// Unknown queues look exactly like wrong secrets.
pub async fn unknown_queue<F: Fn() -> Fut, Fut: Future<Output = AnyStore>>(open: F) {
    let store = open().await;
    let ghost = TestQueue::random();
    assert_eq!(store.put(vec![ghost.item(block(1))], QUOTA, T0).await.unwrap(), vec![PutResult::Refused]);
    let hash = ghost.recv_secret.hash();
    assert_eq!(store.fetch(ghost.new.recv_id, hash, 0, 10).await.unwrap_err(), StoreError::NotAuthorized);
    assert_eq!(store.ack(ghost.new.recv_id, hash, vec![1], T0).await.unwrap_err(), StoreError::NotAuthorized);
    assert_eq!(store.delete_queue(ghost.new.recv_id, hash).await.unwrap_err(), StoreError::NotAuthorized);
    store.touch(ghost.new.recv_id, T0).await.unwrap();
    // A refused item in a batch does not spoil the others.
    let q = created(&store, T0).await;
    let mixed = store.put(vec![ghost.item(block(1)), q.item(block(2))], QUOTA, T0).await.unwrap();
    assert_eq!(mixed[0], PutResult::Refused);
    assert!(matches!(mixed[1], PutResult::Stored { .. }));
    store.close().await;
}

/// A full queue refuses more until blocks are acknowledged.
pub async fn quota<F: Fn() -> Fut, Fut: Future<Output = AnyStore>>(open: F) {
    let store = open().await;
    let q = created(&store, T0).await;
    let items = (1..=5).map(|i| q.item(block(i))).collect();
    let results = store.put(items, 3, T0).await.unwrap();
    assert!(matches!(
        results[..3],
        [PutResult::Stored { .. }, PutResult::Stored { .. }, PutResult::Stored { .. }]
    ));
    assert_eq!(results[3..], [PutResult::QueueFull, PutResult::QueueFull]);
    assert_eq!(store.put(vec![q.item(block(6))], 3, T0).await.unwrap(), vec![PutResult::QueueFull]);
    let first = stored_seqs(&results[..1])[0];
    assert_eq!(store.ack(q.new.recv_id, q.recv_secret.hash(), vec![first], T0).await.unwrap(), 1);
    let again = store.put(vec![q.item(block(7)), q.item(block(8))], 3, T0).await.unwrap();
    assert!(matches!(again[0], PutResult::Stored { .. }));
    assert_eq!(again[1], PutResult::QueueFull);
    assert_eq!(fetch_all(&store, &q).await.len(), 3);
    store.close().await;
}

/// Blocks expire by age; queues expire when idle; a touch keeps a quiet queue alive.
pub async fn ttl_purge<F: Fn() -> Fut, Fut: Future<Output = AnyStore>>(open: F) {
    let store = open().await;
    let busy = created(&store, T0).await;
    store.put(vec![busy.item(block(1))], QUOTA, T0).await.unwrap();
    store.put(vec![busy.item(block(2))], QUOTA, T0 + 1000).await.unwrap();
    let idle = created(&store, T0).await;
    let polled = created(&store, T0).await;
    store.touch(polled.new.recv_id, T0 + 600).await.unwrap();

    let purged = store.purge_expired(T0 + 500).await.unwrap();
    assert_eq!(purged, Purged { blocks: 1, queues: 1 });
    let left = fetch_all(&store, &busy).await;
    assert_eq!(left.iter().map(|(_, b)| b[0]).collect::<Vec<_>>(), vec![2]);
    let hash = idle.recv_secret.hash();
    assert_eq!(store.fetch(idle.new.recv_id, hash, 0, 1).await.unwrap_err(), StoreError::NotAuthorized);
    assert!(fetch_all(&store, &polled).await.is_empty());
    assert_eq!(store.stats().await.unwrap().queues, 2);
    // The expired block no longer counts against the quota.
    let results = store.put(vec![busy.item(block(3))], 2, T0 + 1000).await.unwrap();
    assert!(matches!(results[0], PutResult::Stored { .. }));
    assert_eq!(store.purge_expired(T0 + 500).await.unwrap(), Purged::default());
    store.close().await;
}

/// Deleting a queue deletes its blocks and its capabilities.
pub async fn delete_queue<F: Fn() -> Fut, Fut: Future<Output = AnyStore>>(open: F) {
    let store = open().await;
    let q = created(&store, T0).await;
    let other = created(&store, T0).await;
    store.put(vec![q.item(block(1)), q.item(block(2)), other.item(block(3))], QUOTA, T0).await.unwrap();
    store.delete_queue(q.new.recv_id, q.recv_secret.hash()).await.unwrap();
    let hash = q.recv_secret.hash();
    assert_eq!(store.fetch(q.new.recv_id, hash, 0, 10).await.unwrap_err(), StoreError::NotAuthorized);
    assert_eq!(store.put(vec![q.item(block(4))], QUOTA, T0).await.unwrap(), vec![PutResult::Refused]);
    assert_eq!(store.delete_queue(q.new.recv_id, hash).await.unwrap_err(), StoreError::NotAuthorized);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.queues, stats.blocks), (1, 1));
    assert_eq!(fetch_all(&store, &other).await.len(), 1);
    store.close().await;
}

/// Stats count queues, blocks and bytes; a reused id is refused; block size is reported.
pub async fn stats_and_ids<F: Fn() -> Fut, Fut: Future<Output = AnyStore>>(open: F) {
    let store = open().await;
    assert_eq!(store.stats().await.unwrap(), super::StoreStats::default());
    assert_eq!(store.stored_block_size().await.unwrap(), None);
    let a = created(&store, T0).await;
    let b = created(&store, T0).await;
    store.put(vec![a.item(block(1)), a.item(block(2)), b.item(block(3))], QUOTA, T0).await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.queues, stats.blocks, stats.bytes), (2, 3, 3 * 1024));
    assert_eq!(store.stored_block_size().await.unwrap(), Some(1024));
    let mut dup = TestQueue::random();
    dup.new.recv_id = a.new.recv_id;
    assert_eq!(store.create_queue(dup.new, T0).await.unwrap_err(), StoreError::IdTaken);
    let mut dup = TestQueue::random();
    dup.new.send_id = b.new.send_id;
    assert_eq!(store.create_queue(dup.new, T0).await.unwrap_err(), StoreError::IdTaken);
    assert_eq!(store.stats().await.unwrap().queues, 2);
    store.close().await;
}

/// Closing and reopening keeps queues and blocks, and seqs keep increasing.
pub async fn restart_durability<F: Fn() -> Fut, Fut: Future<Output = AnyStore>>(open: F) {
    let store = open().await;
    let q = created(&store, T0).await;
    let before = stored_seqs(&store.put(vec![q.item(block(1)), q.item(block(2))], QUOTA, T0).await.unwrap());
    store.ack(q.new.recv_id, q.recv_secret.hash(), vec![before[1]], T0).await.unwrap();
    store.close().await;
    assert_eq!(store.put(vec![q.item(block(9))], QUOTA, T0).await.unwrap_err(), StoreError::Closed);

    let store = open().await;
    let kept = fetch_all(&store, &q).await;
    assert_eq!(kept, vec![(before[0], block(1))]);
    let after = stored_seqs(&store.put(vec![q.item(block(3))], QUOTA, T0).await.unwrap());
    assert!(after[0] > before[1], "seq {} reused after restart (had {before:?})", after[0]);
    store.close().await;
}

/// Many tasks sending at once: every block stored exactly once, seqs unique and ordered.
pub async fn concurrent_puts<F: Fn() -> Fut, Fut: Future<Output = AnyStore>>(open: F) {
    const TASKS: u8 = 16;
    const PUTS: u8 = 12;
    let store = open().await;
    let queues = [created(&store, T0).await, created(&store, T0).await];
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        let targets: Vec<_> = queues.iter().map(|q| (q.new.send_id, q.send_secret.hash())).collect();
        tasks.push(tokio::spawn(async move {
            for p in 0..PUTS {
                let (send_id, hash) = targets[usize::from(p % 2)];
                let items = (0..=p % 3)
                    .map(|i| {
                        let mut b = vec![0u8; 1024];
                        b[..3].copy_from_slice(&[t, p, i]);
                        PutItem { send_id, hash, block: b }
                    })
                    .collect();
                let results = store.put(items, QUOTA, T0).await.unwrap();
                assert!(results.iter().all(|r| matches!(r, PutResult::Stored { .. })), "{results:?}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let expected: usize = usize::from(TASKS) * (0..PUTS).map(|p| usize::from(p % 3) + 1).sum::<usize>();
    let mut seen = HashSet::new();
    for q in &queues {
        let got = fetch_all(&store, q).await;
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        for (_, b) in got {
            assert!(seen.insert(b[..3].to_vec()), "block {:?} stored twice", &b[..3]);
        }
    }
    assert_eq!(seen.len(), expected);
    assert_eq!(store.stats().await.unwrap().blocks, expected as u64);
    store.close().await;
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::super::{PostgresStore, SqliteStore, StoreOptions};
    use super::*;
    use crate::store::postgres::quote_ident;

    struct SqliteHarness {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl SqliteHarness {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("relay.db");
            Self { _dir: dir, path }
        }

        async fn open(&self) -> AnyStore {
            AnyStore::Sqlite(SqliteStore::open(&self.path, StoreOptions::default()).await.unwrap())
        }
    }

    /// A fresh schema per test, dropped when the test ends (even by panic).
    struct PgHarness {
        conn: String,
        schema: String,
    }

    impl PgHarness {
        async fn new() -> Option<Self> {
            let conn = std::env::var("BACKCHANNEL_TEST_POSTGRES")
                .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_owned());
            let schema = format!("bc_test_{}", QueueId::random().to_hex());
            match Self::admin(&conn, &format!("CREATE SCHEMA {}", quote_ident(&schema))).await {
                Ok(()) => Some(Self { conn, schema }),
                Err(why) if std::env::var_os("CI").is_some() => {
                    panic!("PostgreSQL store conformance must run in CI, but: {why}")
                }
                Err(why) => {
                    eprintln!("skipping PostgreSQL store conformance: {why}");
                    None
                }
            }
        }

        async fn admin(conn: &str, sql: &str) -> Result<(), String> {
            let connect = tokio_postgres::connect(conn, tokio_postgres::NoTls);
            let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connect)
                .await
                .map_err(|_| format!("no answer from {conn} within 5 s"))?
                .map_err(|e| format!("cannot connect to {conn}: {e}"))?;
            tokio::spawn(connection);
            client.batch_execute(sql).await.map_err(|e| format!("{sql}: {e}"))
        }

        async fn open(&self) -> AnyStore {
            AnyStore::Postgres(PostgresStore::open(&self.conn, Some(&self.schema)).await.unwrap())
        }
    }

    impl Drop for PgHarness {
        fn drop(&mut self) {
            let (conn, sql) =
                (self.conn.clone(), format!("DROP SCHEMA {} CASCADE", quote_ident(&self.schema)));
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(Self::admin(&conn, &sql))
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop test schema {}: {dropped:?}", self.schema);
            }
        }
    }

    /// Several relay nodes on one PostgreSQL database wake each other's followers.
    #[tokio::test]
    async fn postgres_nodes_wake_each_other() {
        use crate::store::Wake;
        let Some(h) = PgHarness::new().await else { return };
        let (a, b) = (h.open().await, h.open().await);
        let mut wakes = a.wakes().unwrap();
        async fn next(w: &mut tokio::sync::mpsc::Receiver<Wake>) -> Wake {
            tokio::time::timeout(Duration::from_secs(5), w.recv()).await.unwrap().unwrap()
        }
        assert_eq!(next(&mut wakes).await, Wake::All, "listening starts by waking everyone");
        let q = created(&b, T0).await;
        b.put(vec![q.item(block(1))], QUOTA, T0).await.unwrap();
        assert_eq!(next(&mut wakes).await, Wake::Queue(q.new.recv_id));
        b.delete_queue(q.new.recv_id, q.recv_secret.hash()).await.unwrap();
        assert_eq!(next(&mut wakes).await, Wake::Queue(q.new.recv_id));
        a.close().await;
        b.close().await;
    }

    /// Relays in different schemas of one database do not wake each other, whether the schema
    /// is given or comes from the connection string's search_path (as `--store URL` gives it).
    #[tokio::test]
    async fn postgres_schemas_have_wake_ups_of_their_own() {
        use crate::store::Wake;
        let (Some(mine), Some(theirs)) = (PgHarness::new().await, PgHarness::new().await) else { return };
        let by_path = format!("{} options='-csearch_path={}'", mine.conn, mine.schema);
        let listener = AnyStore::Postgres(PostgresStore::open(&by_path, None).await.unwrap());
        let (neighbour, peer) = (theirs.open().await, mine.open().await);
        let mut wakes = listener.wakes().unwrap();
        async fn next(w: &mut tokio::sync::mpsc::Receiver<Wake>) -> Option<Wake> {
            tokio::time::timeout(Duration::from_millis(1500), w.recv()).await.ok().flatten()
        }
        assert_eq!(next(&mut wakes).await, Some(Wake::All), "listening starts by waking everyone");
        let other = created(&neighbour, T0).await;
        neighbour.put(vec![other.item(block(1))], QUOTA, T0).await.unwrap();
        let own = created(&peer, T0).await;
        peer.put(vec![own.item(block(2))], QUOTA, T0).await.unwrap();
        // Notifications of one channel arrive in commit order: the neighbour's would come first.
        assert_eq!(
            next(&mut wakes).await,
            Some(Wake::Queue(own.new.recv_id)),
            "only our schema's block wakes us"
        );
        for store in [listener, neighbour, peer] {
            store.close().await;
        }
    }

    #[tokio::test]
    async fn sqlite_has_no_other_nodes_to_hear() {
        let h = SqliteHarness::new();
        let store = h.open().await;
        assert!(store.wakes().is_none());
        store.close().await;
    }

    macro_rules! conformance {
        ($($check:ident),* $(,)?) => {
            mod sqlite_engine {
                use super::*;
                $(
                    #[tokio::test]
                    async fn $check() {
                        let h = SqliteHarness::new();
                        super::super::$check(|| h.open()).await;
                    }
                )*
            }
            mod postgres_engine {
                use super::*;
                $(
                    #[tokio::test]
                    async fn $check() {
                        let Some(h) = PgHarness::new().await else { return };
                        super::super::$check(|| h.open()).await;
                    }
                )*
            }
        };
    }

    conformance!(
        round_trip_order_and_ack,
        wrong_secret_refused,
        unknown_queue,
        quota,
        ttl_purge,
        delete_queue,
        stats_and_ids,
        restart_durability,
        concurrent_puts,
    );
}
