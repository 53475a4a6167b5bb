//! Requests and answers of the relay API (see docs/protocol.md, "Relay API").
//!
//! Control messages are JSON; the bulk paths (send, fetch, WebSocket delivery) are binary so
//! that a 4 KiB block costs 4 KiB on the wire.

use serde::{Deserialize, Serialize};

use crate::codec::Reader;
use crate::{DecodeError, MAX_BATCH, QueueId, QueueSecret, SecretHash};

/// `POST /v1/queues`: the client keeps both secrets and shows the relay only their hashes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateQueueRequest {
    pub recv_hash: SecretHash,
    pub send_hash: SecretHash,
}

/// The relay's answer: two unlinkable-looking ids and the deployment's limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateQueueResponse {
    pub recv_id: QueueId,
    pub send_id: QueueId,
    pub block_size: usize,
    pub ttl_secs: u64,
    pub quota_blocks: u32,
}

/// One block for one queue, with the capability to put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendItem {
    pub send_id: QueueId,
    pub secret: QueueSecret,
    pub block: Vec<u8>,
}

/// `POST /v1/send` body: `u16 count`, then per item `send_id[16] secret[32] block[B]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendBatch {
    pub items: Vec<SendItem>,
}

impl SendBatch {
    pub fn encode(&self) -> Vec<u8> {
        let block_len = self.items.first().map_or(0, |i| i.block.len());
        let mut out = Vec::with_capacity(2 + self.items.len() * (48 + block_len));
        out.extend_from_slice(&(self.items.len() as u16).to_be_bytes());
        for item in &self.items {
            out.extend_from_slice(&item.send_id.0);
            out.extend_from_slice(&item.secret.0);
            out.extend_from_slice(&item.block);
        }
        out
    }

    /// Decodes a batch whose blocks must all be exactly `block_size` bytes.
    pub fn decode(bytes: &[u8], block_size: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let count = usize::from(r.u16()?);
        if count == 0 || count > MAX_BATCH {
            return Err(DecodeError::Invalid("batch size"));
        }
        if r.remaining() != count * (48 + block_size) {
            return Err(DecodeError::Invalid("block size"));
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let send_id = QueueId(r.array()?);
            let secret = QueueSecret(r.array()?);
            let block = r.take(block_size)?.to_vec();
            items.push(SendItem { send_id, secret, block });
        }
        r.finish()?;
        Ok(Self { items })
    }
}

/// What became of one item of a send batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendOutcome {
    /// Durably stored: the relay will deliver it until the recipient acknowledges it.
    Stored,
    /// No such queue, or the secret does not open it (deliberately not told apart).
    Refused,
    /// The queue holds its quota of unacknowledged blocks; try again later.
    QueueFull,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResponse {
    pub results: Vec<SendOutcome>,
}

/// One stored block as delivered to the recipient; `seq` is the relay's order in the queue
/// and the handle for acknowledging it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub seq: u64,
    pub block: Vec<u8>,
}

/// `GET /v1/queues/{recv_id}/blocks` body: `u32 block_size, u16 count`, then `seq u64, block`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchResponse {
    pub items: Vec<Delivered>,
}

impl FetchResponse {
    pub fn encode(&self, block_size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + self.items.len() * (8 + block_size));
        out.extend_from_slice(&(block_size as u32).to_be_bytes());
        out.extend_from_slice(&(self.items.len() as u16).to_be_bytes());
        for item in &self.items {
            out.extend_from_slice(&item.seq.to_be_bytes());
            out.extend_from_slice(&item.block);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let block_size = r.u32()? as usize;
        let count = usize::from(r.u16()?);
        if count > MAX_BATCH || r.remaining() != count * (8 + block_size) {
            return Err(DecodeError::Invalid("fetch answer length"));
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let seq = r.u64()?;
            items.push(Delivered { seq, block: r.take(block_size)?.to_vec() });
        }
        r.finish()?;
        Ok(Self { items })
    }
}

/// `POST /v1/queues/{recv_id}/ack`: delete these blocks; unknown seqs are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRequest {
    pub seqs: Vec<u64>,
}

/// Text frames a client sends on `GET /v1/ws`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum WsClientMessage {
    /// `secret` is the receive secret's hex (zeroed on drop, redacted in `Debug`).
    Subscribe {
        recv_id: QueueId,
        secret: crate::SecretHex,
    },
    Ack {
        recv_id: QueueId,
        seqs: Vec<u64>,
    },
}

