//! The server core, shaped like mini-redis: [`run`] accepts connections until a shutdown
//! future completes, holds a semaphore slot per connection, then stops accepting, tells every
//! connection to finish, and waits (up to a grace period) for them. [`start`] is the
//! convenient front: data directory, certificate, store, bind, then `run` in a task.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::{IntoResponse, Response};
use backchannel_wire::{ApiError, QueueId, RelayAddress};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tower_service::Service as _;

use crate::error::{ApiFailure, Rejected, io_reason};
use crate::lean_tls::LeanTls;
use crate::limits::TokenBucket;
use crate::metrics::Metrics;
use crate::notify::MAILBOX_BLOCKS;
use crate::routes::{self, AppState};
use crate::store::{AnyStore, StoreOptions, StoreStats, Wake, unix_now};
use crate::{RelayConfig, RelayError, RelayOptions, load_or_create_tls};

/// Serves the relay API on `listener` until `shutdown` completes, then shuts down gracefully.
/// The store is left open: whoever opened it closes it.
pub async fn run(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    store: AnyStore,
    config: RelayConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    let metrics = match config.metrics_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    serve(listener, metrics, tls, store, config, shutdown).await
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, RelayError> {
    TcpListener::bind(addr).await.map_err(|e| RelayError::Bind { addr, reason: io_reason(&e) })
}

/// [`run`], with the metrics listener (if any) already bound.
async fn serve(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    tls: Arc<rustls::ServerConfig>,
    store: AnyStore,
    config: RelayConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    config.validate()?;
    let (stop, stopping) = watch::channel(false);
    let grace = config.shutdown_grace;
    let new_queues =
        TokenBucket::new(config.queue_creations_per_sec, config.queue_creation_burst, Instant::now());
    let state = AppState {
        hub: Arc::clone(store.hub()),
        store,
        config: Arc::new(config),
        metrics: Arc::new(Metrics::default()),
        stopping,
        new_queues: Arc::new(Mutex::new(new_queues)),
    };
    let purge = tokio::spawn(purge_loop(state.clone()));
    let scrapes = metrics_listener.map(|l| tokio::spawn(serve_metrics(l, state.clone())));
    let wakes = state.store.wakes().map(|rx| tokio::spawn(forward_wakes(rx, state.clone())));
    // With several nodes, a wake-up dies with a node killed between its commit and its
    // notification: once a second, compare the followed queues with the store.
    let sweep = state.store.wakes_are_shared().then(|| tokio::spawn(sweep_loop(state.clone())));
    // Every connection holds a clone; when all are gone, `recv` returns `None`.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let acceptor = Acceptor { tls, router: routes::router(state.clone()), state, alive };
    let result = tokio::select! {
        result = acceptor.accept_loop(&listener) => result,
        () = shutdown => Ok(()),
    };
    drop(listener);
    stop.send_replace(true);
    drop(acceptor);
    if tokio::time::timeout(grace, all_closed.recv()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; leaving them");
    }
    for task in std::iter::once(purge).chain(wakes).chain(scrapes).chain(sweep) {
        task.abort();
        let _ = task.await;
    }
    result
}

/// How often a node sharing its store compares its followers with the store.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What the accept loop hands each connection.
struct Acceptor {
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    state: AppState,
    alive: mpsc::Sender<()>,
}

impl Acceptor {
    async fn accept_loop(&self, listener: &TcpListener) -> Result<(), RelayError> {
        let slots = Arc::new(Semaphore::new(self.state.config.max_connections));
        loop {
            // Wait for a free slot before accepting: excess clients wait in the backlog.
            let slot = Arc::clone(&slots)
                .acquire_owned()
                .await
                .map_err(|_| RelayError::Server("connection limit closed".into()))?;
            let tcp = match listener.accept().await {
                // The peer's address is not kept, and logged only if the operator asked.
                Ok((tcp, peer)) => {
                    if self.state.config.log_client_ips {
                        tracing::info!(client = %peer, "connection accepted");
                    }
                    tcp
                }
                Err(err) => {
                    // Usually out of file descriptors: wait for some to free up.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let ctx = Arc::new(ConnCtx::new(&self.state, slot, self.alive.clone()));
            let (tls, router) = (Arc::clone(&self.tls), self.router.clone());
            let stopping = self.state.stopping.clone();
            let timeouts = (self.state.config.handshake_timeout, self.state.config.header_timeout);
            tokio::spawn(serve_connection(tcp, tls, timeouts, router, ctx, stopping));
        }
    }
}

/// Per-connection state: its rate limit, its slot, and the shutdown tracker. A WebSocket
/// keeps it alive after the HTTP exchange ends, so the slot stays taken while it is open.
pub(crate) struct ConnCtx {
    bucket: Mutex<TokenBucket>,
    metrics: Arc<Metrics>,
    _slot: OwnedSemaphorePermit,
    _alive: mpsc::Sender<()>,
}

impl ConnCtx {
    fn new(state: &AppState, slot: OwnedSemaphorePermit, alive: mpsc::Sender<()>) -> Self {
        state.metrics.connection_opened();
        let c = &state.config;
        Self {
            bucket: Mutex::new(TokenBucket::new(c.rate_per_sec, c.rate_burst, Instant::now())),
            metrics: Arc::clone(&state.metrics),
            _slot: slot,
            _alive: alive,
        }
    }

    /// Takes one request's worth from the connection's rate limit.
    pub(crate) fn allow(&self) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        bucket.try_take(Instant::now())
    }
}

impl Drop for ConnCtx {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

async fn serve_connection(
    tcp: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    (handshake, header_timeout): (Duration, Duration),
    router: Router,
    ctx: Arc<ConnCtx>,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let stream = match tokio::time::timeout(handshake, LeanTls::accept(tcp, tls)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return tracing::debug!(error = %err, "TLS handshake failed"),
        Err(_) => return tracing::debug!("TLS handshake timed out"),
    };
    let service = hyper::service::service_fn(move |req| handle(req, router.clone(), Arc::clone(&ctx)));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        }
        () = stopped(&mut stopping) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Applies the connection's rate limit, runs the router, and counts rejections by reason.
async fn handle(
    mut req: hyper::Request<Incoming>,
    mut router: Router,
    ctx: Arc<ConnCtx>,
) -> Result<Response, Infallible> {
    if !ctx.allow() {
        ctx.metrics.reject(ApiError::RateLimited.code(), 1);
        return Ok(ApiFailure(ApiError::RateLimited).into_response());
    }
    req.extensions_mut().insert(Arc::clone(&ctx));
    let response = router.call(req).await?;
    if let Some(Rejected(reason)) = response.extensions().get::<Rejected>() {
        ctx.metrics.reject(reason, 1);
    }
    Ok(response)
}

/// Serves `/metrics` over plain HTTP on the metrics listener until the relay stops.
async fn serve_metrics(listener: TcpListener, state: AppState) {
    let mut stopping = state.stopping.clone();
    let app = routes::metrics_router(state);
    let served =
        axum::serve(listener, app).with_graceful_shutdown(async move { stopped(&mut stopping).await });
    if let Err(err) = served.await {
        tracing::warn!(error = %err, "the metrics listener stopped");
    }
}

/// Most queues named in one read of blocks committed through other nodes.
const TAIL_QUEUES: usize = 256;

/// Passes the store's wake-ups (blocks committed through other relay nodes) to followers
/// here. The wake-ups waiting are taken together and their queues read in one query, after
/// the last seq this node's followers saw; the blocks are handed over as this node's own
/// commits are. A queue with a full page read, or a read that failed, falls back to its
/// followers reading the store for themselves.
async fn forward_wakes(mut wakes: mpsc::Receiver<Wake>, state: AppState) {
    while let Some(first) = wakes.recv().await {
        let (mut ids, mut all) = (Vec::new(), false);
        let mut next = Some(first);
        while let Some(wake) = next {
            match wake {
                Wake::Queue(recv_id) => ids.push(recv_id),
                Wake::All => all = true,
            }
            next = wakes.try_recv().ok();
        }
        if all {
            state.hub.wake_all();
            continue;
        }
        ids.sort_unstable();
        ids.dedup();
        for wanted in state.hub.seen_of(&ids).chunks(TAIL_QUEUES) {
            match state.store.tail(wanted, MAILBOX_BLOCKS).await {
                Ok(Some(blocks)) => {
                    state.hub.committed(&blocks);
                    for (recv_id, _) in wanted {
                        if blocks.iter().filter(|c| c.recv_id == *recv_id).count() >= MAILBOX_BLOCKS {
                            state.hub.wake(recv_id);
                        }
                    }
                }
                Ok(None) | Err(_) => {
                    for (recv_id, _) in wanted {
                        state.hub.wake(recv_id);
                    }
                }
            }
        }
    }
}

/// Once a second: wakes the followers of any queue whose last seq in the store is past the
/// highest they were handed or read (one query for all followed queues of this node).
async fn sweep_loop(state: AppState) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = state.stopping.clone();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut stopping) => return,
        }
        let followed = state.hub.followed();
        if followed.is_empty() {
            continue;
        }
        let ids: Vec<QueueId> = followed.iter().map(|(id, _)| *id).collect();
        let Ok(Some(latest)) = state.store.latest_seqs(&ids).await else { continue };
        let seen: std::collections::HashMap<QueueId, u64> = followed.into_iter().collect();
        for (id, last) in latest {
            if seen.get(&id).is_some_and(|s| last > *s) {
                state.hub.wake(&id);
            }
        }
    }
}

