//! Connections to relays: pinned TLS, HTTP requests, WebSocket links, and the pool that keeps
//! them open across operations (a TLS handshake per note would dominate).

mod transport;

use std::collections::HashMap;

use backchannel_wire::RelayAddress;

pub use transport::{RelayClient, WsStream, connect_tls, connect_ws};

use crate::error::Result;

/// Open connections, one per relay, each used by one request at a time.
#[derive(Default)]
pub(crate) struct Pool {
    clients: tokio::sync::Mutex<HashMap<String, RelayClient>>,
}

impl Pool {
    /// A connection to `relay`: a kept one if it is still open, else a new one. Give it back
    /// with [`Pool::keep`] after a successful exchange.
    pub async fn take(&self, relay: &RelayAddress) -> Result<RelayClient> {
        let kept = self.clients.lock().await.remove(&relay.to_string());
        match kept {
            Some(client) if !client.is_closed() => Ok(client),
            _ => RelayClient::connect(relay).await,
        }
    }

    pub async fn keep(&self, client: RelayClient) {
        if !client.is_closed() {
            self.clients.lock().await.insert(client.address().to_string(), client);
        }
    }
}
