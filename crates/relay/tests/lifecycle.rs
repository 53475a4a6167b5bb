//! Starting, stopping, restarting and expiring; what the relay leaves on disk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use backchannel_relay::{RelayConfig, RelayError, RelayOptions, start};
use backchannel_wire::{RelayAddress, SendOutcome};
use hyper::{Method, StatusCode};
use support::{Client, random_block, start_in, start_relay};

const B: usize = 4096;

#[tokio::test]
async fn restart_keeps_fingerprint_address_file_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_in(dir.path(), RelayConfig::default()).await;
    let first: RelayAddress = relay.address().clone();
    let written = std::fs::read_to_string(dir.path().join("address")).unwrap();
    assert_eq!(written, format!("{first}\n"));
    assert_eq!(written.trim().parse::<RelayAddress>().unwrap(), first);
    assert_eq!(first.node().host, "127.0.0.1");
    assert_eq!(first.node().port, relay.local_addr().port());

    let mut c = Client::connect(&first).await;
    let q = c.create_queue().await;
    let blocks: Vec<Vec<u8>> = (0..3).map(|_| random_block(B)).collect();
    c.send(blocks.iter().map(|b| q.item(b.clone())).collect()).await;
    let old_seqs: Vec<u64> = c.fetch(&q, 10).await.items.iter().map(|d| d.seq).collect();
    drop(c);
    relay.shutdown().await;

    let relay = start_in(dir.path(), RelayConfig::default()).await;
    assert_eq!(relay.address().fingerprints(), first.fingerprints());
    let mut c = Client::connect(relay.address()).await;
    let kept = c.fetch(&q, 10).await;
    assert_eq!(kept.items.iter().map(|d| d.block.clone()).collect::<Vec<_>>(), blocks);
    assert_eq!(c.send(vec![q.item(random_block(B))]).await, vec![SendOutcome::Stored]);
    let newest = c.fetch(&q, 10).await.items.last().unwrap().seq;
    assert!(newest > *old_seqs.last().unwrap());
    relay.shutdown().await;
}

#[tokio::test]
async fn restart_with_another_block_size_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_in(dir.path(), RelayConfig::default()).await;
    let mut c = Client::connect(relay.address()).await;
    let q = c.create_queue().await;
    c.send(vec![q.item(random_block(B))]).await;
    drop(c);
    relay.shutdown().await;
    let mut opts = RelayOptions::new("127.0.0.1:0".parse().unwrap(), dir.path());
    opts.config.block_size = 8192;
    let err = start(opts).await.err().expect("must refuse");
    assert!(err.to_string().contains("holds blocks of 4096 bytes"), "{err}");
}

