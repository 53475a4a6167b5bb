//! The app's state: the party's home, and its engine once unlocked (then run until the app
//! stops, answering the home's socket so that CLI commands go through it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use backchannel_client::{ClientError, Engine, EngineConfig, Passphrase};
use tokio::sync::watch;

use crate::guard::Token;

/// How long a start waits for a home another app is letting go of.
const LOCK_WAIT: Duration = Duration::from_secs(10);

pub(crate) struct App {
    pub home: PathBuf,
    config: EngineConfig,
    engine: RwLock<Option<Engine>>,
    /// One unlock or creation at a time (each costs an Argon2id derivation).
    unlocking: tokio::sync::Mutex<()>,
    pub token: Token,
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    runner: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The page asked for a party that is not unlocked yet.
pub(crate) struct Locked;

impl App {
    pub fn new(home: PathBuf, config: EngineConfig, token: Token, addr: SocketAddr) -> Self {
        Self {
            home,
            config,
            engine: RwLock::new(None),
            unlocking: tokio::sync::Mutex::new(()),
            token,
            addr,
            stop: watch::channel(false).0,
            runner: Mutex::new(None),
        }
    }

    pub fn engine(&self) -> Result<Engine, Locked> {
        self.engine.read().ok().and_then(|e| e.clone()).ok_or(Locked)
    }

    /// Whether the home holds a party already (else the first screen creates one).
    pub fn exists(&self) -> bool {
        Engine::exists(&self.home)
    }

    /// Resolves when the app is told to stop.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// Stops the engine; the app lets go of it, so the home is free once its last
    /// connection has ended.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        if let Ok(mut engine) = self.engine.write() {
            engine.take();
        }
        let runner = self.runner.lock().ok().and_then(|mut r| r.take());
        if let Some(runner) = runner {
            let _ = runner.await;
        }
    }

    /// Unlocks at start (with a passphrase from the environment). A home still held by an
    /// app that is stopping (a restart) is waited for, as a CLI command waits for a short one.
    pub async fn unlock_at_start(&self, passphrase: Passphrase) -> Result<(), ClientError> {
        if !self.exists() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        let passphrase = Arc::new(passphrase);
        loop {
            match self.open_shared(passphrase.clone()).await {
                Err(ClientError::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// Opens the party with `passphrase` and starts its engine.
    pub async fn unlock(&self, passphrase: Passphrase) -> Result<(), ClientError> {
        self.open_shared(Arc::new(passphrase)).await
    }

    async fn open_shared(&self, passphrase: Arc<Passphrase>) -> Result<(), ClientError> {
        self.open_with(move |home, config| Engine::open(&home, &passphrase, config)).await
    }

    /// Creates the party and starts its engine.
    pub async fn create(
        &self,
        passphrase: Passphrase,
        name: String,
        side: String,
    ) -> Result<(), ClientError> {
        self.open_with(move |home, config| Engine::init(&home, &passphrase, &name, &side, config)).await
    }

    async fn open_with(
        &self,
        open: impl FnOnce(PathBuf, EngineConfig) -> Result<Engine, ClientError> + Send + 'static,
    ) -> Result<(), ClientError> {
        let _one = self.unlocking.lock().await;
        if self.engine().is_ok() {
            return Ok(());
        }
        let (home, config) = (self.home.clone(), self.config.clone());
        let engine = tokio::task::spawn_blocking(move || open(home, config))
            .await
            .map_err(|e| ClientError::Local { why: e.to_string() })??;
        self.run(engine.clone());
        if let Ok(mut slot) = self.engine.write() {
            *slot = Some(engine);
        }
        Ok(())
    }

    /// Runs the engine until the app stops; other processes' commands go through it.
    fn run(&self, engine: Engine) {
        let stopping = self.stopping();
        let task = tokio::spawn(async move {
            if let Err(e) = backchannel_client::run_serving(&engine, stopping).await {
                tracing::warn!("the engine stopped: {e}");
            }
        });
        if let Ok(mut runner) = self.runner.lock() {
            *runner = Some(task);
        }
    }
}