/// Every `purge_interval`: delete expired blocks and idle queues, forget unfollowed queues.
async fn purge_loop(state: AppState) {
    let mut tick = tokio::time::interval(state.config.purge_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = state.stopping.clone();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut stopping) => return,
        }
        let cutoff = unix_now().saturating_sub(state.config.ttl_secs());
        match state.store.purge_expired(cutoff).await {
            Ok(p) if p.blocks + p.queues > 0 => {
                tracing::info!(blocks = p.blocks, queues = p.queues, "purged expired blocks and idle queues");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "purge of expired blocks failed"),
        }
        state.hub.prune();
    }
}

/// Completes once the relay has begun shutting down.
pub(crate) async fn stopped(stopping: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, not held across the caller's awaits.
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// A relay started by [`start`].
pub struct RunningRelay {
    address: RelayAddress,
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    store: AnyStore,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), RelayError>>,
}

impl RunningRelay {
    /// The address clients use: `bcr://HOST:PORT#FINGERPRINT`.
    pub fn address(&self) -> &RelayAddress {
        &self.address
    }

    /// The socket address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/metrics` is served apart from the public port, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub async fn stats(&self) -> Result<StoreStats, RelayError> {
        Ok(self.store.stats().await?)
    }

    /// Stops accepting, lets open connections finish (up to the grace period), closes the store.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "relay stopped with an error"),
            Err(err) => tracing::error!(error = %err, "relay task failed"),
        }
        self.store.close().await;
    }
}

