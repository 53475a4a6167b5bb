//! Group commit: every write from every connection goes to one writer, which drains all that
//! is pending (up to a bound), applies it in one transaction and commits once. One fsync then
//! pays for hundreds of blocks. Also the engine-independent part of a send: deciding, per
//! item, whether it is stored (and under which seq), refused, or over quota.

use std::collections::HashMap;

use backchannel_wire::{QueueId, SecretHash};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::{NewQueue, Purged, PutItem, PutResult};
use crate::StoreError;
use crate::notify::Committed;

/// Most blocks one transaction takes on; bounds commit latency and memory.
pub(crate) const MAX_COMMIT_WEIGHT: usize = 4096;
/// Jobs waiting for the writer; senders wait when it is full (back-pressure).
pub(crate) const QUEUE_DEPTH: usize = 8192;

/// A write, as the writer applies it. Time comes in with the job so tests control expiry.
#[derive(Debug)]
pub(crate) enum WriteOp {
    Create {
        queue: NewQueue,
        now: u64,
    },
    Put {
        items: Vec<PutItem>,
        quota: u32,
        now: u64,
    },
    Ack {
        recv_id: QueueId,
        hash: SecretHash,
        seqs: Vec<u64>,
        now: u64,
    },
    Touch {
        recv_id: QueueId,
        now: u64,
    },
    Delete {
        recv_id: QueueId,
        hash: SecretHash,
    },
    Purge {
        cutoff: u64,
    },
    /// Records a deployment setting unless one is recorded; answers with the recorded value.
    Setting {
        name: &'static str,
        value: String,
    },
}

impl WriteOp {
    /// How much of a transaction's budget this job uses.
    fn weight(&self) -> usize {
        match self {
            Self::Put { items, .. } => items.len().max(1),
            Self::Ack { seqs, .. } => 1 + seqs.len() / 64,
            _ => 1,
        }
    }
}

/// What a write produced.
#[derive(Debug)]
pub(crate) enum WriteDone {
    Created,
    Put(Vec<PutResult>),
    Acked(u64),
    Touched,
    Deleted,
    Purged(Purged),
    Setting(String),
}

/// A write and the caller waiting for its answer.
pub(crate) struct Job {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<WriteDone, StoreError>>,
}

/// A message to the writer: work, or the order to finish and stop.
pub(crate) enum Command {
    Write(Job),
    Close(oneshot::Sender<()>),
}

/// The writer's mailbox, shared by every caller.
#[derive(Clone)]
pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Command>,
}

impl WriterHandle {
    pub fn new() -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        (Self { tx }, rx)
    }

    /// Queues `op` and waits until it is committed (or failed).
    pub async fn submit(&self, op: WriteOp) -> Result<WriteDone, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Command::Write(Job { op, reply })).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Asks the writer to finish what it holds and stop; waits until it has.
    pub async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.tx.send(Command::Close(done)).await.is_ok() {
            let _ = finished.await;
        }
    }
}

/// A drained batch: the jobs to apply together, and whether the writer was told to stop.
#[derive(Default)]
pub(crate) struct Batch {
    pub jobs: Vec<Job>,
    pub close: Option<oneshot::Sender<()>>,
}

