//! What waits in the outbox, and what became of each copy a host was given: the types the
//! outbox (which sends) and delivery (which keeps each note's status) share.

use backchannel_proto::block::FrameId;
use backchannel_proto::message::Route;
use backchannel_wire::{QueueId, QueueSecret, RelayAddress};
use serde::{Deserialize, Serialize};

/// One outbound message: for whom, and (for items that keep their blocks) where they go. The
/// stored value beside it (see [`crate::store::Tx::outbox_push`]) is the message's frame, or,
/// for the handshake and items queued by earlier versions, its blocks.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct OutboxItem {
    /// The contact it is for, so a refusal can be shown in that conversation.
    pub contact: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_id: Option<QueueId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<QueueSecret>,
    /// Only in items queued before blocks had a column of their own.
    #[serde(default, rename = "blocks", deserialize_with = "blocks_b64::deserialize", skip_serializing)]
    pub legacy_blocks: Vec<Vec<u8>>,
    /// Set when the relay refused the item for a reason a retry cannot fix by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// The item keeps its frame (Olm and post-quantum layers), not blocks: they are cut for
    /// each of the contact's routes when it is delivered (the same frame id every time, so
    /// copies over several routes, or a resend after a crash, are taken in once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frame: bool,
    /// A Hello (blocks for one route of an invitation): its queue gone means the invitation
    /// was used.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hello: bool,
    /// A frame for one route only (a heartbeat or path test tests that route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<QueueId>,
    /// Tried once, then dropped whatever happened (a heartbeat is worth nothing late).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ephemeral: bool,
    /// One route storing it is enough (control messages; notes go over every route).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub any_route: bool,
    /// Hotline traffic: goes before anything else, and (a note) stays until its receipt
    /// comes, sent again over every route each time the bound passes without one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flash: bool,
    /// Kept until its receipt comes, for this long at a time (a hotline note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_ms: Option<u64>,
    /// The routes (by send id) that stored it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stored: Vec<QueueId>,
    /// Kept for its receipt: sent again after this time (ms) if none came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend_at: Option<u64>,
}

impl OutboxItem {
    /// An item whose stored value is its blocks for `route` (the handshake, queued whole).
    pub fn hello(contact: &str, route: &Route) -> Self {
        Self {
            contact: contact.to_owned(),
            relay: Some(route.relay.clone()),
            send_id: Some(route.send_id),
            secret: Some(route.send_secret.clone()),
            hello: true,
            ..Self::default()
        }
    }

    /// An item whose stored value is one frame for `contact`, for every route.
    pub fn frame(contact: &str) -> Self {
        Self { contact: contact.to_owned(), frame: true, ..Self::default() }
    }

    /// Waiting for its receipt, not for a host.
    pub fn awaiting_receipt(&self) -> bool {
        self.resend_at.is_some()
    }
}

/// What became of one copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Stored,
    /// The queue is not there (gone, or never was).
    Refused,
    /// Try again later: the host is down or busy.
    Later(String),
    /// Refused for a reason a retry cannot fix by itself.
    Held(String),
}

/// One copy's outcome, with what it was.
pub(crate) struct Done {
    pub n: i64,
    pub item: OutboxItem,
    pub frame_id: Option<FrameId>,
    pub relay: RelayAddress,
    pub send_id: QueueId,
    pub outcome: Outcome,
}

/// How items queued before blocks had a column of their own kept them: base64 in the JSON.
mod blocks_b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| STANDARD_NO_PAD.decode(t).map_err(serde::de::Error::custom)).collect()
    }
}
