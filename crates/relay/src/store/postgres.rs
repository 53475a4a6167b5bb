//! The PostgreSQL engine, for deployments with several relay nodes on one database. Same
//! schema and same group commit as SQLite: one writer task owns a connection and applies
//! each drained batch in one transaction, with array (`UNNEST`) statements so a batch of
//! blocks costs a few round trips, not one per block; acknowledgements of many queues in one
//! batch are one round trip each for load, delete and update. Fetches use their own
//! connections (one query each). Queue rows are locked `FOR UPDATE` while a batch assigns
//! their seqs, so nodes sharing a database never hand out the same seq twice.
//!
//! Followers on this node get committed blocks from the writer, in memory. Other nodes learn
//! that a queue has news from a `NOTIFY`, sent after the commit (never inside the data
//! transaction: a notifying transaction takes a database-wide lock at commit) by a separate
//! task that coalesces: at most one notification every few milliseconds, listing the queues
//! (`announce.rs`). It is a signal only; the data stays in the tables.

use std::collections::HashMap;
use std::error::Error as _;
use std::str::FromStr;
use std::sync::Arc;

use backchannel_wire::{Delivered, QueueId, SecretHash};
use sha2::Digest as _;
use tokio::sync::{Mutex, mpsc};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, GenericClient, NoTls, Statement};

use super::batch::{Batch, Command, Job, PutPlan, QueueRow, WriteDone, WriteOp, WriterHandle};
use super::{Fetched, NewQueue, Purged, StoreStats, Wake, fixed, to_i64, to_u64, unix_now};
use crate::config::redact_password;
use crate::notify::{Committed, Hub};
use crate::{RelayError, StoreError};
use announce::Announcer;

mod announce;
mod listen;
mod vacuum;

const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../migrations/postgres/0002_settings.sql")),
    (3, include_str!("../../migrations/postgres/0003_blocks_inline.sql")),
];
/// Serialises migrations when several relay nodes start at once.
const MIGRATION_LOCK: i64 = 0x6263_7265_6c61_7900;
/// Read connections: PostgreSQL runs each connection's queries one after another, so two let
/// fetches proceed while another waits for the disk.
const READERS: usize = 2;

/// A relay store in a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: WriterHandle,
    hub: Arc<Hub>,
    target: Target,
    /// Read connections, used in turn.
    readers: Vec<Mutex<Option<Arc<Reader>>>>,
    next_reader: std::sync::atomic::AtomicUsize,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The backend process id of this node's announcing connection (its notifications).
    own_pid: Arc<std::sync::atomic::AtomicI32>,
}

/// How to (re)connect: the parsed configuration and the schema to work in.
#[derive(Clone)]
struct Target {
    config: Config,
    schema: Option<String>,
    shown: String,
    /// The notification channel of this deployment, see [`wake_channel`].
    wake_channel: String,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        if err.code() == Some(&SqlState::DISK_FULL) {
            return Self::DiskFull;
        }
        let detail = match err.source() {
            Some(source) => format!("{err}: {source}"),
            None => err.to_string(),
        };
        if err.is_closed() || err.source().is_some_and(|s| s.is::<std::io::Error>()) {
            return Self::Unreachable(detail);
        }
        Self::Backend { engine: "PostgreSQL", message: detail }
    }
}

