//! The baseline: NATS JetStream doing what the relay does. File storage, work-queue
//! retention (a message is removed once acknowledged), durable publish (each publish waits
//! for the server's ack), pull consumers that fetch, ack, and flush the acks out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{Config as StreamConfig, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::Timing;
use crate::e2e::{Pace, Sample, paced};
use crate::relay_load::{BACKLOG_CAP, FETCH_MAX, Progress, QUEUES, SEND_BATCH, count_window, payload};
use crate::report::Report;

const DEFAULT_ADDRESS: &str = "127.0.0.1:4222";
/// The same connection counts as the relay run, so both see the same concurrency.
const PRODUCERS: usize = 2;
const CONSUMERS: usize = 2;
const LOAD_STREAM: &str = "BCBENCH_LOAD";
const E2E_STREAM: &str = "BCBENCH_E2E";

fn address() -> String {
    std::env::var("BACKCHANNEL_BENCH_NATS").unwrap_or_else(|_| DEFAULT_ADDRESS.to_owned())
}

/// Connects, or returns `None` after a notice when no NATS server answers.
pub async fn connect(report: &mut Report, what: &str) -> Option<async_nats::Client> {
    let addr = address();
    let options = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(3));
    match options.connect(&addr).await {
        Ok(client) => Some(client),
        Err(e) => {
            report.note(format!("NATS at {addr} unreachable ({e}); {what} skipped"));
            None
        }
    }
}

/// A fresh stream for this run (any leftover of an earlier run is deleted first).
async fn fresh_stream(js: &Context, name: &str, subjects: &str) -> Result<jetstream::stream::Stream> {
    let _ = js.delete_stream(name).await;
    let config = StreamConfig {
        name: name.to_owned(),
        subjects: vec![subjects.to_owned()],
        storage: StorageType::File,
        retention: RetentionPolicy::WorkQueue,
        ..StreamConfig::default()
    };
    js.create_stream(config).await.map_err(|e| anyhow!("cannot create JetStream stream {name}: {e}"))
}

pub async fn run_throughput(report: &mut Report, timing: Timing) -> Result<()> {
    let Some(admin) = connect(report, "jetstream_msgs_per_s and its ratio").await else { return Ok(()) };
    let js = jetstream::new(admin);
    let stream = fresh_stream(&js, LOAD_STREAM, "bcbench.>").await?;
    let result = load(&stream, timing).await;
    js.delete_stream(LOAD_STREAM).await.map_err(|e| anyhow!("cannot delete stream {LOAD_STREAM}: {e}"))?;
    report.set("jetstream_msgs_per_s", result?);
    report.note(format!(
        "JetStream {}: {QUEUES} subjects, {PRODUCERS} publisher connections each publishing {SEND_BATCH} then \
         awaiting their {SEND_BATCH} acks, {CONSUMERS} pull consumers fetching up to {FETCH_MAX}, acking each \
         message and flushing, file storage, work-queue retention, same backlog cap and window",
        address()
    ));
    Ok(())
}

async fn load(stream: &jetstream::stream::Stream, timing: Timing) -> Result<f64> {
    let progress = Arc::new(Progress::default());
    let mut tasks = JoinSet::new();
    for c in 0..CONSUMERS {
        let config = pull::Config {
            durable_name: Some(format!("bench{c}")),
            filter_subject: format!("bcbench.{c}.*"),
            ack_policy: AckPolicy::Explicit,
            max_ack_pending: 100_000,
            ..pull::Config::default()
        };
        stream.create_consumer(config).await.map_err(|e| anyhow!("cannot create consumer: {e}"))?;
        tasks.spawn(consume(format!("bench{c}"), progress.clone()));
    }
    for p in 0..PRODUCERS {
        tasks.spawn(produce(p * SEND_BATCH / PRODUCERS, progress.clone()));
    }
    count_window(&mut tasks, &progress, timing).await
}

/// Subject of queue `q`: consumer `q % CONSUMERS` owns it, as with the relay's consumers.
fn subject(q: usize) -> String {
    format!("bcbench.{}.{q}", q % CONSUMERS)
}

