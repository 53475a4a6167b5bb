//! The relay's HTTP and WebSocket API, over real TLS, against a relay on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use backchannel_relay::RelayConfig;
use backchannel_wire::{
    ApiErrorBody, CreateQueueRequest, QueueId, QueueSecret, RelayAddress, SendBatch, SendItem, SendOutcome,
    WsClientMessage, WsServerMessage,
};
use hyper::{Method, StatusCode};
use support::{Client, Frame, random_block, start_relay, ws_connect, ws_next, ws_quiet, ws_send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const B: usize = 4096;

fn error_body(body: &[u8]) -> ApiErrorBody {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not an error body ({e}): {body:?}"))
}

#[tokio::test]
async fn create_send_fetch_ack_round_trip() {
    let (relay, _dir) = start_relay(RelayConfig::default()).await;
    let mut c = Client::connect(relay.address()).await;
    let q = c.create_queue().await;
    assert_eq!((q.info.block_size, q.info.ttl_secs, q.info.quota_blocks), (B, 14 * 24 * 3600, 10_000));
    assert_ne!(q.recv_id, q.send_id);

    let blocks: Vec<Vec<u8>> = (0..3).map(|_| random_block(B)).collect();
    let outcomes = c.send(blocks.iter().map(|b| q.item(b.clone())).collect()).await;
    assert_eq!(outcomes, vec![SendOutcome::Stored; 3]);

    let first_two = c.fetch(&q, 2).await;
    assert_eq!(first_two.items.len(), 2);
    let all = c.fetch(&q, 100).await;
    assert_eq!(all.items.iter().map(|d| d.block.clone()).collect::<Vec<_>>(), blocks);
    assert!(all.items.windows(2).all(|w| w[0].seq < w[1].seq));

    let seqs: Vec<u64> = all.items.iter().map(|d| d.seq).collect();
    assert_eq!(c.ack(&q, &seqs[..2]).await, 2);
    let left = c.fetch(&q, 100).await;
    assert_eq!(left.items.len(), 1);
    assert_eq!(left.items[0].block, blocks[2]);
    let stats = relay.stats().await.unwrap();
    assert_eq!((stats.queues, stats.blocks, stats.bytes), (1, 1, B as u64));
    relay.shutdown().await;
}

#[tokio::test]
async fn wrong_secret_is_refused_or_forbidden_without_echo() {
    let (relay, _dir) = start_relay(RelayConfig::default()).await;
    let mut c = Client::connect(relay.address()).await;
    let q = c.create_queue().await;
    let wrong = QueueSecret::random();
    let item = SendItem { send_id: q.send_id, secret: wrong.clone(), block: random_block(B) };
    assert_eq!(
        c.send(vec![item, q.item(random_block(B))]).await,
        vec![SendOutcome::Refused, SendOutcome::Stored]
    );

    let bad_auth = format!("Bearer {}", wrong.to_hex());
    let send_as_recv = format!("Bearer {}", q.send_secret.to_hex());
    for auth in [&bad_auth, &send_as_recv] {
        let path = format!("/v1/queues/{}/blocks", q.recv_id);
        let (status, body) = c.request(Method::GET, &path, Some(auth), Vec::new()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(error_body(&body).error, "unauthorized");
        assert!(!String::from_utf8_lossy(&body).contains(wrong.to_hex().as_str()));
        let path = format!("/v1/queues/{}/ack", q.recv_id);
        let (status, _) = c.request(Method::POST, &path, Some(auth), br#"{"seqs":[1]}"#.to_vec()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let path = format!("/v1/queues/{}", q.recv_id);
        assert_eq!(c.request(Method::DELETE, &path, Some(auth), Vec::new()).await.0, StatusCode::FORBIDDEN);
    }
    // An unknown queue looks the same as a wrong secret.
    let path = format!("/v1/queues/{}/blocks", QueueId::random());
    assert_eq!(c.request(Method::GET, &path, Some(&q.bearer()), Vec::new()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(c.fetch(&q, 10).await.items.len(), 1);
    relay.shutdown().await;
}

#[tokio::test]
async fn wrong_block_size_is_400_with_a_message() {
    let (relay, _dir) = start_relay(RelayConfig::default()).await;
    let mut c = Client::connect(relay.address()).await;
    let q = c.create_queue().await;
    let body = SendBatch { items: vec![q.item(vec![7; 1000])] }.encode();
    let (status, body) = c.request(Method::POST, "/v1/send", None, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err = error_body(&body);
    assert_eq!(err.error, "bad_request");
    assert!(err.message.contains("exactly 4096 bytes"), "{}", err.message);
    assert_eq!(relay.stats().await.unwrap().blocks, 0);
    relay.shutdown().await;
}

#[tokio::test]
async fn garbage_and_malformed_requests_are_400_and_the_connection_lives_on() {
    let (relay, _dir) = start_relay(RelayConfig::default()).await;
    let mut c = Client::connect(relay.address()).await;
    let q = c.create_queue().await;
    let cases: Vec<(Method, String, Option<String>, Vec<u8>)> = vec![
        (Method::POST, "/v1/send".into(), None, b"\xff\xfe garbage".to_vec()),
        (Method::POST, "/v1/send".into(), None, Vec::new()),
        (Method::POST, "/v1/queues".into(), None, b"{not json".to_vec()),
        (Method::POST, "/v1/queues".into(), None, br#"{"recv_hash":"00","send_hash":"11"}"#.to_vec()),
        (Method::POST, format!("/v1/queues/{}/ack", q.recv_id), Some(q.bearer()), b"[1,2]".to_vec()),
        (Method::GET, "/v1/queues/not-hex/blocks".into(), Some(q.bearer()), Vec::new()),
        (Method::GET, format!("/v1/queues/{}/blocks", q.recv_id), None, Vec::new()),
        (Method::GET, format!("/v1/queues/{}/blocks", q.recv_id), Some("Bearer zz".into()), Vec::new()),
        (Method::GET, format!("/v1/queues/{}/blocks?max=0", q.recv_id), Some(q.bearer()), Vec::new()),
        (Method::GET, format!("/v1/queues/{}/blocks?max=lots", q.recv_id), Some(q.bearer()), Vec::new()),
        (Method::GET, "/v1/nothing-here".into(), None, Vec::new()),
        (Method::GET, "/v1/ws".into(), None, Vec::new()),
    ];
    for (method, path, auth, body) in cases {
        let (status, reply) = c.request(method.clone(), &path, auth.as_deref(), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {reply:?}");
        assert_eq!(error_body(&reply).error, "bad_request", "{method} {path}");
    }
    let (_, body) = c.request(Method::POST, "/v1/queues", None, b"{not json".to_vec()).await;
    assert!(error_body(&body).message.contains("malformed JSON"));
    // Same connection, still serving.
    assert_eq!(c.send(vec![q.item(random_block(B))]).await, vec![SendOutcome::Stored]);
    relay.shutdown().await;
}

/// Reads the status line of a raw HTTP/1.1 response.
async fn status_line(stream: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut buf = vec![0u8; 512];
    let mut got = Vec::new();
    while !got.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a response");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn oversized_body_is_413_before_it_is_read_and_others_are_served() {
    let config = RelayConfig { block_size: 1024, ..RelayConfig::default() };
    let limit = config.max_send_body();
    let (relay, _dir) = start_relay(config).await;
    let address = relay.address().clone();

    // Declared too large: answered after the headers, with a body that never comes.
    let mut raw = support::tls(&address).await;
    let head = format!("POST /v1/send HTTP/1.1\r\nhost: relay\r\ncontent-length: {}\r\n\r\n", limit + 1);
    raw.write_all(head.as_bytes()).await.unwrap();
    raw.write_all(&[0u8; 1000]).await.unwrap();
    assert!(status_line(&mut raw).await.starts_with("HTTP/1.1 413"));

    // Undeclared (chunked) and too large: cut off once it passes the limit.
    let mut raw = support::tls(&address).await;
    raw.write_all(b"POST /v1/send HTTP/1.1\r\nhost: relay\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let (mut reader, mut writer) = tokio::io::split(raw);
    let feeder = tokio::spawn(async move {
        for _ in 0..(limit / chunk.len() + 2) {
            let head = format!("{:x}\r\n", chunk.len());
            if writer.write_all(head.as_bytes()).await.is_err()
                || writer.write_all(&chunk).await.is_err()
                || writer.write_all(b"\r\n").await.is_err()
            {
                return;
            }
        }
    });
    assert!(status_line(&mut reader).await.starts_with("HTTP/1.1 413"));
    feeder.abort();

    let mut other = Client::connect(&address).await;
    let q = other.create_queue().await;
    assert_eq!(other.send(vec![q.item(random_block(1024))]).await, vec![SendOutcome::Stored]);
    relay.shutdown().await;
}

#[tokio::test]
async fn quota_and_delete_queue() {
    let (relay, _dir) = start_relay(RelayConfig { quota_blocks: 2, ..RelayConfig::default() }).await;
    let mut c = Client::connect(relay.address()).await;
    let q = c.create_queue().await;
    let items = (0..3).map(|_| q.item(random_block(B))).collect();
    assert_eq!(c.send(items).await, vec![SendOutcome::Stored, SendOutcome::Stored, SendOutcome::QueueFull]);
    let seq = c.fetch(&q, 1).await.items[0].seq;
    c.ack(&q, &[seq]).await;
    assert_eq!(c.send(vec![q.item(random_block(B))]).await, vec![SendOutcome::Stored]);

    let path = format!("/v1/queues/{}", q.recv_id);
    assert_eq!(
        c.request(Method::DELETE, &path, Some(&q.bearer()), Vec::new()).await.0,
        StatusCode::NO_CONTENT
    );
    let fetch = format!("/v1/queues/{}/blocks", q.recv_id);
    assert_eq!(c.request(Method::GET, &fetch, Some(&q.bearer()), Vec::new()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(c.send(vec![q.item(random_block(B))]).await, vec![SendOutcome::Refused]);
    let stats = relay.stats().await.unwrap();
    assert_eq!((stats.queues, stats.blocks), (0, 0));
    relay.shutdown().await;
}

#[tokio::test]
async fn healthz_and_metrics() {
    let token = backchannel_relay::MetricsToken::new("metrics-token-for-the-api-test").unwrap();
    let config = RelayConfig { metrics_token: Some(token), ..RelayConfig::default() };
    let (relay, _dir) = start_relay(config).await;
    let mut c = Client::connect(relay.address()).await;
    let (status, body) = c.request(Method::GET, "/healthz", None, Vec::new()).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    let q = c.create_queue().await;
    c.send(vec![q.item(random_block(B)), q.item(random_block(B))]).await;
    let seq = c.fetch(&q, 10).await.items[0].seq;
    c.ack(&q, &[seq]).await;
    c.request(Method::POST, "/v1/send", None, b"junk".to_vec()).await;
    let (status, _) = c.request(Method::GET, "/metrics", None, Vec::new()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the token is needed");
    let (status, body) =
        c.request(Method::GET, "/metrics", Some("Bearer metrics-token-for-the-api-test"), Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body.to_vec()).unwrap();
    for line in [
        "backchannel_relay_queues 1",
        "backchannel_relay_stored_blocks 1",
        "backchannel_relay_stored_bytes 4096",
        "backchannel_relay_blocks_stored_total 2",
        "backchannel_relay_blocks_delivered_total 2",
        "backchannel_relay_blocks_acked_total 1",
        "backchannel_relay_open_connections 1",
        "backchannel_relay_rejected_total{reason=\"bad_request\"} 1",
        "backchannel_relay_rejected_total{reason=\"unauthorized\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
    relay.shutdown().await;
    // Without a token the public port has no /metrics (serve it with metrics_listen instead).
    let (relay, _dir) = start_relay(RelayConfig::default()).await;
    let mut c = Client::connect(relay.address()).await;
    let (status, body) = c.request(Method::GET, "/metrics", None, Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    relay.shutdown().await;
}

/// Queue creation has a relay-wide limit too: fresh connections, each far under its own
/// limit, are refused once the relay's bucket is spent.
#[tokio::test]
async fn queue_creation_is_limited_across_connections() {
    let config =
        RelayConfig { queue_creations_per_sec: 1, queue_creation_burst: 3, ..RelayConfig::default() };
    let (relay, _dir) = start_relay(config).await;
    let start = std::time::Instant::now();
    let mut created = 0;
    let refused = loop {
        let mut c = Client::connect(relay.address()).await;
        let (r, s) = (QueueSecret::random(), QueueSecret::random());
        let body =
            serde_json::to_vec(&CreateQueueRequest { recv_hash: r.hash(), send_hash: s.hash() }).unwrap();
        let (status, reply) = c.request(Method::POST, "/v1/queues", None, body).await;
        match status {
            StatusCode::CREATED if created < 20 => created += 1,
            StatusCode::TOO_MANY_REQUESTS => break reply,
            other => panic!("{other} after {created} queues were created"),
        }
    };
    assert_eq!(error_body(&refused).error, "rate_limited");
    let allowed = 3.0 + start.elapsed().as_secs_f64();
    assert!(
        created >= 3 && f64::from(created) <= allowed,
        "{created} queues passed a bucket allowing {allowed:.1}"
    );
    let mut other = Client::connect(relay.address()).await;
    assert_eq!(
        other.request(Method::GET, "/healthz", None, Vec::new()).await.0,
        StatusCode::OK,
        "other requests pass"
    );
    relay.shutdown().await;
}

/// A client that meets the relay-wide limit waits and asks again, so a short burst of
/// invitations is slowed down, not refused.
#[tokio::test]
async fn the_client_waits_out_a_short_queue_limit() {
    let config =
        RelayConfig { queue_creations_per_sec: 1, queue_creation_burst: 1, ..RelayConfig::default() };
    let (relay, _dir) = start_relay(config).await;
    let mut client = backchannel_client::RelayClient::connect(relay.address()).await.unwrap();
    let start = std::time::Instant::now();
    let first = client.create_queue().await.unwrap().0;
    let second = client.create_queue().await.unwrap().0;
    assert_ne!(first.recv_id, second.recv_id);
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(250),
        "the second creation waited for a token"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn rate_limit_is_per_connection() {
    let config = RelayConfig { rate_per_sec: 1, rate_burst: 3, ..RelayConfig::default() };
    let (relay, _dir) = start_relay(config).await;
    // The bucket refills one token a second, so on a slow machine a fourth request may still
    // pass: count what passed before the first 429 against what the bucket allows.
    let start = std::time::Instant::now();
    let mut c = Client::connect(relay.address()).await;
    let mut oks = 0;
    let refused = loop {
        let (status, body) = c.request(Method::GET, "/healthz", None, Vec::new()).await;
        match status {
            StatusCode::OK if oks < 20 => oks += 1,
            StatusCode::TOO_MANY_REQUESTS => break body,
            other => panic!("{other} after {oks} requests passed"),
        }
    };
    assert_eq!(error_body(&refused).error, "rate_limited");
    let allowed = 3.0 + start.elapsed().as_secs_f64();
    assert!(oks >= 3 && f64::from(oks) <= allowed, "{oks} requests passed a bucket allowing {allowed:.1}");
    let mut other = Client::connect(relay.address()).await;
    assert_eq!(other.request(Method::GET, "/healthz", None, Vec::new()).await.0, StatusCode::OK);
    relay.shutdown().await;
}

#[tokio::test]
async fn tls_refuses_a_different_fingerprint() {
    let (relay, _dir) = start_relay(RelayConfig::default()).await;
    let node = relay.address().node().clone();
    let wrong = RelayAddress::for_certificate(node.host, node.port, b"some other certificate");
    assert!(support::try_tls(&wrong).await.is_err());
    assert!(support::try_tls(relay.address()).await.is_ok());
    relay.shutdown().await;
}

#[tokio::test]
async fn websocket_pushes_backlog_then_new_blocks_and_takes_acks() {
    let (relay, _dir) = start_relay(RelayConfig::default()).await;
    let mut c = Client::connect(relay.address()).await;
    let q = c.create_queue().await;
    let backlog: Vec<Vec<u8>> = (0..2).map(|_| random_block(B)).collect();
    c.send(backlog.iter().map(|b| q.item(b.clone())).collect()).await;

    let mut ws = ws_connect(relay.address()).await;
    let subscribe = WsClientMessage::Subscribe { recv_id: q.recv_id, secret: q.recv_secret.to_hex() };
    ws_send(&mut ws, &subscribe).await;
    assert_eq!(ws_next(&mut ws).await, Frame::Text(WsServerMessage::Subscribed { recv_id: q.recv_id }));
    let mut seqs = Vec::new();
    for expected in &backlog {
        let Frame::Block(id, d) = ws_next(&mut ws).await else { panic!("expected a block") };
        assert_eq!((id, &d.block), (q.recv_id, expected));
        seqs.push(d.seq);
    }
    ws_quiet(&mut ws).await;

    let fresh = random_block(B);
    c.send(vec![q.item(fresh.clone())]).await;
    let Frame::Block(_, d) = ws_next(&mut ws).await else { panic!("expected the new block") };
    assert_eq!(d.block, fresh);
    assert!(d.seq > seqs[1]);
    ws_quiet(&mut ws).await;

    ws_send(&mut ws, &WsClientMessage::Ack { recv_id: q.recv_id, seqs: vec![seqs[0], d.seq] }).await;
    assert_eq!(
        ws_next(&mut ws).await,
        Frame::Text(WsServerMessage::Acked { recv_id: q.recv_id, deleted: 2 })
    );

    // Re-subscribing starts again from the oldest unacknowledged block.
    ws_send(&mut ws, &subscribe).await;
    assert_eq!(ws_next(&mut ws).await, Frame::Text(WsServerMessage::Subscribed { recv_id: q.recv_id }));
    let Frame::Block(_, d) = ws_next(&mut ws).await else { panic!("expected the unacked block") };
    assert_eq!(d.seq, seqs[1]);
    ws_quiet(&mut ws).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn websocket_follows_many_queues_and_survives_mistakes() {
    let (relay, _dir) = start_relay(RelayConfig::default()).await;
    let mut c = Client::connect(relay.address()).await;
    let (a, b) = (c.create_queue().await, c.create_queue().await);
    let mut ws = ws_connect(relay.address()).await;

    ws.send_text("this is not json").await;
    assert!(matches!(ws_next(&mut ws).await, Frame::Text(WsServerMessage::Error { .. })));
    let wrong = WsClientMessage::Subscribe { recv_id: a.recv_id, secret: QueueSecret::random().to_hex() };
    ws_send(&mut ws, &wrong).await;
    let Frame::Text(WsServerMessage::Error { message, .. }) = ws_next(&mut ws).await else {
        panic!("expected an error")
    };
    assert!(message.contains("not authorized"), "{message}");
    ws_send(&mut ws, &WsClientMessage::Ack { recv_id: b.recv_id, seqs: vec![1] }).await;
    assert!(matches!(ws_next(&mut ws).await, Frame::Text(WsServerMessage::Error { .. })));

    for q in [&a, &b] {
        let sub = WsClientMessage::Subscribe { recv_id: q.recv_id, secret: q.recv_secret.to_hex() };
        ws_send(&mut ws, &sub).await;
        assert_eq!(ws_next(&mut ws).await, Frame::Text(WsServerMessage::Subscribed { recv_id: q.recv_id }));
    }
    let mut second = ws_connect(relay.address()).await;
    ws_send(&mut second, &WsClientMessage::Subscribe { recv_id: b.recv_id, secret: b.recv_secret.to_hex() })
        .await;
    assert_eq!(ws_next(&mut second).await, Frame::Text(WsServerMessage::Subscribed { recv_id: b.recv_id }));

    c.send(vec![b.item(random_block(B)), a.item(random_block(B))]).await;
    let mut got: Vec<QueueId> = Vec::new();
    for _ in 0..2 {
        let Frame::Block(id, _) = ws_next(&mut ws).await else { panic!("expected a block") };
        got.push(id);
    }
    got.sort();
    let mut want = vec![a.recv_id, b.recv_id];
    want.sort();
    assert_eq!(got, want);
    assert!(matches!(ws_next(&mut second).await, Frame::Block(id, _) if id == b.recv_id));
    ws_quiet(&mut ws).await;
    ws_quiet(&mut second).await;

    // Deleting a followed queue tells its followers.
    let path = format!("/v1/queues/{}", b.recv_id);
    assert_eq!(
        c.request(Method::DELETE, &path, Some(&b.bearer()), Vec::new()).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(matches!(ws_next(&mut second).await, Frame::Text(WsServerMessage::Error { .. })));
    relay.shutdown().await;
}

trait SendText {
    async fn send_text(&mut self, text: &str);
}

impl SendText for support::Ws {
    async fn send_text(&mut self, text: &str) {
        use futures_util::SinkExt;
        let msg = tokio_tungstenite::tungstenite::Message::Text(text.to_owned().into());
        self.send(msg).await.unwrap();
    }
}
