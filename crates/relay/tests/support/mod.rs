//! A small test-only client: real TLS pinned to the relay's fingerprint, HTTP/1.1 over hyper,
//! WebSocket over tokio-tungstenite on the same kind of TLS stream.
#![allow(dead_code, reason = "each test binary uses part of the support module")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test support")]

use backchannel_relay::{RelayConfig, RelayOptions, RunningRelay, start};
use backchannel_wire::{
    CreateQueueRequest, CreateQueueResponse, FetchResponse, QueueId, QueueSecret, RelayAddress, SendBatch,
    SendItem, SendOutcome, SendResponse, WsServerMessage,
};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// A relay on 127.0.0.1:0 in its own temporary directory.
pub async fn start_relay(config: RelayConfig) -> (RunningRelay, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let relay = start_in(dir.path(), config).await;
    (relay, dir)
}

pub async fn start_in(dir: &std::path::Path, config: RelayConfig) -> RunningRelay {
    let mut opts = RelayOptions::new("127.0.0.1:0".parse().unwrap(), dir);
    opts.config = config;
    start(opts).await.unwrap()
}

/// A TLS stream to the relay, pinned to its fingerprint, or the handshake error. The pinning
/// is the client's own (`backchannel_client::connect_tls`), so these tests exercise it too.
pub async fn try_tls(
    address: &RelayAddress,
) -> Result<TlsStream<TcpStream>, backchannel_client::ClientError> {
    backchannel_client::connect_tls(address).await
}

pub async fn tls(address: &RelayAddress) -> TlsStream<TcpStream> {
    try_tls(address).await.unwrap()
}

/// An HTTP/1.1 connection to the relay.
pub struct Client {
    sender: http1::SendRequest<Full<Bytes>>,
}

/// A queue as its creator holds it.
pub struct Queue {
    pub recv_id: QueueId,
    pub send_id: QueueId,
    pub recv_secret: QueueSecret,
    pub send_secret: QueueSecret,
    pub info: CreateQueueResponse,
}

impl Queue {
    pub fn item(&self, block: Vec<u8>) -> SendItem {
        SendItem { send_id: self.send_id, secret: self.send_secret.clone(), block }
    }

    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.recv_secret.to_hex())
    }
}

impl Client {
    pub async fn connect(address: &RelayAddress) -> Self {
        let (sender, conn) = http1::handshake(TokioIo::new(tls(address).await)).await.unwrap();
        tokio::spawn(conn);
        Self { sender }
    }

    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Bytes) {
        let mut req = Request::builder().method(method).uri(path).header("host", "relay");
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        self.sender.ready().await.unwrap();
        let resp = self.sender.send_request(req).await.unwrap();
        let status = resp.status();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    }

    pub async fn create_queue(&mut self) -> Queue {
        let (recv_secret, send_secret) = (QueueSecret::random(), QueueSecret::random());
        let req = CreateQueueRequest { recv_hash: recv_secret.hash(), send_hash: send_secret.hash() };
        let (status, body) =
            self.request(Method::POST, "/v1/queues", None, serde_json::to_vec(&req).unwrap()).await;
        assert_eq!(status, StatusCode::CREATED, "{body:?}");
        let info: CreateQueueResponse = serde_json::from_slice(&body).unwrap();
        Queue { recv_id: info.recv_id, send_id: info.send_id, recv_secret, send_secret, info }
    }

    pub async fn send(&mut self, items: Vec<SendItem>) -> Vec<SendOutcome> {
        let (status, body) = self.request(Method::POST, "/v1/send", None, SendBatch { items }.encode()).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        serde_json::from_slice::<SendResponse>(&body).unwrap().results
    }

    pub async fn fetch(&mut self, q: &Queue, max: usize) -> FetchResponse {
        let path = format!("/v1/queues/{}/blocks?max={max}", q.recv_id);
        let (status, body) = self.request(Method::GET, &path, Some(&q.bearer()), Vec::new()).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        FetchResponse::decode(&body).unwrap()
    }

    pub async fn ack(&mut self, q: &Queue, seqs: &[u64]) -> u64 {
        let path = format!("/v1/queues/{}/ack", q.recv_id);
        let body = serde_json::to_vec(&serde_json::json!({ "seqs": seqs })).unwrap();
        let (status, body) = self.request(Method::POST, &path, Some(&q.bearer()), body).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["deleted"].as_u64().unwrap()
    }
}

/// A WebSocket to `/v1/ws`.
pub type Ws = WebSocketStream<TlsStream<TcpStream>>;

pub async fn ws_connect(address: &RelayAddress) -> Ws {
    let url = format!("wss://{}/v1/ws", address.authority());
    let (ws, _) = tokio_tungstenite::client_async(url, tls(address).await).await.unwrap();
    ws
}

pub async fn ws_send(ws: &mut Ws, msg: &backchannel_wire::WsClientMessage) {
    ws.send(Message::Text(serde_json::to_string(msg).unwrap().into())).await.unwrap();
}

/// The next frame: a text message from the relay, or a pushed block.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Text(WsServerMessage),
    Block(QueueId, backchannel_wire::Delivered),
}

pub async fn ws_next(ws: &mut Ws) -> Frame {
    let wait = std::time::Duration::from_secs(10);
    loop {
        let msg =
            tokio::time::timeout(wait, ws.next()).await.expect("no frame within 10 s").unwrap().unwrap();
        match msg {
            Message::Text(t) => return Frame::Text(serde_json::from_str(t.as_str()).unwrap()),
            Message::Binary(b) => {
                let (id, d) = backchannel_wire::ws_delivery_decode(&b).unwrap();
                return Frame::Block(id, d);
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Asserts nothing arrives for a short while.
pub async fn ws_quiet(ws: &mut Ws) {
    let got = tokio::time::timeout(std::time::Duration::from_millis(300), ws.next()).await;
    assert!(got.is_err(), "expected silence, got {got:?}");
}

/// A block of the relay's size with random content.
pub fn random_block(size: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(size);
    while b.len() < size {
        b.extend_from_slice(&QueueSecret::random().0);
    }
    b.truncate(size);
    b
}