impl PostgresStore {
    /// Connects to `conn` (a `postgres://` URL or a `key=value` string), optionally working in
    /// `schema` (which must exist), and brings the schema up to date.
    pub async fn open(conn: &str, schema: Option<&str>) -> Result<Self, RelayError> {
        let shown = redact_password(conn);
        let config = Config::from_str(conn).map_err(|e| RelayError::OpenStore {
            location: shown.clone(),
            reason: format!("invalid connection string: {e}"),
        })?;
        let mut target =
            Target { config, schema: schema.map(str::to_owned), shown, wake_channel: String::new() };
        let unreachable = |e: StoreError| RelayError::PostgresUnreachable {
            location: target.shown.clone(),
            reason: e.to_string(),
        };
        let mut client = target.connect().await.map_err(unreachable)?;
        let failed =
            |e: StoreError| RelayError::OpenStore { location: target.shown.clone(), reason: e.to_string() };
        migrate(&mut client).await.map_err(failed)?;
        target.wake_channel = wake_channel(&client).await.map_err(failed)?;
        let writer_conn = WriterConn::new(client).await.map_err(failed)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Reader::connect(&target).await.map_err(unreachable)?;
            readers.push(Mutex::new(Some(Arc::new(reader))));
        }
        let (writer, rx) = WriterHandle::new();
        let hub = Arc::new(Hub::default());
        let own_pid = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let announcer = Announcer::spawn(target.clone(), Arc::clone(&own_pid));
        let deleted = vacuum::spawn(target.clone());
        let after_commit = AfterCommit { hub: Arc::clone(&hub), announcer, deleted };
        let task = tokio::spawn(writer_task(writer_conn, target.clone(), rx, after_commit));
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                hub,
                target,
                readers,
                next_reader: std::sync::atomic::AtomicUsize::new(0),
                task: Mutex::new(Some(task)),
                own_pid,
            }),
        })
    }

    pub(crate) fn writer(&self) -> &WriterHandle {
        &self.inner.writer
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// The next read connection, reconnected if the server dropped it.
    async fn reader(&self) -> Result<Arc<Reader>, StoreError> {
        let i = self.inner.next_reader.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % READERS;
        let mut slot = self.inner.readers[i].lock().await;
        match slot.as_ref() {
            Some(reader) if !reader.client.is_closed() => Ok(Arc::clone(reader)),
            Some(_) => {
                let reader = Arc::new(Reader::connect(&self.inner.target).await?);
                *slot = Some(Arc::clone(&reader));
                Ok(reader)
            }
            None => Err(StoreError::Closed),
        }
    }

    pub(crate) async fn fetch(
        &self,
        recv_id: QueueId,
        hash: SecretHash,
        after: u64,
        max: usize,
    ) -> Result<Fetched, StoreError> {
        let reader = self.reader().await?;
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        // One round trip: the queue row (to check the capability) and its blocks.
        let rows =
            reader.client.query(&reader.fetch, &[&recv_id.0.as_slice(), &to_i64(after), &limit]).await?;
        let Some(first) = rows.first() else { return Err(StoreError::NotAuthorized) };
        let stored: &[u8] = first.get(0);
        if SecretHash(fixed(stored)?) != hash {
            return Err(StoreError::NotAuthorized);
        }
        let touched_at = to_u64(first.get(1));
        let latest = Some(to_u64(first.get::<_, i64>(4)).saturating_sub(1));
        let items = rows
            .iter()
            .filter_map(|r| {
                Some(Delivered {
                    seq: to_u64(r.get::<_, Option<i64>>(2)?),
                    block: r.get::<_, Option<Vec<u8>>>(3)?,
                })
            })
            .collect();
        Ok(Fetched { items, touched_at, latest })
    }

    /// Blocks after the given seqs of these queues, up to `per_queue` each, in seq order: one
    /// query for every queue another node said has news.
    pub(crate) async fn tail(
        &self,
        wanted: &[(QueueId, u64)],
        per_queue: usize,
    ) -> Result<Vec<Committed>, StoreError> {
        let reader = self.reader().await?;
        let ids: Vec<&[u8]> = wanted.iter().map(|(id, _)| id.0.as_slice()).collect();
        let after: Vec<i64> = wanted.iter().map(|(_, seq)| to_i64(*seq)).collect();
        let limit = i64::try_from(per_queue).unwrap_or(i64::MAX);
        let rows = reader.client.query(&reader.tail, &[&ids, &after, &limit]).await?;
        let mut blocks = rows
            .into_iter()
            .map(|r| {
                Ok(Committed {
                    recv_id: QueueId(fixed(r.get::<_, &[u8]>(0))?),
                    seq: to_u64(r.get(1)),
                    block: bytes::Bytes::from(r.get::<_, Vec<u8>>(2)),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        blocks.sort_unstable_by_key(|c| (c.recv_id, c.seq));
        Ok(blocks)
    }

    /// The last seq each queue assigned (queues that no longer exist are left out).
    pub(crate) async fn latest_seqs(&self, ids: &[QueueId]) -> Result<Vec<(QueueId, u64)>, StoreError> {
        let reader = self.reader().await?;
        let raw: Vec<&[u8]> = ids.iter().map(|id| id.0.as_slice()).collect();
        let rows = reader
            .client
            .query("SELECT recv_id, next_seq - 1 FROM queues WHERE recv_id = ANY($1)", &[&raw])
            .await?;
        rows.iter().map(|r| Ok((QueueId(fixed(r.get::<_, &[u8]>(0))?), to_u64(r.get(1))))).collect()
    }

    pub(crate) async fn stats(&self) -> Result<StoreStats, StoreError> {
        let reader = self.reader().await?;
        let row = reader
            .client
            .query_one(
                "SELECT (SELECT count(*) FROM queues), (SELECT count(*) FROM blocks),
                        (SELECT coalesce(sum(octet_length(data)), 0)::int8 FROM blocks)",
                &[],
            )
            .await?;
        Ok(StoreStats { queues: to_u64(row.get(0)), blocks: to_u64(row.get(1)), bytes: to_u64(row.get(2)) })
    }

    pub(crate) async fn stored_block_size(&self) -> Result<Option<usize>, StoreError> {
        let reader = self.reader().await?;
        let row = reader.client.query_opt("SELECT octet_length(data) FROM blocks LIMIT 1", &[]).await?;
        Ok(row.map(|r| usize::try_from(r.get::<_, i32>(0)).unwrap_or(0)))
    }

    /// Wake-ups for blocks committed through any node sharing this database.
    pub(crate) fn wakes(&self) -> mpsc::Receiver<Wake> {
        listen::spawn(self.inner.target.clone(), Arc::clone(&self.inner.own_pid))
    }

    pub(crate) async fn close(&self) {
        self.inner.writer.close().await;
        if let Some(task) = self.inner.task.lock().await.take() {
            let _ = task.await;
        }
        for reader in &self.inner.readers {
            reader.lock().await.take();
        }
    }
}

impl Target {
    async fn connect(&self) -> Result<Client, StoreError> {
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!(error = %err, "PostgreSQL connection ended");
            }
        });
        if let Some(schema) = &self.schema {
            client.batch_execute(&format!("SET search_path TO {}", quote_ident(schema))).await?;
        }
        Ok(client)
    }
}

/// The notification channel of the schema this connection works in. Channels are
/// database-wide, not per schema, so relays working in different schemas of one database
/// (`schema`, or `options=-csearch_path=…` in the connection string) must get different ones
/// or they wake each other's followers. `public` keeps the plain name; any other schema gets
/// a hashed suffix (a channel name is an identifier of at most 63 bytes). Relay nodes that
/// share a non-public schema must run the same version to hear each other.
async fn wake_channel(client: &Client) -> Result<String, StoreError> {
    let schema: Option<String> = client.query_one("SELECT current_schema()::text", &[]).await?.get(0);
    Ok(match schema.as_deref() {
        None | Some("public") => listen::CHANNEL.to_owned(),
        Some(schema) => {
            let digest = sha2::Sha256::digest(schema.as_bytes());
            let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("{}_{tag}", listen::CHANNEL)
        }
    })
}

/// Quotes an SQL identifier (a schema name).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.query_one("SELECT pg_advisory_xact_lock($1)::text", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let current: i32 =
        tx.query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[]).await?.get(0);
    let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if current > latest {
        return Err(StoreError::Backend {
            engine: "PostgreSQL",
            message: format!(
                "schema version {current} is newer than this relay knows ({latest}); upgrade the relay"
            ),
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO schema_version VALUES ($1, $2)", &[version, &to_i64(unix_now())]).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A read connection and its prepared statements.
struct Reader {
    client: Client,
    fetch: Statement,
    tail: Statement,
}

impl Reader {
    async fn connect(target: &Target) -> Result<Self, StoreError> {
        let client = target.connect().await?;
        let fetch = client
            .prepare(
                "SELECT q.recv_hash, q.touched_at, b.seq, b.data, q.next_seq FROM queues q
                 LEFT JOIN LATERAL (SELECT seq, data FROM blocks WHERE queue = q.id AND seq > $2
                                    ORDER BY seq LIMIT $3) b ON true
                 WHERE q.recv_id = $1 ORDER BY b.seq",
            )
            .await?;
        let tail = client
            .prepare(
                "SELECT q.recv_id, b.seq, b.data FROM unnest($1::bytea[], $2::int8[]) AS w(recv_id, after)
                 JOIN queues q ON q.recv_id = w.recv_id
                 CROSS JOIN LATERAL (SELECT seq, data FROM blocks WHERE queue = q.id AND seq > w.after
                                     ORDER BY seq LIMIT $3) b",
            )
            .await?;
        Ok(Self { client, fetch, tail })
    }
}

const AUTHORIZE: &str = "SELECT id, recv_hash, touched_at FROM queues WHERE recv_id = $1";

/// The queue's key and last activity if `hash` opens it for receiving.
async fn authorize(
    client: &impl GenericClient,
    stmt: &Statement,
    recv_id: QueueId,
    hash: SecretHash,
) -> Result<(i64, u64), StoreError> {
    let row = client.query_opt(stmt, &[&recv_id.0.as_slice()]).await?;
    let Some(row) = row else { return Err(StoreError::NotAuthorized) };
    let stored: &[u8] = row.get(1);
    if SecretHash(fixed(stored)?) != hash {
        return Err(StoreError::NotAuthorized);
    }
    Ok((row.get(0), to_u64(row.get(2))))
}

/// The writer's connection and its prepared statements.
struct WriterConn {
    client: Client,
    s: Statements,
}

struct Statements {
    create: Statement,
    load: Statement,
    insert: Statement,
    update: Statement,
    authorize: Statement,
    touch: Statement,
    ack_load: Statement,
    ack_delete_many: Statement,
    ack_update_many: Statement,
}

impl WriterConn {
    async fn new(client: Client) -> Result<Self, StoreError> {
        let s = Statements {
            create: client
                .prepare(
                    "INSERT INTO queues (recv_id, send_id, recv_hash, send_hash, touched_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .await?,
            load: client
                .prepare(
                    "SELECT id, send_id, recv_id, send_hash, next_seq, stored, touched_at FROM queues
                     WHERE send_id = ANY($1) ORDER BY id FOR UPDATE",
                )
                .await?,
            insert: client
                .prepare(
                    "INSERT INTO blocks (queue, seq, stored_at, data)
                     SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::bytea[])",
                )
                .await?,
            update: client
                .prepare(
                    "UPDATE queues AS q SET next_seq = u.next_seq, stored = u.stored,
                            touched_at = GREATEST(q.touched_at, u.touched_at)
                     FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::int8[]) AS u(id, next_seq, stored, touched_at)
                     WHERE q.id = u.id",
                )
                .await?,
            authorize: client.prepare(&format!("{AUTHORIZE} FOR UPDATE")).await?,
            touch: client
                .prepare("UPDATE queues SET touched_at = GREATEST(touched_at, $1) WHERE recv_id = $2")
                .await?,
            ack_load: client
                .prepare("SELECT id, recv_id, recv_hash FROM queues WHERE recv_id = ANY($1) ORDER BY id FOR UPDATE")
                .await?,
            ack_delete_many: client
                .prepare(
                    "DELETE FROM blocks b USING UNNEST($1::int8[], $2::int8[]) AS a(queue, seq)
                     WHERE b.queue = a.queue AND b.seq = a.seq RETURNING b.queue, b.seq",
                )
                .await?,
            ack_update_many: client
                .prepare(
                    "UPDATE queues AS q SET stored = q.stored - u.n, touched_at = GREATEST(q.touched_at, u.now)
                     FROM UNNEST($1::int8[], $2::int8[], $3::int8[]) AS u(id, n, now) WHERE q.id = u.id",
                )
                .await?,
        };
        Ok(Self { client, s })
    }
}

/// The writer task: take everything pending, apply it in one transaction, commit, answer.
/// A lost connection fails the batch in hand, then the next batch reconnects.
/// What the writer tells after each commit: this node's followers (the blocks), the other
/// nodes (which queues), the vacuum task (how many rows went).
struct AfterCommit {
    hub: Arc<Hub>,
    announcer: Announcer,
    deleted: Arc<std::sync::atomic::AtomicU64>,
}

impl AfterCommit {
    fn committed(&self, written: &[Committed], jobs: &[Job], results: &[Result<WriteDone, StoreError>]) {
        self.hub.committed(written);
        self.announcer.announce(news(written, jobs));
        let gone: u64 = results
            .iter()
            .map(|r| match r {
                Ok(WriteDone::Acked(n)) => *n,
                Ok(WriteDone::Purged(p)) => p.blocks,
                _ => 0,
            })
            .sum();
        self.deleted.fetch_add(gone, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn writer_task(
    mut conn: WriterConn,
    target: Target,
    mut rx: mpsc::Receiver<Command>,
    after: AfterCommit,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = Batch::drain(first, &mut rx);
        if !batch.jobs.is_empty() {
            if conn.client.is_closed() {
                match reconnect(&target).await {
                    Ok(fresh) => conn = fresh,
                    Err(err) => tracing::warn!(error = %err, "PostgreSQL writer cannot reconnect"),
                }
            }
            let mut written = Vec::new();
            let results = apply(&mut conn, &mut batch.jobs, &mut written).await;
            if let Ok(results) = &results {
                after.committed(&written, &batch.jobs, results);
            }
            Batch::answer(batch.jobs, results);
        }
        if let Some(done) = batch.close {
            let _ = done.send(());
            return;
        }
    }
}

async fn reconnect(target: &Target) -> Result<WriterConn, StoreError> {
    WriterConn::new(target.connect().await?).await
}

/// The receive queues a committed batch changed for followers: those that got blocks, and
/// those deleted.
fn news(written: &[Committed], jobs: &[Job]) -> Vec<QueueId> {
    let mut ids: Vec<QueueId> = written.iter().map(|c| c.recv_id).collect();
    ids.extend(jobs.iter().filter_map(|j| match j.op {
        WriteOp::Delete { recv_id, .. } => Some(recv_id),
        _ => None,
    }));
    ids.sort_unstable();
    ids.dedup();
    ids
}

type Results = Result<Vec<Result<WriteDone, StoreError>>, StoreError>;

/// Applies a batch in one transaction; see the SQLite engine for the error policy. A failed
/// batch leaves its transaction before the next one begins.
async fn apply(conn: &mut WriterConn, jobs: &mut [Job], written: &mut Vec<Committed>) -> Results {
    let result = apply_in_tx(conn, jobs, written).await;
    if result.is_err() && !conn.client.is_closed() {
        // A no-op warning when the failure came with COMMIT (which then rolled back).
        let _ = conn.client.batch_execute("ROLLBACK").await;
    }
    result
}

/// Sends one statement, or nothing: lets a pipeline of fixed shape leave a step out.
async fn maybe<F, T>(step: Option<F>) -> Result<(), tokio_postgres::Error>
where
    F: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
{
    match step {
        Some(step) => step.await.map(drop),
        None => Ok(()),
    }
}

/// The jobs of one batch are concurrent with each other (none was answered before another
/// was submitted), so any order is one they could have happened in. This one costs the
/// fewest round trips: every acknowledgement first (three statements for all of them; they
/// also free quota), then every send (one load of all their queue rows, one insert, one
/// update), then the rest in arrival order. Statements that do not wait for the answer of
/// the one before go out together (pipelined, executed in order): `BEGIN` with the first
/// statement, the acknowledgements' counter update with the sends' load, `COMMIT` with the
/// last writes. A batch of sends and acknowledgements is four round trips, one of them the
/// commit; blocks are acknowledged to their senders only after it.
async fn apply_in_tx(conn: &mut WriterConn, jobs: &mut [Job], written: &mut Vec<Committed>) -> Results {
    let (c, s) = (&conn.client, &conn.s);
    let mut results: Vec<Option<Result<WriteDone, StoreError>>> = jobs.iter().map(|_| None).collect();
    let acks: Vec<usize> = (0..jobs.len()).filter(|&i| matches!(jobs[i].op, WriteOp::Ack { .. })).collect();
    let puts: Vec<usize> = (0..jobs.len()).filter(|&i| matches!(jobs[i].op, WriteOp::Put { .. })).collect();
    let others: Vec<usize> = (0..jobs.len())
        .filter(|&i| !matches!(jobs[i].op, WriteOp::Ack { .. } | WriteOp::Put { .. }))
        .collect();
    let mut begun = false;
    let mut ack_update = None;
    if !acks.is_empty() {
        let ops: Vec<&WriteOp> = acks.iter().map(|&i| &jobs[i].op).collect();
        let (done, update) = ack_many(c, s, &ops).await?;
        begun = true;
        for (&i, result) in acks.iter().zip(done) {
            results[i] = Some(result);
        }
        ack_update = update;
    }
    let mut plan = PutPlan::default();
    if !puts.is_empty() {
        let mut ids: Vec<QueueId> = puts
            .iter()
            .flat_map(|&i| match &jobs[i].op {
                WriteOp::Put { items, .. } => items.iter().map(|item| item.send_id).collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let raw: Vec<&[u8]> = ids.iter().map(|id| id.0.as_slice()).collect();
        let begin = maybe((!begun).then(|| c.batch_execute("BEGIN")));
        let counters = maybe(ack_update.as_ref().map(|u: &AckUpdate| u.execute(c, s)));
        let (_, _, rows) =
            futures_util::future::try_join3(begin, counters, c.query(&s.load, &[&raw])).await?;
        begun = true;
        ack_update = None;
        load_rows(&mut plan, &rows)?;
        for id in ids {
            plan.rows.entry(id).or_insert(None);
        }
        for &i in &puts {
            if let WriteOp::Put { items, quota, now } = &mut jobs[i].op {
                let items = std::mem::take(items);
                results[i] = Some(Ok(WriteDone::Put(plan.plan(items, *quota, *now))));
            }
        }
    }
    let (rows, blocks) = plan.take_dirty();
    let insert = BlockColumns::new(&blocks);
    let update = RowColumns::new(&rows);
    let begin = maybe((!begun).then(|| c.batch_execute("BEGIN")));
    let counters = maybe(ack_update.as_ref().map(|u| u.execute(c, s)));
    let inserting = maybe(insert.as_ref().map(|b| b.execute(c, s)));
    let updating = maybe(update.as_ref().map(|r| r.execute(c, s)));
    if others.is_empty() {
        let commit = c.batch_execute("COMMIT");
        futures_util::future::try_join5(begin, counters, inserting, updating, commit).await?;
    } else {
        futures_util::future::try_join4(begin, counters, inserting, updating).await?;
        for &i in &others {
            match apply_other(c, s, &mut jobs[i].op).await {
                Err(err) if !err.is_per_request() => return Err(err),
                result => results[i] = Some(result),
            }
        }
        c.batch_execute("COMMIT").await?;
    }
    plan.inserted(blocks);
    *written = plan.written;
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(StoreError::Backend { engine: "PostgreSQL", message: "a write was left out".into() })
            })
        })
        .collect())
}

/// Queue rows locked by the sends' load, into the plan.
fn load_rows(plan: &mut PutPlan, rows: &[tokio_postgres::Row]) -> Result<(), StoreError> {
    for row in rows {
        let send_id = QueueId(fixed(row.get::<_, &[u8]>(1))?);
        let loaded = QueueRow {
            key: row.get(0),
            recv_id: QueueId(fixed(row.get::<_, &[u8]>(2))?),
            send_hash: SecretHash(fixed(row.get::<_, &[u8]>(3))?),
            next_seq: to_u64(row.get(4)),
            stored: to_u64(row.get(5)),
            touched_at: to_u64(row.get(6)),
            dirty: false,
        };
        plan.rows.insert(send_id, Some(loaded));
    }
    Ok(())
}

/// The planned blocks as the insert's arrays.
struct BlockColumns<'a> {
    queues: Vec<i64>,
    seqs: Vec<i64>,
    times: Vec<i64>,
    data: Vec<&'a [u8]>,
}

