//! The relay as an operator runs it: a config file (refused with the line of a bad key or
//! value), the effective configuration at `-v`, JSON logs without secrets or client
//! addresses, `/metrics` off the public port unless a token opens it, a scrape that
//! `promtool check metrics` accepts, and a PostgreSQL server that goes away at start and
//! mid-run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly")]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use backchannel_client::RelayClient;
use backchannel_wire::{RelayAddress, SendItem, SendOutcome};
use support::BIN;

/// A relay process whose stdout (the address line) and stderr (the log) are captured.
struct Running {
    child: Child,
    address: RelayAddress,
    log: mpsc::Receiver<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child =
            Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let log = lines(child.stderr.take().unwrap());
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let address = line
            .strip_prefix("relay address: ")
            .unwrap_or_else(|| {
                panic!("relay did not start: {line:?} {:?}", log.try_iter().collect::<Vec<_>>())
            })
            .trim()
            .parse()
            .unwrap();
        Running { child, address, log }
    }

    /// Stops it and returns everything it logged.
    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log.iter().collect()
    }
}

/// The lines of `stream`, as they come, from a thread.
fn lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn relay_fails(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A plain HTTP/1.0 GET; returns the status code and body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_owned()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn a_config_file_with_a_bad_key_or_value_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(&file, "data = \"state\"\nlisten = \"127.0.0.1:0\"\nblok-size = 4096\n").unwrap();
    let err = relay_fails(&["relay", "--config", file.to_str().unwrap()]);
    assert!(err.contains("line 3") && err.contains("blok-size"), "{err}");
    std::fs::write(&file, "data = \"state\"\n\nblock-size = 12\n").unwrap();
    let err = relay_fails(&["relay", "--config", file.to_str().unwrap()]);
    assert!(err.contains("line 3") && err.contains("block-size must be from 1024"), "{err}");
    assert!(!dir.path().join("state").exists(), "nothing started");
}

#[test]
fn config_file_flags_win_and_v_prints_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(&file, "data = \"state\"\nlisten = \"127.0.0.1:1\"\nttl = \"7d\"\nqueue-rate = 50\n")
        .unwrap();
    let relay =
        Running::start(&["-v", "relay", "--config", file.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert!(dir.path().join("state/address").exists(), "data is relative to the file");
    let log = relay.stop().join("\n");
    assert!(log.contains("effective relay configuration"), "{log}");
    assert!(log.contains("listen = \"127.0.0.1:0\""), "the flag wins: {log}");
    assert!(log.contains("ttl = \"604800s\"") && log.contains("queue-rate = 50"), "{log}");
}

#[test]
fn json_logs_are_one_object_per_line_without_secrets_or_client_addresses() {
    for with_ips in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("relay");
        let mut args = vec!["-vvv", "relay", "--listen", "127.0.0.1:0", "--log-format", "json", "--data"];
        args.push(data.to_str().unwrap());
        if with_ips {
            args.push("--log-client-ips");
        }
        let relay = Running::start(&args);
        let (secret, sent) = runtime().block_on(async {
            let mut c = RelayClient::connect(&relay.address).await.unwrap();
            let (created, recv_secret, send_secret) = c.create_queue().await.unwrap();
            let item =
                SendItem { send_id: created.send_id, secret: send_secret.clone(), block: vec![9; 4096] };
            let sent = c.send(vec![item]).await.unwrap();
            c.fetch(&created.recv_id, &recv_secret, 10).await.unwrap();
            ((recv_secret.to_hex(), send_secret.to_hex()), sent)
        });
        assert_eq!(sent.results, vec![SendOutcome::Stored]);
        // Without a token file the public port has no /metrics at all.
        let (status, body) = runtime().block_on(public_metrics(&relay.address, None));
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("no such endpoint"), "{body}");
        let log = relay.stop();
        assert!(log.len() > 3, "logged at -vvv: {log:?}");
        for line in &log {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object: {line:?}: {e}"));
            assert!(v.is_object() && v["level"].is_string(), "{line}");
            assert!(
                !line.contains(secret.0.as_str()) && !line.contains(secret.1.as_str()),
                "a queue secret in the log: {line}"
            );
        }
        let logged_ip = log.iter().any(|l| l.contains("\"client\""));
        assert_eq!(logged_ip, with_ips, "client addresses are logged only when asked: {log:?}");
    }
}

#[test]
fn metrics_are_off_the_public_port_unless_a_token_opens_them_and_promtool_accepts_them() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("metrics.token");
    std::fs::write(&token, "a-long-enough-metrics-token-42\n").unwrap();
    let metrics_port = free_port();
    let listen = format!("127.0.0.1:{metrics_port}");
    let data = dir.path().join("relay");
    let relay = Running::start(&[
        "relay",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.to_str().unwrap(),
        "--metrics-listen",
        &listen,
        "--metrics-token-file",
        token.to_str().unwrap(),
    ]);
    let (status, body) = http_get(listen.parse().unwrap(), "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("backchannel_relay_store_up 1\n"), "{body}");
    let public = runtime().block_on(async {
        let mut answers = Vec::new();
        for auth in [None, Some("wrong-token-wrong-token"), Some("a-long-enough-metrics-token-42")] {
            answers.push(public_metrics(&relay.address, auth).await);
        }
        answers
    });
    assert_eq!(public.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![403, 403, 200], "{public:?}");
    assert!(public[2].1.contains("backchannel_relay_open_connections"));
    relay.stop();
    promtool_check(&body);
}

