//! The local web app (`backchannel ui`): a second front end over the party's engine, beside
//! the CLI. It serves server-rendered pages (maud, which escapes every value it splices in)
//! and one small script of its own for live updates (server-sent events from
//! `Engine::subscribe`) and drafts; everything it serves is compiled into the binary.
//!
//! It listens on loopback only. The first load carries a token (printed by `backchannel ui`)
//! that is exchanged for an HttpOnly, SameSite=Strict cookie; every request must name one of
//! the app's own hosts (DNS rebinding), and every request that changes something must come from
//! the app's own origin. It holds no rule: every decision is the engine's, every word is ours.
//!
//! ```no_run
//! # async fn demo() -> Result<(), backchannel_web::WebError> {
//! let listener = backchannel_web::bind("127.0.0.1:0".parse().unwrap()).await?;
//! let ui = backchannel_web::start(listener, backchannel_web::Options::new("/tmp/alice".into())).await?;
//! println!("ui: {}", ui.url_with_token());
//! ui.stop().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod app;
mod archive;
mod assets;
mod guard;
mod layout;
mod live;
mod pages;
mod qr;
mod words;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use backchannel_client::{EngineConfig, Passphrase};
use tokio::net::TcpListener;

pub use guard::Token;

/// What can stop the app from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    #[error(
        "{0} is not a loopback address: the app serves this machine only (use 127.0.0.1:PORT or [::1]:PORT)"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {why}")]
    Listen { addr: SocketAddr, why: String },
    #[error("the app's token file {path}: {why}")]
    Token { path: String, why: String },
    #[error("{0}")]
    Engine(String),
}

/// How the app runs.
pub struct Options {
    pub home: PathBuf,
    pub engine: EngineConfig,
    /// Unlocks the party at start (the page asks otherwise).
    pub passphrase: Option<Passphrase>,
}

impl Options {
    pub fn new(home: PathBuf) -> Self {
        Self { home, engine: EngineConfig::default(), passphrase: None }
    }
}

/// Binds a loopback address; any other is refused.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, WebError> {
    if !addr.ip().is_loopback() {
        return Err(WebError::NotLoopback(addr));
    }
    TcpListener::bind(addr).await.map_err(|e| WebError::Listen { addr, why: e.to_string() })
}

/// The running app.
pub struct Ui {
    addr: SocketAddr,
    token: Token,
    app: Arc<app::App>,
    server: tokio::task::JoinHandle<()>,
}

impl Ui {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address to open first: it carries the token, which the page exchanges for a cookie.
    pub fn url_with_token(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.token.reveal())
    }

    /// Whether the party is unlocked (its engine running).
    pub fn unlocked(&self) -> bool {
        self.app.engine().is_ok()
    }

    /// Stops the engine and the server; open pages see the stream end and reconnect later.
    pub async fn stop(self) {
        self.app.stop().await;
        let _ = self.server.await;
    }
}

/// Starts the app on `listener` (from [`bind`]). The token lives in the party's home, so a
/// page left open reconnects after a restart.
pub async fn start(listener: TcpListener, options: Options) -> Result<Ui, WebError> {
    let addr = listener
        .local_addr()
        .map_err(|e| WebError::Listen { addr: ([127, 0, 0, 1], 0).into(), why: e.to_string() })?;
    let token = Token::load_or_create(&options.home)?;
    let passphrase = options.passphrase;
    let app = Arc::new(app::App::new(options.home, options.engine, token.clone(), addr));
    if let Some(passphrase) = passphrase {
        app.unlock_at_start(passphrase).await.map_err(|e| WebError::Engine(words::error(&e)))?;
    }
    let router = pages::router(app.clone());
    let stopping = app.stopping();
    let server = tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service).with_graceful_shutdown(stopping).await;
    });
    Ok(Ui { addr, token, app, server })
}