impl<'a> BlockColumns<'a> {
    fn new(blocks: &'a [super::batch::NewBlock]) -> Option<Self> {
        (!blocks.is_empty()).then(|| Self {
            queues: blocks.iter().map(|b| b.queue_key).collect(),
            seqs: blocks.iter().map(|b| to_i64(b.seq)).collect(),
            times: blocks.iter().map(|b| to_i64(b.stored_at)).collect(),
            data: blocks.iter().map(|b| b.block.as_ref()).collect(),
        })
    }

    async fn execute(&self, c: &Client, s: &Statements) -> Result<u64, tokio_postgres::Error> {
        c.execute(&s.insert, &[&self.queues, &self.seqs, &self.times, &self.data]).await
    }
}

/// The changed queue rows as the update's arrays.
struct RowColumns {
    keys: Vec<i64>,
    next: Vec<i64>,
    stored: Vec<i64>,
    touched: Vec<i64>,
}

impl RowColumns {
    fn new(rows: &[QueueRow]) -> Option<Self> {
        (!rows.is_empty()).then(|| Self {
            keys: rows.iter().map(|r| r.key).collect(),
            next: rows.iter().map(|r| to_i64(r.next_seq)).collect(),
            stored: rows.iter().map(|r| to_i64(r.stored)).collect(),
            touched: rows.iter().map(|r| to_i64(r.touched_at)).collect(),
        })
    }