/// `GET /metrics` on the public (TLS) port, with an optional bearer token.
async fn public_metrics(address: &RelayAddress, token: Option<&str>) -> (u16, String) {
    use http_body_util::BodyExt as _;
    let tls = backchannel_client::connect_tls(address).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::get("/metrics").header("host", "relay");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp =
        sender.send_request(req.body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `promtool check metrics` (Debian's `prometheus` package) on a scrape; CI installs it.
fn promtool_check(scrape: &str) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = spawned else {
        assert!(std::env::var_os("CI").is_none(), "CI must have promtool (apt-get install prometheus)");
        eprintln!("skipping promtool check metrics: promtool not installed");
        return;
    };
    child.stdin.take().unwrap().write_all(scrape.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{scrape}");
}

/// A TCP forwarder to PostgreSQL that can be cut (every connection dropped, new ones
/// refused) and restored on the same port: the database "goes away" without touching the
/// server other tests use.
struct Proxy {
    port: u16,
    upstream: SocketAddr,
    stop: Option<mpsc::Sender<()>>,
}

impl Proxy {
    fn new(upstream: SocketAddr) -> Proxy {
        Proxy { port: free_port(), upstream, stop: None }
    }

    fn open(&mut self) {
        let (stop, stopped) = mpsc::channel::<()>();
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let upstream = self.upstream;
        std::thread::spawn(move || {
            let mut pairs: Vec<(TcpStream, TcpStream)> = Vec::new();
            loop {
                if stopped.recv_timeout(Duration::from_millis(5)).is_ok()
                    || matches!(stopped.try_recv(), Err(mpsc::TryRecvError::Disconnected))
                {
                    for (a, b) in &pairs {
                        let _ = a.shutdown(std::net::Shutdown::Both);
                        let _ = b.shutdown(std::net::Shutdown::Both);
                    }
                    return;
                }
                while let Ok((client, _)) = listener.accept() {
                    let Ok(server) = TcpStream::connect(upstream) else { continue };
                    client.set_nonblocking(false).unwrap();
                    for (mut from, mut to) in [
                        (client.try_clone().unwrap(), server.try_clone().unwrap()),
                        (server.try_clone().unwrap(), client.try_clone().unwrap()),
                    ] {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    }
                    pairs.push((client, server));
                }
            }
        });
        self.stop = Some(stop);
    }

    fn cut(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Wait until the port refuses connections.
        support::wait_until("the proxy to close", || TcpStream::connect(("127.0.0.1", self.port)).is_err());
    }
}

fn postgres() -> Option<(SocketAddr, String)> {
    let url = std::env::var("BACKCHANNEL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let hostport = url.split('@').nth(1).and_then(|r| r.split('/').next()).unwrap_or("127.0.0.1:5432");
    let addr: Option<SocketAddr> =
        std::net::ToSocketAddrs::to_socket_addrs(hostport).ok().and_then(|mut a| a.next());
    match addr.filter(|a| TcpStream::connect_timeout(a, Duration::from_secs(2)).is_ok()) {
        Some(addr) => Some((addr, url)),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL tests must run in CI, but {url} is unreachable"
            );
            eprintln!("skipping: PostgreSQL at {url} is unreachable");
            None
        }
    }
}

#[test]
fn postgresql_away_at_start_and_mid_run_gives_503_then_the_node_recovers_by_itself() {
    let Some((upstream, url)) = postgres() else { return };
    let mut proxy = Proxy::new(upstream);
    let db = url.rsplit('/').next().unwrap_or("test").split('?').next().unwrap_or("test").to_owned();
    let schema = format!("bc_ops_{}", std::process::id());
    admin(&url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"));
    let store = format!("postgres://postgres@127.0.0.1:{}/{db}?options=-csearch_path%3D{schema}", proxy.port);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    // At start: nothing answers; the node says so and keeps trying instead of exiting.
    let mut child = Command::new(BIN)
        .args(["relay", "--listen", "127.0.0.1:0", "--store", &store, "--data", data.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = lines(child.stderr.take().unwrap());
    let first = log.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(first.contains("unreachable") && first.contains("trying again"), "{first}");
    assert!(child.try_wait().unwrap().is_none(), "the node waits for its database");
    proxy.open();
    let stdout = lines(child.stdout.take().unwrap());
    let line =
        stdout.recv_timeout(Duration::from_secs(20)).expect("the node starts once the database answers");
    let address: RelayAddress = line.strip_prefix("relay address: ").unwrap().trim().parse().unwrap();

    runtime().block_on(async {
        let mut c = RelayClient::connect(&address).await.unwrap();
        let (created, _, send_secret) = c.create_queue().await.unwrap();
        let item =
            || SendItem { send_id: created.send_id, secret: send_secret.clone(), block: vec![1; 4096] };
        assert_eq!(c.send(vec![item()]).await.unwrap().results, vec![SendOutcome::Stored]);
        // Mid-run: the database goes away. Sends are refused with 503, nothing is claimed stored.
        proxy.cut();
        let err = c.send(vec![item()]).await.unwrap_err().to_string();
        assert!(err.contains("cannot store right now") && err.contains("database is unreachable"), "{err}");
        // It comes back: the node reconnects by itself, without a restart.
        proxy.open();
        let mut recovered = false;
        for _ in 0..100 {
            if let Ok(answer) = c.send(vec![item()]).await {
                assert_eq!(answer.results, vec![SendOutcome::Stored]);
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(recovered, "the node did not recover after the database came back");
    });
    let _ = child.kill();
    let _ = child.wait();
    proxy.cut();
    admin(&url, &format!("DROP SCHEMA {schema} CASCADE"));
}

fn admin(url: &str, sql: &str) {
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
    });
}
