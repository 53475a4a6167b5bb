//! What an operator can tune, with defaults that suit a small deployment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use backchannel_wire::{DEFAULT_BLOCK_SIZE, MAX_BATCH, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE};

use crate::RelayError;

/// Limits and timings of a relay. Every limit a peer can hit has a clear error.
/// Build one with struct update syntax: `RelayConfig { ttl, ..RelayConfig::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Exact size of every stored block; all envelopes look alike to the host.
    pub block_size: usize,
    /// Blocks older than this are deleted, and so are queues idle this long.
    pub ttl: Duration,
    /// Most unacknowledged blocks one queue may hold.
    pub quota_blocks: u32,
    /// Most connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Requests (and WebSocket messages) per second one connection may make, on average...
    pub rate_per_sec: u32,
    /// ...and in a burst.
    pub rate_burst: u32,
    /// Queues the whole relay creates per second, on average, whatever the number of
    /// connections asking (a flood from many connections is refused with `429`)...
    pub queue_creations_per_sec: u32,
    /// ...and in a burst.
    pub queue_creation_burst: u32,
    /// How often expired blocks and idle queues are purged.
    pub purge_interval: Duration,
    /// Most queues one WebSocket may follow.
    pub max_subscriptions: usize,
    /// A client that has not finished its TLS handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// A client must send a request's headers within this time; it also bounds how long a
    /// kept-alive connection may sit idle between requests.
    pub header_timeout: Duration,
    /// A request body must have arrived whole within this time after its headers; a client
    /// that trickles it (or stops) gets `400` and loses the connection, freeing its slot.
    pub body_timeout: Duration,
    /// How long shutdown waits for open connections to finish.
    pub shutdown_grace: Duration,
    /// Zero deleted blocks in the SQLite file; see [`crate::store::StoreOptions`] for the cost.
    pub scrub_deleted_blocks: bool,
    /// Embedded store only: the most bytes its database may hold; past it sends are refused
    /// as on a full disk (`503`). `None`: as much as the disk holds.
    pub max_store_bytes: Option<u64>,
    /// Serve `/metrics` (plain HTTP) on this address, apart from the public port.
    pub metrics_listen: Option<SocketAddr>,
    /// Also serve `/metrics` on the public port, to requests bearing this token. Without it
    /// (and by default) the public port has no `/metrics`.
    pub metrics_token: Option<MetricsToken>,
    /// Log each client's address when it connects (off: the relay keeps no client address).
    pub log_client_ips: bool,
}

/// A bearer token that opens `/metrics` on the public port. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// A token of at least 16 characters (surrounding whitespace, such as a file's final
    /// newline, is dropped).
    pub fn new(text: &str) -> Result<Self, RelayError> {
        let text = text.trim();
        if text.len() < 16 || !text.chars().all(|c| c.is_ascii_graphic()) {
            return Err(RelayError::Config(
                "the metrics token must be at least 16 printable characters without spaces".into(),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// True when `presented` is the token (compared by hash, so the time taken says nothing
    /// about how much of it matched).
    pub(crate) fn admits(&self, presented: &str) -> bool {
        use sha2::Digest as _;
        sha2::Sha256::digest(self.0.as_bytes()) == sha2::Sha256::digest(presented.as_bytes())
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(<redacted>)")
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            block_size: DEFAULT_BLOCK_SIZE,
            ttl: Duration::from_secs(14 * 24 * 3600),
            quota_blocks: 10_000,
            max_connections: 1024,
            rate_per_sec: 2_000,
            rate_burst: 4_000,
            queue_creations_per_sec: 100,
            queue_creation_burst: 1_000,
            purge_interval: Duration::from_secs(60),
            max_subscriptions: 1024,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            scrub_deleted_blocks: false,
            max_store_bytes: None,
            metrics_listen: None,
            metrics_token: None,
            log_client_ips: false,
        }
    }
}

impl RelayConfig {
    /// Checks every limit, naming the first that is out of range.
    pub fn validate(&self) -> Result<(), RelayError> {
        let bad = |what: String| Err(RelayError::Config(what));
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&self.block_size) {
            return bad(format!(
                "block size {} is outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE} bytes",
                self.block_size
            ));
        }
        if self.ttl < Duration::from_secs(1) {
            return bad("the TTL must be at least one second".into());
        }
        if self.quota_blocks == 0 || self.max_connections == 0 || self.max_subscriptions == 0 {
            return bad("the queue quota, connection limit and subscription limit must be above zero".into());
        }
        if self.rate_per_sec == 0 || self.rate_burst == 0 {
            return bad("the request rate and burst must be above zero".into());
        }
        if self.queue_creations_per_sec == 0 || self.queue_creation_burst == 0 {
            return bad("the queue creation rate and burst must be above zero".into());
        }
        if self.handshake_timeout.is_zero() || self.header_timeout.is_zero() || self.body_timeout.is_zero() {
            return bad("the handshake, header and body timeouts must be above zero".into());
        }
        if self.purge_interval.is_zero() {
            return bad("the purge interval must be above zero".into());
        }
        Ok(())
    }

    /// Largest `POST /v1/send` body: a full batch of blocks of the configured size.
    pub fn max_send_body(&self) -> usize {
        2 + MAX_BATCH * (16 + 32 + self.block_size)
    }

    /// The TTL in whole seconds, as told to clients.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs()
    }
}