    async fn execute(&self, c: &Client, s: &Statements) -> Result<u64, tokio_postgres::Error> {
        c.execute(&s.update, &[&self.keys, &self.next, &self.stored, &self.touched]).await
    }
}

/// The acknowledgements' counter update: blocks deleted per queue, and the time.
struct AckUpdate {
    keys: Vec<i64>,
    counts: Vec<i64>,
    nows: Vec<i64>,
}

impl AckUpdate {
    async fn execute(&self, c: &Client, s: &Statements) -> Result<u64, tokio_postgres::Error> {
        c.execute(&s.ack_update_many, &[&self.keys, &self.counts, &self.nows]).await
    }
}

async fn apply_other(tx: &Client, s: &Statements, op: &mut WriteOp) -> Result<WriteDone, StoreError> {
    match op {
        WriteOp::Create { queue, now } => create(tx, s, queue, *now).await,
        WriteOp::Touch { recv_id, now } => {
            tx.execute(&s.touch, &[&to_i64(*now), &recv_id.0.as_slice()]).await?;
            Ok(WriteDone::Touched)
        }
        WriteOp::Delete { recv_id, hash } => delete(tx, s, *recv_id, *hash).await,
        WriteOp::Purge { cutoff } => purge(tx, *cutoff).await,
        WriteOp::Setting { name, value } => {
            let name: &str = name;
            tx.execute(
                "INSERT INTO relay_settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&name, &value.as_str()],
            )
            .await?;
            let held = tx.query_one("SELECT value FROM relay_settings WHERE name = $1", &[&name]).await?;
            Ok(WriteDone::Setting(held.get(0)))
        }
        WriteOp::Put { .. } | WriteOp::Ack { .. } => {
            Err(StoreError::Backend { engine: "PostgreSQL", message: "misrouted write".into() })
        }
    }
}