/// Starts a relay: creates the data directory, loads or makes the TLS certificate, binds,
/// opens the store (running migrations), writes `DATA_DIR/address`, and serves in a task.
pub async fn start(opts: RelayOptions) -> Result<RunningRelay, RelayError> {
    opts.config.validate()?;
    create_data_dir(&opts.data_dir)?;
    let host = opts.advertised_host();
    let names =
        if host == "localhost" { vec![host.clone()] } else { vec![host.clone(), "localhost".to_owned()] };
    let (tls, cert) = match (&opts.tls.cert, &opts.tls.key) {
        (None, None) => load_or_create_tls(&opts.data_dir, &names)?,
        (Some(cert), Some(key)) => crate::tls::load_pair(cert, key)?,
        _ => return Err(RelayError::Config("give both the TLS certificate and its key, or neither".into())),
    };
    let options = StoreOptions {
        scrub_deleted: opts.config.scrub_deleted_blocks,
        max_bytes: opts.config.max_store_bytes,
    };
    // The store first: a port that accepts connections before the store is open would keep
    // clients waiting on this node instead of trying another.
    let store = AnyStore::open(&opts.store, &opts.data_dir, options).await?;
    let bound = async {
        let listener = bind(opts.listen).await?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| RelayError::Bind { addr: opts.listen, reason: io_reason(&e) })?;
        let address = relay_address(&opts, host, local_addr.port(), &cert, &names)?;
        let metrics_listener = match opts.config.metrics_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        prepare(&store, &opts, &address).await?;
        Ok::<_, RelayError>((listener, local_addr, address, metrics_listener))
    };
    let (listener, local_addr, address, metrics_listener) = match bound.await {
        Ok(bound) => bound,
        Err(err) => {
            store.close().await;
            return Err(err);
        }
    };
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = serve(listener, metrics_listener, tls, store.clone(), opts.config, async move {
        let _ = stopped.await;
    });
    let task = tokio::spawn(serving);
    tracing::info!(%address, "relay listening");
    Ok(RunningRelay { address, local_addr, metrics_addr, store, stop, task })
}

