//! One engine per home. Two engines on one store would fork the ratchets (and re-use the
//! post-quantum layer's nonces), so the first to open a home holds an OS file lock on it for
//! as long as it lives, and a running engine (`watch`, `ui`) answers the home's local socket
//! (mode 0600, in the home). Any other process's command goes through that socket and runs in
//! the running engine exactly as it would alone; it must still give the passphrase.
//!
//! The socket speaks one JSON object per line: a request (`{"passphrase", "request"}`), then
//! one answer, or for a subscription every update as it happens.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::api::Engine;
use crate::command::{Command, Reply};
use crate::config::EngineConfig;
use crate::engine::Update;
use crate::error::{ClientError, Result};
use crate::home::SOCKET_FILE;
use crate::store::Passphrase;

/// How long a command waits for a home held by a short command of another process.
const LOCK_WAIT: Duration = Duration::from_secs(15);

fn socket_error(home: &Path, e: &std::io::Error) -> ClientError {
    ClientError::Store { path: home.display().to_string(), why: e.to_string() }
}

#[derive(Serialize, Deserialize)]
struct Request {
    passphrase: String,
    request: Asked,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Asked {
    Command(Command),
    Subscribe,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Ok(Box<Reply>),
    Err(ClientError),
    Subscribed,
}

/// Serves the home's socket until dropped.
struct Server {
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Runs `engine` until `shutdown` (see [`Engine::run`]) and answers the home's socket
/// meanwhile: other processes' commands run in it, exactly as they would alone.
pub async fn run_serving(engine: &Engine, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let server = serve(engine.clone())?;
    let out = engine.run(shutdown).await;
    drop(server);
    out
}

/// Starts answering the home's socket for `engine` (which holds the home's lock, so any socket
/// file there is a dead engine's).
fn serve(engine: Engine) -> Result<Server> {
    let home = engine.home_buf();
    let path = home.join(SOCKET_FILE);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(|e| socket_error(&home, &e))?;
    restrict(&path).map_err(|e| socket_error(&home, &e))?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let engine = engine.clone();
            tokio::spawn(async move {
                let _ = answer(engine, stream).await;
            });
        }
    });
    Ok(Server { task, path })
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

async fn write_line<T: Serialize>(
    stream: &mut (impl AsyncWriteExt + Unpin),
    value: &T,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await
}

/// Largest request line (a document of several MiB, as JSON).
const MAX_REQUEST: usize = 16 * 1024 * 1024;

async fn answer(engine: Engine, stream: UnixStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64));
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let request: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            return write_line(
                &mut write,
                &Answer::Err(ClientError::Local { why: format!("unreadable request: {e}") }),
            )
            .await;
        }
    };
    let passphrase = Passphrase::new(request.passphrase);
    let check = engine.clone();
    let admitted = tokio::task::spawn_blocking(move || check.admits(&passphrase))
        .await
        .map_err(std::io::Error::other)?;
    match admitted {
        Ok(true) => {}
        Ok(false) => {
            let home = engine.home().display().to_string();
            return write_line(&mut write, &Answer::Err(ClientError::WrongPassphrase { home })).await;
        }
        Err(e) => return write_line(&mut write, &Answer::Err(e)).await,
    }
    match request.request {
        Asked::Command(command) => {
            let answer = match engine.execute(command).await {
                Ok(reply) => Answer::Ok(Box::new(reply)),
                Err(e) => Answer::Err(e),
            };
            write_line(&mut write, &answer).await
        }
        Asked::Subscribe => {
            let mut updates = engine.subscribe();
            write_line(&mut write, &Answer::Subscribed).await?;
            loop {
                match updates.recv().await {
                    Ok(update) => write_line(&mut write, &update).await?,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        }
    }
}

/// A running engine on a home, reached over its socket.
pub struct Remote {
    path: PathBuf,
    passphrase: zeroize::Zeroizing<String>,
}

impl Remote {
    async fn ask(&self, asked: Asked) -> Result<(Answer, BufReader<tokio::net::unix::OwnedReadHalf>)> {
        let broken = |e: std::io::Error| ClientError::Local { why: e.to_string() };
        let stream = UnixStream::connect(&self.path).await.map_err(broken)?;
        let (read, mut write) = stream.into_split();
        write_line(&mut write, &Request { passphrase: self.passphrase.to_string(), request: asked })
            .await
            .map_err(broken)?;
        let mut reader = BufReader::new(read);
        let mut line = String::new();
        reader.read_line(&mut line).await.map_err(broken)?;
        let answer = serde_json::from_str(&line)
            .map_err(|e| ClientError::Local { why: format!("unreadable answer: {e}") })?;
        Ok((answer, reader))
    }

    pub async fn execute(&self, command: Command) -> Result<Reply> {
        match self.ask(Asked::Command(command)).await?.0 {
            Answer::Ok(reply) => Ok(*reply),
            Answer::Err(e) => Err(e),
            Answer::Subscribed => Err(ClientError::Local { why: "an answer out of turn".into() }),
        }
    }

    /// Every update of the running engine, as it happens, until it stops.
    pub async fn subscribe(&self) -> Result<tokio::sync::mpsc::Receiver<Update>> {
        let (answer, mut reader) = self.ask(Asked::Subscribe).await?;
        if let Answer::Err(e) = answer {
            return Err(e);
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            let mut line = String::new();
            while reader.read_line(&mut line).await.is_ok_and(|n| n > 0) {
                if let Ok(update) = serde_json::from_str::<Update>(&line)
                    && tx.send(update).await.is_err()
                {
                    return;
                }
                line.clear();
            }
        });
        Ok(rx)
    }
}

/// How a front end reaches a home's party: its own engine, or the one already running there.
pub enum Door {
    Local(Engine),
    Remote(Remote),
}

impl Door {
    /// Opens the home's engine, or, while another process runs it, a door to that one.
    /// A home held by another process's short command is waited for.
    pub async fn open(home: &Path, passphrase: Passphrase, config: EngineConfig) -> Result<Door> {
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            match Engine::open(home, &passphrase, config.clone()) {
                Ok(engine) => return Ok(Door::Local(engine)),
                Err(ClientError::Locked { .. }) => {}
                Err(e) => return Err(e),
            }
            let path = home.join(SOCKET_FILE);
            if UnixStream::connect(&path).await.is_ok() {
                let passphrase = zeroize::Zeroizing::new(passphrase.reveal().to_owned());
                return Ok(Door::Remote(Remote { path, passphrase }));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Locked { home: home.display().to_string() });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn execute(&self, command: Command) -> Result<Reply> {
        match self {
            Door::Local(engine) => engine.execute(command).await,
            Door::Remote(remote) => remote.execute(command).await,
        }
    }
}