async fn create(tx: &Client, s: &Statements, q: &NewQueue, now: u64) -> Result<WriteDone, StoreError> {
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
        &q.recv_id.0.as_slice(),
        &q.send_id.0.as_slice(),
        &q.recv_hash.0.as_slice(),
        &q.send_hash.0.as_slice(),
        &to_i64(now),
    ];
    let n = tx.execute(&s.create, &params).await?;
    if n == 0 { Err(StoreError::IdTaken) } else { Ok(WriteDone::Created) }
}

/// Acknowledgements of several jobs: lock and check every queue named (the statement goes
/// with `BEGIN`), delete every authorised (queue, seq) pair at once. One result per job, and
/// the counter update to send with the next statements.
async fn ack_many(
    c: &Client,
    s: &Statements,
    ops: &[&WriteOp],
) -> Result<(Vec<Result<WriteDone, StoreError>>, Option<AckUpdate>), StoreError> {
    let mut ids: Vec<&[u8]> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Ack { recv_id, .. } => Some(recv_id.0.as_slice()),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let (_, loaded) =
        futures_util::future::try_join(c.batch_execute("BEGIN"), c.query(&s.ack_load, &[&ids])).await?;
    let mut rows: HashMap<QueueId, (i64, SecretHash)> = HashMap::new();
    for row in loaded {
        let recv_id = QueueId(fixed(row.get::<_, &[u8]>(1))?);
        rows.insert(recv_id, (row.get(0), SecretHash(fixed(row.get::<_, &[u8]>(2))?)));
    }
    let (mut queues, mut seqs, mut keys) = (Vec::new(), Vec::new(), Vec::with_capacity(ops.len()));
    for op in ops {
        let WriteOp::Ack { recv_id, hash, seqs: wanted, .. } = op else { continue };
        let key = rows.get(recv_id).filter(|(_, stored)| stored == hash).map(|(key, _)| *key);
        if let Some(key) = key {
            queues.extend(std::iter::repeat_n(key, wanted.len()));
            seqs.extend(wanted.iter().map(|s| to_i64(*s)));
        }
        keys.push(key);
    }
    let mut deleted: HashMap<i64, i64> = HashMap::new();
    let mut gone: std::collections::HashSet<(i64, i64)> = std::collections::HashSet::new();
    if !queues.is_empty() {
        for row in c.query(&s.ack_delete_many, &[&queues, &seqs]).await? {
            *deleted.entry(row.get(0)).or_default() += 1;
            gone.insert((row.get(0), row.get(1)));
        }
    }
    let now = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Ack { now, .. } => Some(*now),
            _ => None,
        })
        .max();
    let mut authorised: Vec<i64> = keys.iter().flatten().copied().collect();
    authorised.sort_unstable();
    authorised.dedup();
    let update = (!authorised.is_empty()).then(|| AckUpdate {
        counts: authorised.iter().map(|k| deleted.get(k).copied().unwrap_or(0)).collect(),
        nows: vec![to_i64(now.unwrap_or(0)); authorised.len()],
        keys: authorised,
    });
    // Each job is told how many of its seqs were deleted (a seq listed twice counts once).
    let results = ops
        .iter()
        .zip(keys)
        .map(|(op, key)| {
            let key = key.ok_or(StoreError::NotAuthorized)?;
            let WriteOp::Ack { seqs: wanted, .. } = op else { return Ok(WriteDone::Acked(0)) };
            let mine = wanted.iter().filter(|seq| gone.remove(&(key, to_i64(**seq)))).count();
            Ok(WriteDone::Acked(mine as u64))
        })
        .collect();
    Ok((results, update))
}

