//! Connections to relays: TLS pinned to the certificate fingerprints in the relay address (no
//! certificate authority), HTTP/1.1 for requests, WebSocket for `watch`.
//!
//! An address may list several nodes of one host (`bcr://A:1,B:2#…`). Connections try them
//! in turn, starting at a random one so clients spread over the nodes, and a request that
//! fails because its node went away (no answer, or `503`) is sent again through the next
//! node. A retried send may store a block twice; receivers drop the copy (the seen-set), as
//! they do for any redelivery.

use std::sync::Arc;
use std::time::Duration;

use backchannel_wire::{
    AckRequest, ApiError, ApiErrorBody, CreateQueueRequest, CreateQueueResponse, FetchResponse, QueueId,
    QueueSecret, RelayAddress, RelayNode, SendBatch, SendItem, SendResponse,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::error::{ClientError, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer a relay may give: a full fetch page (a page of `MAX_BATCH` blocks of the
/// largest size, each with its seq) and some room. Anything longer is refused, not collected.
pub(crate) const MAX_ANSWER: usize =
    6 + backchannel_wire::MAX_BATCH * (8 + backchannel_wire::MAX_BLOCK_SIZE) + 64 * 1024;
/// Longest wait before asking a rate-limited relay again for a queue.
const CREATE_BACKOFF_MAX: Duration = Duration::from_secs(2);

pub type WsStream = tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>;

/// Why an answer could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Longer than any answer a relay gives: refused before it fills memory.
    TooLarge,
    /// The connection failed on the way.
    Failed(String),
}

impl Answer {
    fn failed(e: impl std::fmt::Display) -> Self {
        Answer::Failed(e.to_string())
    }
}

/// Collects a body of at most `max` bytes (a relay's answer is bounded: a hostile or broken
/// one must not make us buffer without end).
pub(crate) async fn collect_at_most<B>(body: B, max: usize) -> std::result::Result<Bytes, Answer>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(Answer::TooLarge),
        Err(e) => Err(Answer::failed(e)),
    }
}

/// Accepts exactly the certificate whose SHA-256 the relay address pins, and checks that
/// the handshake is signed by that certificate's key.
#[derive(Debug)]
struct Pinned {
    address: RelayAddress,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.address.pins(end_entity.as_ref()) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens a TLS connection to one of the relay's nodes and checks its pinned certificate.
pub async fn connect_tls(address: &RelayAddress) -> Result<TlsStream<TcpStream>> {
    Ok(connect_any(address, None).await?.1)
}

/// Tries the nodes in turn, from a random one (or from the node after `failed`), and returns
/// the first that answers with a pinned certificate, with its index. The error is the last
/// node's, or "not pinned" if any node showed a certificate the address does not pin.
async fn connect_any(address: &RelayAddress, failed: Option<usize>) -> Result<(usize, TlsStream<TcpStream>)> {
    let n = address.nodes().len();
    let first = failed.map_or_else(|| random_below(n), |i| (i + 1) % n);
    let mut error = None;
    for k in 0..n {
        let i = (first + k) % n;
        match connect_node(address, &address.nodes()[i]).await {
            Ok(tls) => return Ok((i, tls)),
            Err(e) => {
                tracing::debug!(node = %address.nodes()[i], error = %e, "relay node unreachable");
                if !matches!(error, Some(ClientError::RelayNotPinned { .. })) {
                    error = Some(e);
                }
            }
        }
    }
    Err(error.unwrap_or_else(|| ClientError::RelayUnreachable {
        relay: address.to_string(),
        why: "the address lists no node".into(),
    }))
}

/// A uniform index below `n` from the OS generator (by way of a random queue id).
fn random_below(n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let r = QueueId::random().0;
    (u64::from_le_bytes([r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]]) % n as u64) as usize
}