#[tokio::test]
async fn a_taken_port_is_a_clear_bind_error() {
    let (relay, _dir) = start_relay(RelayConfig::default()).await;
    let other = tempfile::tempdir().unwrap();
    let err = start(RelayOptions::new(relay.local_addr(), other.path())).await.err().expect("port is taken");
    assert!(matches!(err, RelayError::Bind { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!("cannot bind {}: address already in use", relay.local_addr())),
        "{err}"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn expired_blocks_and_idle_queues_are_purged() {
    let config = RelayConfig {
        ttl: Duration::from_secs(1),
        purge_interval: Duration::from_millis(100),
        ..RelayConfig::default()
    };
    let (relay, _dir) = start_relay(config).await;
    let mut c = Client::connect(relay.address()).await;
    let q = c.create_queue().await;
    assert_eq!(q.info.ttl_secs, 1);
    c.send(vec![q.item(random_block(B))]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while relay.stats().await.unwrap().queues > 0 {
        assert!(tokio::time::Instant::now() < deadline, "nothing expired within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(relay.stats().await.unwrap().blocks, 0);
    let path = format!("/v1/queues/{}/blocks", q.recv_id);
    assert_eq!(c.request(Method::GET, &path, Some(&q.bearer()), Vec::new()).await.0, StatusCode::FORBIDDEN);
    relay.shutdown().await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// How many of a block's sample windows are in `file`. A stored block is split across
/// database pages, so whole-block search would miss it; these windows each sit in one page.
fn samples_found(file: &[u8], block: &[u8]) -> usize {
    [0, 2000, B - 36].iter().filter(|&&at| contains(file, &block[at..at + 32])).count()
}

/// Sanity check of what the relay keeps: its files, its tables, no secrets, and (when asked
/// to scrub) no acknowledged blocks.
#[tokio::test]
async fn data_dir_holds_only_what_it_should() {
    let dir = tempfile::tempdir().unwrap();
    let relay =
        start_in(dir.path(), RelayConfig { scrub_deleted_blocks: true, ..RelayConfig::default() }).await;
    let mut c = Client::connect(relay.address()).await;
    let q = c.create_queue().await;
    let blocks: Vec<Vec<u8>> = (0..3).map(|_| random_block(B)).collect();
    c.send(blocks.iter().map(|b| q.item(b.clone())).collect()).await;
    let acked = c.fetch(&q, 10).await.items[0].seq;
    assert_eq!(c.ack(&q, &[acked]).await, 1);
    drop(c);
    relay.shutdown().await;

    let files: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let expected: BTreeSet<String> =
        ["address", "cert.der", "key.der", "relay.db"].iter().map(|s| s.to_string()).collect();
    assert_eq!(files, expected);

    let db = std::fs::read(dir.path().join("relay.db")).unwrap();
    assert_eq!(
        samples_found(&db, &blocks[1]) + samples_found(&db, &blocks[2]),
        6,
        "unacknowledged blocks are kept"
    );
    assert_eq!(samples_found(&db, &blocks[0]), 0, "an acknowledged block is still on disk");
    assert!(contains(&db, &q.recv_secret.hash().0), "the receive hash is how the queue is opened");
    for secret in [&q.recv_secret, &q.send_secret] {
        for file in &expected {
            let bytes = std::fs::read(dir.path().join(file)).unwrap();
            assert!(!contains(&bytes, &secret.0), "a raw secret is in {file}");
            assert!(!contains(&bytes, secret.to_hex().as_bytes()), "a hex secret is in {file}");
        }
    }

    let conn = rusqlite::Connection::open(dir.path().join("relay.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' ORDER BY 1, 2")
        .unwrap();
    let columns: Vec<String> = stmt
        .query_map([], |r| Ok(format!("{}.{}", r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        columns,
        [
            "blocks.data",
            "blocks.queue",
            "blocks.seq",
            "blocks.stored_at",
            "queues.id",
            "queues.next_seq",
            "queues.recv_hash",
            "queues.recv_id",
            "queues.send_hash",
            "queues.send_id",
            "queues.stored",
            "queues.touched_at",
            "relay_settings.name",
            "relay_settings.value",
            "schema_version.applied_at",
            "schema_version.version",
        ]
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let (relay, _dir) = start_relay(RelayConfig { max_connections: 1, ..RelayConfig::default() }).await;
    let mut first = Client::connect(relay.address()).await;
    assert_eq!(first.request(Method::GET, "/healthz", None, Vec::new()).await.0, StatusCode::OK);
    let address = relay.address().clone();
    let second = tokio::spawn(async move {
        let mut c = Client::connect(&address).await;
        c.request(Method::GET, "/healthz", None, Vec::new()).await.0
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "a second connection was served past the limit of one");
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(5), second).await.expect("never served").unwrap();
    assert_eq!(status, StatusCode::OK);
    relay.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_open_websockets_promptly() {
    use futures_util::StreamExt;
    let (relay, _dir) = start_relay(RelayConfig::default()).await;
    let mut c = Client::connect(relay.address()).await;
    let q = c.create_queue().await;
    let mut ws = support::ws_connect(relay.address()).await;
    let subscribe =
        backchannel_wire::WsClientMessage::Subscribe { recv_id: q.recv_id, secret: q.recv_secret.to_hex() };
    support::ws_send(&mut ws, &subscribe).await;
    assert!(matches!(support::ws_next(&mut ws).await, support::Frame::Text(_)));
    let started = std::time::Instant::now();
    relay.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown waited {:?}", started.elapsed());
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap();
    assert!(
        matches!(end, None | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) | Some(Err(_))),
        "{end:?}"
    );
}
