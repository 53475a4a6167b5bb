//! A quick local throughput check, not a benchmark suite (that is the `bench` crate's job).
//! Run: `cargo test --release -p backchannel-relay --test throughput -- --ignored --nocapture`.
//! Senders post batches over HTTPS; receivers follow over WebSocket and acknowledge; the
//! clock stops when every block has been acknowledged (so deleted) with durable commits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::time::{Duration, Instant};

use backchannel_relay::RelayConfig;
use backchannel_wire::{SendOutcome, WsClientMessage, WsServerMessage};
use support::{Client, Frame, Queue, random_block, start_relay, ws_connect, ws_next, ws_send};

const B: usize = 4096;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a timing run; see the file's doc"]
async fn send_follow_ack_throughput() {
    let pairs = env_or("PAIRS", 8);
    let per_pair = env_or("BLOCKS", 12_800);
    let batch = env_or("BATCH", 64);
    let scrub = std::env::var_os("SCRUB").is_some();
    let (relay, _dir) =
        start_relay(RelayConfig { scrub_deleted_blocks: scrub, ..RelayConfig::default() }).await;
    let address = relay.address().clone();
    let mut setup = Client::connect(&address).await;
    let mut queues = Vec::new();
    for _ in 0..pairs {
        queues.push(std::sync::Arc::new(setup.create_queue().await));
    }
    let block = random_block(B);

    let started = Instant::now();
    let mut tasks = Vec::new();
    for q in &queues {
        tasks.push(tokio::spawn(receive(address.clone(), q.clone(), per_pair)));
    }
    for q in &queues {
        tasks.push(tokio::spawn(send(address.clone(), q.clone(), per_pair, batch, block.clone())));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let total = pairs * per_pair;
    println!(
        "{total} blocks of {B} bytes sent, pushed and acked in {:.2} s: {:.0} blocks/s ({pairs} sender/receiver pairs, batches of {batch})",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(relay.stats().await.unwrap().blocks, 0);
    relay.shutdown().await;
}

async fn send(
    address: backchannel_wire::RelayAddress,
    q: std::sync::Arc<Queue>,
    n: usize,
    batch: usize,
    block: Vec<u8>,
) {
    let mut c = Client::connect(&address).await;
    let mut left = n;
    while left > 0 {
        let k = left.min(batch);
        let outcomes = c.send((0..k).map(|_| q.item(block.clone())).collect()).await;
        let stored = outcomes.iter().filter(|o| **o == SendOutcome::Stored).count();
        if stored < k {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        left -= stored;
    }
}

async fn receive(address: backchannel_wire::RelayAddress, q: std::sync::Arc<Queue>, n: usize) {
    let mut ws = ws_connect(&address).await;
    ws_send(&mut ws, &WsClientMessage::Subscribe { recv_id: q.recv_id, secret: q.recv_secret.to_hex() })
        .await;
    let mut received = 0;
    let mut pending = Vec::new();
    let mut acked = 0;
    while acked < n {
        match ws_next(&mut ws).await {
            Frame::Block(_, d) => {
                received += 1;
                pending.push(d.seq);
                if pending.len() >= 256 || received == n {
                    let seqs = std::mem::take(&mut pending);
                    ws_send(&mut ws, &WsClientMessage::Ack { recv_id: q.recv_id, seqs }).await;
                }
            }
            Frame::Text(WsServerMessage::Acked { deleted, .. }) => acked += deleted as usize,
            Frame::Text(WsServerMessage::Subscribed { .. }) => {}
            Frame::Text(other) => panic!("{other:?}"),
        }
    }
}

/// The store alone, no network: what group commit gives on this disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a timing run; see the file's doc"]
async fn store_put_fetch_ack_throughput() {
    use backchannel_relay::store::{AnyStore, NewQueue, PutItem, unix_now};
    use backchannel_wire::{QueueId, QueueSecret};
    let pairs = env_or("PAIRS", 8);
    let per_pair = env_or("BLOCKS", 12_800);
    let batch = env_or("BATCH", 64);
    let dir = tempfile::tempdir().unwrap();
    let spec = std::env::var("STORE").unwrap_or_else(|_| "sqlite".into()).parse().unwrap();
    let scrub = std::env::var_os("SCRUB").is_some();
    let options = backchannel_relay::store::StoreOptions { scrub_deleted: scrub, max_bytes: None };
    let store = AnyStore::open(&spec, dir.path(), options).await.unwrap();
    let block = random_block(B);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..pairs {
        let (recv, send) = (QueueSecret::random(), QueueSecret::random());
        let q = NewQueue {
            recv_id: QueueId::random(),
            send_id: QueueId::random(),
            recv_hash: recv.hash(),
            send_hash: send.hash(),
        };
        store.create_queue(q, unix_now()).await.unwrap();
        let (s, b) = (store.clone(), block.clone());
        tasks.push(tokio::spawn(async move {
            let mut left = per_pair;
            while left > 0 {
                let k = left.min(batch);
                let items = (0..k)
                    .map(|_| PutItem { send_id: q.send_id, hash: q.send_hash, block: b.clone() })
                    .collect();
                let stored = s
                    .put(items, 10_000, unix_now())
                    .await
                    .unwrap()
                    .iter()
                    .filter(|r| matches!(r, backchannel_relay::store::PutResult::Stored { .. }))
                    .count();
                left -= stored;
            }
        }));
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let (mut last, mut acked) = (0, 0);
            while acked < per_pair {
                let got = s.fetch(q.recv_id, q.recv_hash, last, 1024).await.unwrap();
                if got.items.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                last = got.items.last().unwrap().seq;
                let seqs = got.items.iter().map(|d| d.seq).collect();
                acked += s.ack(q.recv_id, q.recv_hash, seqs, unix_now()).await.unwrap() as usize;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let total = pairs * per_pair;
    println!(
        "store only: {total} blocks put, fetched and acked in {:.2} s: {:.0} blocks/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    store.close().await;
}