async fn connect_node(address: &RelayAddress, node: &RelayNode) -> Result<TlsStream<TcpStream>> {
    let unreachable = |why: String| ClientError::RelayUnreachable { relay: address.to_string(), why };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned { address: address.clone(), provider: provider.clone() });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| unreachable(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(node.authority()))
        .await
        .map_err(|_| unreachable(format!("connection to {node} timed out")))?
        .map_err(|e| unreachable(format!("{node}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(node.host.clone()).map_err(|e| unreachable(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| unreachable(format!("TLS handshake with {node} timed out")))?
        .map_err(|e| tls_error(address, &e))
}

fn tls_error(address: &RelayAddress, e: &std::io::Error) -> ClientError {
    let rustls_error = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    if let Some(rustls::Error::InvalidCertificate(_)) = rustls_error {
        return ClientError::RelayNotPinned { relay: address.to_string() };
    }
    ClientError::RelayUnreachable { relay: address.to_string(), why: e.to_string() }
}

/// One HTTP/1.1 connection to one node of a relay; requests go one after another. When the
/// node goes away, the next request moves to another node of the address.
pub struct RelayClient {
    address: RelayAddress,
    sender: SendRequest<Full<Bytes>>,
    /// Which of the address's nodes the connection is to.
    node: usize,
}

impl RelayClient {
    pub async fn connect(address: &RelayAddress) -> Result<Self> {
        Self::connect_from(address, None).await
    }

    async fn connect_from(address: &RelayAddress, failed: Option<usize>) -> Result<Self> {
        let (node, tls) = connect_any(address, failed).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| ClientError::RelayUnreachable { relay: address.to_string(), why: e.to_string() })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("relay connection closed: {e}");
            }
        });
        Ok(Self { address: address.clone(), sender, node })
    }

    /// The node this connection is to (`host:port`).
    pub fn node(&self) -> &RelayNode {
        &self.address.nodes()[self.node]
    }

    pub fn address(&self) -> &RelayAddress {
        &self.address
    }

    /// True once the connection is gone (closed by the relay, or after an error).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Creates a queue; returns its receive id and secret, and the send half as a capability.
    /// A relay creating too many queues right now (`429`, its relay-wide limit) is asked again
    /// after 0.25, 0.5, 1 and 2 s before the refusal is passed on.
    pub async fn create_queue(&mut self) -> Result<(CreateQueueResponse, QueueSecret, QueueSecret)> {
        let (recv_secret, send_secret) = (QueueSecret::random(), QueueSecret::random());
        let req = CreateQueueRequest { recv_hash: recv_secret.hash(), send_hash: send_secret.hash() };
        let mut backoff = Duration::from_millis(250);
        let body = loop {
            match self.request(Method::POST, "/v1/queues", None, json(&req)?).await {
                Err(ClientError::RelayRefused { error: ApiError::RateLimited, .. })
                    if backoff <= CREATE_BACKOFF_MAX =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                answer => break answer?,
            }
        };
        Ok((self.parse_json(&body)?, recv_secret, send_secret))
    }

    pub async fn send(&mut self, items: Vec<SendItem>) -> Result<SendResponse> {
        let body = SendBatch { items }.encode();
        let answer = self.request(Method::POST, "/v1/send", None, body).await?;
        self.parse_json(&answer)
    }

    /// The oldest unacknowledged blocks, at most `max`.
    pub async fn fetch(
        &mut self,
        recv_id: &QueueId,
        secret: &QueueSecret,
        max: usize,
    ) -> Result<FetchResponse> {
        self.fetch_after(recv_id, secret, 0, max).await
    }

    /// The oldest unacknowledged blocks with a seq above `after`, at most `max`.
    pub async fn fetch_after(
        &mut self,
        recv_id: &QueueId,
        secret: &QueueSecret,
        after: u64,
        max: usize,
    ) -> Result<FetchResponse> {
        let path = format!("/v1/queues/{recv_id}/blocks?max={max}&after={after}");
        let body = self.request(Method::GET, &path, Some(secret), Vec::new()).await?;
        FetchResponse::decode(&body).map_err(|e| self.protocol(e.to_string()))
    }

    pub async fn ack(&mut self, recv_id: &QueueId, secret: &QueueSecret, seqs: Vec<u64>) -> Result<()> {
        let path = format!("/v1/queues/{recv_id}/ack");
        self.request(Method::POST, &path, Some(secret), json(&AckRequest { seqs })?).await?;
        Ok(())
    }

    pub async fn delete_queue(&mut self, recv_id: &QueueId, secret: &QueueSecret) -> Result<()> {
        self.request(Method::DELETE, &format!("/v1/queues/{recv_id}"), Some(secret), Vec::new()).await?;
        Ok(())
    }

    /// Sends one request; if its node is gone (no answer, or `503`) and the address lists
    /// other nodes, moves to the next node and sends it again, trying each node once.
    async fn request(
        &mut self,
        method: Method,
        path: &str,
        auth: Option<&QueueSecret>,
        body: Vec<u8>,
    ) -> Result<Bytes> {
        let body = Bytes::from(body);
        let nodes = self.address.nodes().len();
        if self.sender.is_closed() && nodes > 1 {
            // Closed while idle (or its node died): any live node will do.
            *self = Self::connect_from(&self.address, Some(self.node)).await?;
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let answer = self.request_once(method.clone(), path, auth, body.clone()).await;
            let node_gone = matches!(
                answer,
                Err(ClientError::RelayUnreachable { .. })
                    | Err(ClientError::RelayRefused { error: ApiError::Unavailable(_), .. })
            );
            if !node_gone || nodes == 1 || tries >= nodes {
                return answer;
            }
            match Self::connect_from(&self.address, Some(self.node)).await {
                Ok(fresh) => {
                    tracing::info!(from = %self.node(), to = %fresh.node(), "relay node failed over");
                    *self = fresh;
                }
                Err(_) => return answer,
            }
        }
    }

    async fn request_once(
        &mut self,
        method: Method,
        path: &str,
        auth: Option<&QueueSecret>,
        body: Bytes,
    ) -> Result<Bytes> {
        let mut req = Request::builder().method(method).uri(path).header("host", self.node().authority());
        if let Some(secret) = auth {
            req = req.header("authorization", format!("Bearer {}", secret.to_hex()));
        }
        let req = req.body(Full::new(body)).map_err(|e| self.protocol(e.to_string()))?;
        let exchange = async {
            self.sender.ready().await.map_err(Answer::failed)?;
            let resp = self.sender.send_request(req).await.map_err(Answer::failed)?;
            let status = resp.status();
            Ok::<_, Answer>((status, collect_at_most(resp.into_body(), MAX_ANSWER).await?))
        };
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| self.unreachable("request timed out"))?
            .map_err(|e| match e {
                Answer::TooLarge => self.protocol(format!("an answer longer than {MAX_ANSWER} bytes")),
                Answer::Failed(why) => self.unreachable(&why),
            })?;
        if status.is_success() { Ok(bytes) } else { Err(self.refused(status, &bytes)) }
    }

    fn refused(&self, status: StatusCode, body: &[u8]) -> ClientError {
        let error = serde_json::from_slice::<ApiErrorBody>(body)
            .map(|b| ApiError::from_body(&b))
            .unwrap_or_else(|_| ApiError::BadRequest(format!("HTTP {status}")));
        ClientError::RelayRefused { relay: self.address.to_string(), error }
    }

    fn parse_json<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T> {
        serde_json::from_slice(body).map_err(|e| self.protocol(e.to_string()))
    }

    fn protocol(&self, why: String) -> ClientError {
        ClientError::RelayProtocol { relay: self.address.to_string(), why }
    }

    fn unreachable(&self, why: &str) -> ClientError {
        ClientError::RelayUnreachable { relay: self.address.to_string(), why: why.to_owned() }
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| ClientError::InvalidInput { what: "request".into(), why: e.to_string() })
}