/// The address clients are given: this node (or every node of the host), the certificate's
/// fingerprint, and the next certificate's if there is one.
fn relay_address(
    opts: &RelayOptions,
    host: String,
    port: u16,
    cert: &[u8],
    names: &[String],
) -> Result<RelayAddress, RelayError> {
    let mut address = RelayAddress::for_certificate(host, port, cert);
    if !opts.nodes.is_empty() {
        address = address.with_nodes(opts.nodes.clone()).map_err(|e| RelayError::Config(e.to_string()))?;
    }
    match (&opts.tls.next_cert, &opts.tls.next_key) {
        (None, None) => {}
        (Some(c), Some(k)) => {
            address = address.with_next_certificate(&crate::tls::load_or_create_next(c, k, names)?)
        }
        _ => {
            return Err(RelayError::Config(
                "give both the next TLS certificate and its key, or neither".into(),
            ));
        }
    }
    Ok(address)
}

/// Checks the store against the configuration and publishes the address.
async fn prepare(store: &AnyStore, opts: &RelayOptions, address: &RelayAddress) -> Result<(), RelayError> {
    let want = opts.config.block_size;
    if let Some(held) = store.stored_block_size().await?
        && held != want
    {
        return Err(RelayError::Config(format!(
            "the store holds blocks of {held} bytes but the block size is set to {want}; \
             use block size {held}, or a new data directory"
        )));
    }
    // Nodes sharing a store must agree: a block stored through one is fetched through another.
    let held = store.setting("block_size", want.to_string()).await?;
    if held != want.to_string() {
        return Err(RelayError::Config(format!(
            "this store belongs to a deployment whose block size is {held} bytes, but this node is set to \
             {want}: every node of a host must use the same block size (start this one with block size \
             {held}, or give it a store of its own)"
        )));
    }
    write_address(&opts.data_dir, address)
}

fn create_data_dir(dir: &Path) -> Result<(), RelayError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    // Only the relay's user may read its key and database.
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| RelayError::DataDir { path: dir.to_owned(), reason: io_reason(&e) })
}

/// Writes `DIR/address` whole or not at all (write a temporary file, then rename).
fn write_address(dir: &Path, address: &RelayAddress) -> Result<(), RelayError> {
    let (path, tmp) = (dir.join("address"), dir.join("address.tmp"));
    let fail = |e: std::io::Error| RelayError::WriteFile { path: path.clone(), reason: io_reason(&e) };
    std::fs::write(&tmp, format!("{address}\n")).map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)
}

/// Completes on Ctrl-C or, on Unix, SIGTERM: what a relay binary waits for before
/// [`RunningRelay::shutdown`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