async fn delete(
    tx: &Client,
    s: &Statements,
    recv_id: QueueId,
    hash: SecretHash,
) -> Result<WriteDone, StoreError> {
    let (key, _) = authorize(tx, &s.authorize, recv_id, hash).await?;
    tx.execute("DELETE FROM blocks WHERE queue = $1", &[&key]).await?;
    tx.execute("DELETE FROM queues WHERE id = $1", &[&key]).await?;
    Ok(WriteDone::Deleted)
}

async fn purge(tx: &Client, cutoff: u64) -> Result<WriteDone, StoreError> {
    let cutoff = to_i64(cutoff);
    let expired: i64 = tx
        .query_one(
            "WITH gone AS (DELETE FROM blocks WHERE stored_at < $1 RETURNING queue),
                  counts AS (SELECT queue, count(*) AS n FROM gone GROUP BY queue),
                  fixed AS (UPDATE queues AS q SET stored = q.stored - c.n FROM counts c WHERE q.id = c.queue)
             SELECT coalesce(sum(n), 0)::int8 FROM counts",
            &[&cutoff],
        )
        .await?
        .get(0);
    let idle_blocks = tx
        .execute(
            "DELETE FROM blocks WHERE queue IN (SELECT id FROM queues WHERE touched_at < $1)",
            &[&cutoff],
        )
        .await?;
    let queues = tx.execute("DELETE FROM queues WHERE touched_at < $1", &[&cutoff]).await?;
    Ok(WriteDone::Purged(Purged { blocks: to_u64(expired) + idle_blocks, queues }))
}