async fn produce(mut next: usize, progress: Arc<Progress>) -> Result<()> {
    let js = jetstream::new(async_nats::connect(address()).await?);
    let block = Bytes::from(payload(next as u64 + 1));
    let subjects: Vec<String> = (0..QUEUES).map(subject).collect();
    while !progress.stopping() {
        if progress.backlog() >= BACKLOG_CAP {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let mut acks = Vec::with_capacity(SEND_BATCH);
        for i in 0..SEND_BATCH {
            acks.push(js.publish(subjects[(next + i) % QUEUES].clone(), block.clone()).await?);
        }
        next = (next + SEND_BATCH) % QUEUES;
        // The publishes are already on the wire; their acks come back in order.
        for ack in acks {
            ack.await?;
        }
        progress.stored.fetch_add(SEND_BATCH as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// One connection per consumer, as each relay consumer has its own connection.
async fn consume(name: String, progress: Arc<Progress>) -> Result<()> {
    let client = async_nats::connect(address()).await?;
    let stream = jetstream::new(client.clone()).get_stream(LOAD_STREAM).await.map_err(|e| anyhow!(e))?;
    let consumer: PullConsumer = stream.get_consumer(&name).await.map_err(|e| anyhow!(e))?;
    while !progress.stopping() {
        let mut batch = consumer.fetch().max_messages(FETCH_MAX).messages().await?;
        let mut got = 0u64;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| anyhow!(e))?;
            ensure!(
                message.payload.len() == backchannel_wire::DEFAULT_BLOCK_SIZE,
                "a message has the wrong size"
            );
            message.ack().await.map_err(|e| anyhow!("ack failed: {e}"))?;
            got += 1;
        }
        client.flush().await?;
        progress.acked.fetch_add(got, Ordering::Relaxed);
        if got == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok(())
}

/// Publish → receipt latency at the paced rate: one publisher waiting for each publish ack,
/// one pull consumer streaming messages and acking them.
pub async fn run_latency(report: &mut Report, pace: &Pace) -> Result<()> {
    let Some(client) = connect(report, "jetstream_e2e latency").await else { return Ok(()) };
    let js = jetstream::new(client);
    let stream = fresh_stream(&js, E2E_STREAM, "bcbench-e2e").await?;
    let result = latency(&js, &stream, pace).await;
    js.delete_stream(E2E_STREAM).await.map_err(|e| anyhow!("cannot delete stream {E2E_STREAM}: {e}"))?;
    let measured = result?;
    report.set("jetstream_e2e_p50_ms", measured.p50_ms);
    report.set("jetstream_e2e_p99_ms", measured.p99_ms);
    report.set("jetstream_e2e_offered_per_s", measured.offered.per_s);
    if measured.missing > 0 {
        report.note(format!("JetStream latency: {} messages did not arrive in time", measured.missing));
    }
    Ok(())
}

async fn latency(
    js: &Context,
    stream: &jetstream::stream::Stream,
    pace: &Pace,
) -> Result<crate::e2e::Measured> {
    let config = pull::Config { durable_name: Some("e2e".into()), ..pull::Config::default() };
    let consumer =
        stream.create_consumer(config).await.map_err(|e| anyhow!("cannot create consumer: {e}"))?;
    let origin = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel();
    let receiver = tokio::spawn(receive(consumer, origin, tx));
    let block = payload(7);
    let sent = paced(pace, origin, async |i, t| {
        let mut body = block.clone();
        body[..16].copy_from_slice(&[i.to_be_bytes(), t.to_be_bytes()].concat());
        js.publish("bcbench-e2e", body.into()).await?.await?;
        Ok(())
    })
    .await;
    let measured = crate::e2e::collect(pace, sent?, rx).await;
    receiver.abort();
    Ok(measured)
}

async fn receive(consumer: PullConsumer, origin: Instant, tx: mpsc::UnboundedSender<Sample>) -> Result<()> {
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let now = origin.elapsed().as_nanos() as u64;
        let head = message.payload.get(..16).context("short message")?;
        let (i, t) = head.split_at(8);
        let (i, t) = (u64::from_be_bytes(i.try_into()?), u64::from_be_bytes(t.try_into()?));
        message.ack().await.map_err(|e| anyhow!("ack failed: {e}"))?;
        let _ = tx.send(Sample { index: i, latency_ns: now.saturating_sub(t) });
    }
    Ok(())
}