/// Opens the relay's WebSocket (`/v1/ws`) over a pinned TLS connection to one of its nodes.
/// A node that accepts TLS but refuses the upgrade (shutting down, say) is passed over.
pub async fn connect_ws(address: &RelayAddress) -> Result<WsStream> {
    let n = address.nodes().len();
    let mut failed = None;
    let mut error = None;
    for _ in 0..n {
        let (node, tls) = connect_any(address, failed).await?;
        let url = format!("wss://{}/v1/ws", address.nodes()[node].authority());
        match tokio_tungstenite::client_async(url, tls).await {
            Ok((ws, _)) => return Ok(ws),
            Err(e) => {
                error =
                    Some(ClientError::RelayUnreachable { relay: address.to_string(), why: e.to_string() });
                failed = Some(node);
            }
        }
    }
    Err(error.unwrap_or_else(|| ClientError::RelayUnreachable {
        relay: address.to_string(),
        why: "the address lists no node".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// L6: an answer is collected only up to its bound; one byte more is refused, whether
    /// the length is announced or streamed in pieces.
    #[test]
    fn a_relays_answer_is_collected_only_up_to_its_bound() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let body = |n: usize| Full::new(Bytes::from(vec![7u8; n]));
            assert_eq!(collect_at_most(body(1000), 1000).await.unwrap().len(), 1000);
            assert_eq!(collect_at_most(body(1001), 1000).await, Err(Answer::TooLarge));
            let pieces = (0..11).map(|_| {
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(vec![1u8; 100])))
            });
            let streamed = http_body_util::StreamBody::new(futures_util::stream::iter(pieces));
            assert_eq!(collect_at_most(streamed, 1000).await, Err(Answer::TooLarge));
        });
    }
}