/// Which engine holds the queues.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// An embedded SQLite file, `DATA_DIR/relay.db`.
    Sqlite,
    /// A PostgreSQL server (URL or `key=value` connection string), for several relay nodes.
    Postgres(String),
}

impl FromStr for StoreSpec {
    type Err = RelayError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("sqlite") {
            Ok(Self::Sqlite)
        } else if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(Self::Postgres(text.to_owned()))
        } else {
            Err(RelayError::Config("the store is `sqlite` or a `postgres://user@host/dbname` URL".to_owned()))
        }
    }
}

/// Shows the engine without any password a URL may carry.
impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite => f.write_str("Sqlite"),
            Self::Postgres(url) => write!(f, "Postgres({})", redact_password(url)),
        }
    }
}

/// A connection string fit for logs and error messages: the password is replaced.
pub(crate) fn redact_password(conn: &str) -> String {
    if let Some((scheme, rest)) = conn.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@')
            && let Some((user, _)) = userinfo.split_once(':')
        {
            return format!("{scheme}://{user}:***@{host}");
        }
        return conn.to_owned();
    }
    conn.split_whitespace()
        .map(|kv| if kv.starts_with("password=") { "password=***" } else { kv })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the relay's certificate and key are, and the certificate it will rotate to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate and key (DER). `None`: `cert.der` and `key.der` in the data directory,
    /// made on first start. Given paths must exist (the nodes of a host share one pair).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The next certificate (DER), whose fingerprint joins the relay address so the address
    /// outlives the rotation to it. Made, with `next_key`, if both are missing.
    pub next_cert: Option<PathBuf>,
    pub next_key: Option<PathBuf>,
}

/// Everything [`crate::start`] needs.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreSpec,
    /// The host name or IP clients should dial; defaults to the listen IP.
    pub public_host: Option<String>,
    /// Every node of this host, as clients dial them, in the order they should try them; the
    /// relay address lists them all. Empty: this node alone.
    pub nodes: Vec<backchannel_wire::RelayNode>,
    pub tls: TlsFiles,
    pub config: RelayConfig,
}

impl RelayOptions {
    /// A relay on `listen` keeping its files in `data_dir`, with SQLite and default limits.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            data_dir: data_dir.into(),
            store: StoreSpec::Sqlite,
            public_host: None,
            nodes: Vec::new(),
            tls: TlsFiles::default(),
            config: RelayConfig::default(),
        }
    }

    /// The host name put in the relay address: the public host, else the listen IP, with a
    /// wildcard IP replaced by loopback so the address works on this machine.
    pub fn advertised_host(&self) -> String {
        if let Some(host) = &self.public_host {
            return host.clone();
        }
        match self.listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
            IpAddr::V6(ip) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.to_string(),
            ip => ip.to_string(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_design() {
        let c = RelayConfig::default();
        c.validate().unwrap();
        assert_eq!(c.block_size, 4096);
        assert_eq!(c.ttl_secs(), 14 * 24 * 3600);
        assert_eq!(c.max_send_body(), 2 + 1024 * (48 + 4096));
    }

    #[test]
    fn bad_limits_are_named() {
        let c = RelayConfig { block_size: 100, ..RelayConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("block size 100"));
        let c = RelayConfig { quota_blocks: 0, ..RelayConfig::default() };
        assert!(c.validate().is_err());
        let c = RelayConfig { header_timeout: Duration::ZERO, ..RelayConfig::default() };
        assert!(c.validate().unwrap_err().to_string().contains("timeouts"));
    }

    #[test]
    fn store_spec_parses_and_hides_passwords() {
        assert_eq!("sqlite".parse::<StoreSpec>().unwrap(), StoreSpec::Sqlite);
        let pg: StoreSpec = "postgres://bc:hunter2@db/relay".parse().unwrap();
        assert_eq!(pg, StoreSpec::Postgres("postgres://bc:hunter2@db/relay".into()));
        assert!(!format!("{pg:?}").contains("hunter2"));
        assert!("postgresql://db/relay".parse::<StoreSpec>().is_ok());
        assert!("mysql://db".parse::<StoreSpec>().is_err());
        assert_eq!(redact_password("host=x password=p user=u"), "host=x password=*** user=u");
    }

    #[test]
    fn metrics_tokens_are_checked_and_never_printed() {
        assert!(MetricsToken::new("short").is_err());
        assert!(MetricsToken::new("has a space in it, long enough").is_err());
        let t = MetricsToken::new("s3cret-token-0123456789\n").unwrap();
        assert!(t.admits("s3cret-token-0123456789"));
        assert!(!t.admits("s3cret-token-012345678"));
        assert!(!format!("{t:?}").contains("s3cret"));
        let c = RelayConfig { metrics_token: Some(t), ..RelayConfig::default() };
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn wildcard_listen_advertises_loopback() {
        let mut o = RelayOptions::new("0.0.0.0:4443".parse().unwrap(), "/tmp/x");
        assert_eq!(o.advertised_host(), "127.0.0.1");
        o.listen = "[::]:4443".parse().unwrap();
        assert_eq!(o.advertised_host(), "::1");
        o.public_host = Some("relay.example.org".into());
        assert_eq!(o.advertised_host(), "relay.example.org");
    }
}