impl Batch {
    /// Starts a batch with `first`, then takes whatever else is already waiting, up to the
    /// weight bound. Never waits: what arrives during this commit goes into the next one.
    pub fn drain(first: Command, rx: &mut mpsc::Receiver<Command>) -> Self {
        let mut batch = Self::default();
        let mut weight = 0;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Close(done) => {
                    batch.close = Some(done);
                    break;
                }
                Command::Write(job) => {
                    weight += job.op.weight();
                    batch.jobs.push(job);
                }
            }
            if weight < MAX_COMMIT_WEIGHT {
                next = rx.try_recv().ok();
            }
        }
        batch
    }

    /// Answers every job: with its own result after a commit, or with the batch's error.
    pub fn answer(jobs: Vec<Job>, results: Result<Vec<Result<WriteDone, StoreError>>, StoreError>) {
        match results {
            Ok(results) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(err) => {
                for job in jobs {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// A queue's row as the writer sees it during one transaction.
#[derive(Debug, Clone)]
pub(crate) struct QueueRow {
    /// The engine's internal key for the queue.
    pub key: i64,
    pub recv_id: QueueId,
    pub send_hash: SecretHash,
    pub next_seq: u64,
    pub stored: u64,
    /// Latest activity to record when the row is written back.
    pub touched_at: u64,
    /// Changed in memory, not yet written back.
    pub dirty: bool,
}

/// A block to insert.
#[derive(Debug)]
pub(crate) struct NewBlock {
    pub queue_key: i64,
    pub recv_id: QueueId,
    pub seq: u64,
    pub stored_at: u64,
    pub block: Bytes,
}

/// Queue rows loaded during one transaction (`None`: no such queue), and the blocks and row
/// changes not yet written. Engines load rows, call [`PutPlan::plan`], and flush before any
/// other kind of write reads the tables.
#[derive(Default)]
pub(crate) struct PutPlan {
    pub rows: HashMap<QueueId, Option<QueueRow>>,
    pub blocks: Vec<NewBlock>,
    /// Blocks written in this transaction, handed to followers once it commits.
    pub written: Vec<Committed>,
}

impl PutPlan {
    /// Send ids of `items` whose rows are not loaded yet.
    pub fn missing(&self, items: &[PutItem]) -> Vec<QueueId> {
        let mut ids: Vec<QueueId> =
            items.iter().map(|i| i.send_id).filter(|id| !self.rows.contains_key(id)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Decides each item in order: stored with the queue's next seq, refused (no queue or the
    /// secret's hash does not match, compared in constant time), or over quota.
    pub fn plan(&mut self, items: Vec<PutItem>, quota: u32, now: u64) -> Vec<PutResult> {
        items.into_iter().map(|item| self.plan_one(item, quota, now)).collect()
    }

    fn plan_one(&mut self, item: PutItem, quota: u32, now: u64) -> PutResult {
        let Some(Some(row)) = self.rows.get_mut(&item.send_id) else {
            return PutResult::Refused;
        };
        if row.send_hash != item.hash {
            return PutResult::Refused;
        }
        if row.stored >= u64::from(quota) {
            return PutResult::QueueFull;
        }
        let seq = row.next_seq;
        row.next_seq += 1;
        row.stored += 1;
        row.touched_at = row.touched_at.max(now);
        row.dirty = true;
        let block = Bytes::from(item.block);
        self.blocks.push(NewBlock { queue_key: row.key, recv_id: row.recv_id, seq, stored_at: now, block });
        PutResult::Stored { recv_id: row.recv_id, seq }
    }

    /// Records blocks just inserted, for the hand-off after the commit.
    pub fn inserted(&mut self, blocks: Vec<NewBlock>) {
        self.written.extend(blocks.into_iter().map(|b| Committed {
            recv_id: b.recv_id,
            seq: b.seq,
            block: b.block,
        }));
    }

    /// Rows changed since the last flush; the plan forgets all rows so later writes reload.
    pub fn take_dirty(&mut self) -> (Vec<QueueRow>, Vec<NewBlock>) {
        let rows = self.rows.drain().filter_map(|(_, row)| row.filter(|r| r.dirty)).collect();
        (rows, std::mem::take(&mut self.blocks))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use backchannel_wire::QueueSecret;

    fn row(key: i64, secret: &QueueSecret, stored: u64) -> QueueRow {
        QueueRow {
            key,
            recv_id: QueueId([key as u8; 16]),
            send_hash: secret.hash(),
            next_seq: 7,
            stored,
            touched_at: 0,
            dirty: false,
        }
    }

    fn item(send_id: QueueId, secret: &QueueSecret) -> PutItem {
        PutItem { send_id, hash: secret.hash(), block: vec![1; 8] }
    }

    #[test]
    fn plan_assigns_seqs_and_enforces_quota_and_secret() {
        let (good, bad) = (QueueSecret::random(), QueueSecret::random());
        let id = QueueId([1; 16]);
        let mut plan = PutPlan::default();
        plan.rows.insert(id, Some(row(1, &good, 1)));
        plan.rows.insert(QueueId([2; 16]), None);
        let items = vec![
            item(id, &good),
            item(id, &bad),
            item(QueueId([2; 16]), &good),
            item(id, &good),
            item(id, &good),
        ];
        let results = plan.plan(items, 3, 50);
        let recv_id = QueueId([1; 16]);
        assert_eq!(
            results,
            vec![
                PutResult::Stored { recv_id, seq: 7 },
                PutResult::Refused,
                PutResult::Refused,
                PutResult::Stored { recv_id, seq: 8 },
                PutResult::QueueFull,
            ]
        );
        let (rows, blocks) = plan.take_dirty();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].next_seq, rows[0].stored, rows[0].touched_at), (9, 3, 50));
        assert_eq!(blocks.iter().map(|b| b.seq).collect::<Vec<_>>(), vec![7, 8]);
        assert!(plan.rows.is_empty());
    }

    #[test]
    fn missing_lists_each_unloaded_id_once() {
        let s = QueueSecret::random();
        let mut plan = PutPlan::default();
        plan.rows.insert(QueueId([1; 16]), None);
        let items = vec![item(QueueId([3; 16]), &s), item(QueueId([1; 16]), &s), item(QueueId([3; 16]), &s)];
        assert_eq!(plan.missing(&items), vec![QueueId([3; 16])]);
    }

    #[tokio::test]
    async fn drain_takes_everything_waiting_and_stops_at_close() {
        let (handle, mut rx) = WriterHandle::new();
        let mut answers = Vec::new();
        for now in 0..3 {
            let (reply, answer) = oneshot::channel();
            let op = WriteOp::Touch { recv_id: QueueId([0; 16]), now };
            handle.tx.send(Command::Write(Job { op, reply })).await.unwrap();
            answers.push(answer);
        }
        let (done, _finished) = oneshot::channel();
        handle.tx.send(Command::Close(done)).await.unwrap();
        let first = rx.recv().await.unwrap();
        let batch = Batch::drain(first, &mut rx);
        assert_eq!(batch.jobs.len(), 3);
        assert!(batch.close.is_some());
        Batch::answer(batch.jobs, Err(StoreError::DiskFull));
        for answer in answers {
            assert_eq!(answer.await.unwrap().unwrap_err(), StoreError::DiskFull);
        }
    }
}