/// Text frames the relay sends on `GET /v1/ws`; blocks come as binary frames
/// (see [`ws_delivery_encode`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum WsServerMessage {
    Subscribed {
        recv_id: QueueId,
    },
    Acked {
        recv_id: QueueId,
        deleted: u64,
    },
    /// `recv_id` names the queue when the error concerns one (a failed subscription or
    /// acknowledgement), so a client knows what to retry.
    Error {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recv_id: Option<QueueId>,
    },
}

/// Binary WebSocket frame: `recv_id[16] seq u64 block`.
pub fn ws_delivery_encode(recv_id: &QueueId, item: &Delivered) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + item.block.len());
    out.extend_from_slice(&recv_id.0);
    out.extend_from_slice(&item.seq.to_be_bytes());
    out.extend_from_slice(&item.block);
    out
}

pub fn ws_delivery_decode(bytes: &[u8]) -> Result<(QueueId, Delivered), DecodeError> {
    let mut r = Reader::new(bytes);
    let recv_id = QueueId(r.array()?);
    let seq = r.u64()?;
    let block = r.take(r.remaining())?.to_vec();
    Ok((recv_id, Delivered { seq, block }))
}

/// Every error the relay API can answer with. The relay maps each to one HTTP status in one
/// place; messages to peers stay vague about secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not authorized for this queue")]
    Unauthorized,
    #[error("request too large: {0}")]
    TooLarge(String),
    #[error("queue is full: acknowledge blocks before sending more")]
    QueueFull,
    #[error("too many requests: slow down")]
    RateLimited,
    #[error("relay cannot store right now: {0}")]
    Unavailable(String),
    #[error("relay internal error")]
    Internal,
}

/// The JSON body of every error answer: `{"error": code, "message": text}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error: String,
    pub message: String,
}

impl ApiError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::TooLarge(_) => "too_large",
            Self::QueueFull => "queue_full",
            Self::RateLimited => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal => "internal",
        }
    }

    pub fn body(&self) -> ApiErrorBody {
        ApiErrorBody { error: self.code().to_owned(), message: self.to_string() }
    }

    /// Rebuilds the error a relay answered with, keeping its message.
    pub fn from_body(body: &ApiErrorBody) -> Self {
        let detail = |prefix: &str| {
            let m = body.message.as_str();
            m.strip_prefix(prefix).unwrap_or(m).to_owned()
        };
        match body.error.as_str() {
            "bad_request" => Self::BadRequest(detail("bad request: ")),
            "unauthorized" => Self::Unauthorized,
            "too_large" => Self::TooLarge(detail("request too large: ")),
            "queue_full" => Self::QueueFull,
            "rate_limited" => Self::RateLimited,
            "unavailable" => Self::Unavailable(detail("relay cannot store right now: ")),
            _ => Self::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(byte: u8, block_size: usize) -> SendItem {
        SendItem {
            send_id: QueueId([byte; 16]),
            secret: QueueSecret([byte; 32]),
            block: vec![byte; block_size],
        }
    }

    #[test]
    fn send_batch_round_trip_and_wrong_block_size() {
        let batch = SendBatch { items: vec![item(1, 1024), item(2, 1024)] };
        let bytes = batch.encode();
        assert_eq!(SendBatch::decode(&bytes, 1024), Ok(batch));
        assert!(SendBatch::decode(&bytes, 2048).is_err());
        assert!(SendBatch::decode(&bytes[..bytes.len() - 1], 1024).is_err());
        assert!(SendBatch::decode(&[0, 0], 1024).is_err(), "empty batch");
    }

    #[test]
    fn fetch_round_trip() {
        let resp = FetchResponse { items: vec![Delivered { seq: 9, block: vec![3; 1024] }] };
        assert_eq!(FetchResponse::decode(&resp.encode(1024)), Ok(resp));
    }

    #[test]
    fn ws_messages_are_tagged_json() {
        let m = WsClientMessage::Ack { recv_id: QueueId([0; 16]), seqs: vec![1, 2] };
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains("\"op\":\"ack\""), "{text}");
        assert_eq!(serde_json::from_str::<WsClientMessage>(&text).unwrap(), m);
        let d = Delivered { seq: 5, block: vec![1, 2, 3] };
        assert_eq!(ws_delivery_decode(&ws_delivery_encode(&QueueId([4; 16]), &d)), Ok((QueueId([4; 16]), d)));
    }

    #[test]
    fn error_body_round_trips() {
        for e in [ApiError::QueueFull, ApiError::TooLarge("x".into()), ApiError::Unauthorized] {
            assert_eq!(ApiError::from_body(&e.body()), e);
        }
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let _ = SendBatch::decode(&bytes, 1024);
            let _ = FetchResponse::decode(&bytes);
            let _ = ws_delivery_decode(&bytes);
        }
    }
}
