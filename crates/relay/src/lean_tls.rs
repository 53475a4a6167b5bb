//! A server-side TLS stream that holds no buffer while its connection is idle.
//!
//! rustls's buffered connection keeps a 4 KiB receive buffer for the life of every
//! connection; with thousands of quiet WebSockets that buffer is most of what an idle socket
//! costs. Here rustls's unbuffered API does the protocol, and the buffers are ours: bytes are
//! read from the socket only once it is readable, and every buffer is given back as soon as it
//! is empty. What stays per idle connection is rustls's connection state and the keys.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 4096;
/// Encrypted bytes kept waiting for the socket before writers are held back.
const MAX_PENDING_WRITE: usize = 64 * 1024;

/// A TLS connection over a TCP socket, server side.
pub(crate) struct LeanTls {
    tcp: TcpStream,
    conn: UnbufferedServerConnection,
    /// Received TLS bytes not yet processed (freed when empty).
    incoming: Vec<u8>,
    /// Decrypted bytes not yet read by the caller, from `plain_at` on (freed when read).
    plaintext: Vec<u8>,
    plain_at: usize,
    /// TLS bytes waiting for the socket, from `out_at` on (freed when written).
    outgoing: Vec<u8>,
    out_at: usize,
    /// The peer sent close_notify, or its socket ended.
    eof: bool,
    /// Our close_notify is queued.
    closing: bool,
}

/// What to do once the connection may send application data.
#[derive(Clone, Copy)]
enum Action<'a> {
    Nothing,
    Encrypt(&'a [u8]),
    CloseNotify,
}

/// Where the TLS state machine stopped.
enum Stop {
    /// It needs more bytes from the peer.
    NeedRead,
    /// Application data may be written (and was, if some was given).
    Writable(usize),
    /// The connection is closed.
    Closed,
}

fn tls_error(err: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

impl LeanTls {
    /// Runs the TLS handshake on `tcp`.
    pub(crate) async fn accept(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let mut tls = Self {
            tcp,
            conn,
            incoming: Vec::new(),
            plaintext: Vec::new(),
            plain_at: 0,
            outgoing: Vec::new(),
            out_at: 0,
            eof: false,
            closing: false,
        };
        poll_fn(|cx| tls.poll_handshake(cx)).await?;
        Ok(tls)
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_write_out(cx))?;
            let stop = self.process(Action::Nothing)?;
            // Our flight goes out before we wait for the peer's.
            ready!(self.poll_write_out(cx))?;
            match stop {
                Stop::Writable(_) if self.outgoing.is_empty() => return Poll::Ready(Ok(())),
                Stop::Writable(_) => {}
                Stop::NeedRead => {
                    if ready!(self.poll_fill(cx))? == 0 {
                        return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
                Stop::Closed => return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into())),
            }
        }
    }

    /// Runs the state machine over the received bytes: decrypts records into `plaintext`,
    /// queues what it must send into `outgoing`, and encrypts `data` once writing is allowed.
    fn process(&mut self, mut action: Action<'_>) -> io::Result<Stop> {
        loop {
            let Self { conn, incoming, plaintext, outgoing, eof, .. } = self;
            let UnbufferedStatus { mut discard, state } = conn.process_tls_records(incoming);
            let stop = match state.map_err(tls_error)? {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(tls_error)?;
                        discard += record.discard;
                        plaintext.extend_from_slice(record.payload);
                    }
                    None
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    let start = outgoing.len();
                    outgoing.resize(start + 1024, 0);
                    loop {
                        match encode.encode(&mut outgoing[start..]) {
                            Ok(n) => {
                                outgoing.truncate(start + n);
                                break;
                            }
                            Err(EncodeError::InsufficientSize(need)) => {
                                outgoing.resize(start + need.required_size, 0);
                            }
                            Err(other) => return Err(tls_error(other)),
                        }
                    }
                    None
                }
                // Queued in `outgoing`; it goes out before anything else is read or written.
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    None
                }
                ConnectionState::BlockedHandshake => Some(Stop::NeedRead),
                ConnectionState::WriteTraffic(mut write) => {
                    match std::mem::replace(&mut action, Action::Nothing) {
                        Action::Nothing => Some(Stop::Writable(0)),
                        Action::CloseNotify => {
                            let start = outgoing.len();
                            outgoing.resize(start + 64, 0);
                            loop {
                                match write.queue_close_notify(&mut outgoing[start..]) {
                                    Ok(n) => {
                                        outgoing.truncate(start + n);
                                        break;
                                    }
                                    Err(EncryptError::InsufficientSize(need)) => {
                                        outgoing.resize(start + need.required_size, 0);
                                    }
                                    Err(other) => return Err(tls_error(other)),
                                }
                            }
                            Some(Stop::Writable(0))
                        }
                        Action::Encrypt(bytes) => {
                            let start = outgoing.len();
                            outgoing.resize(start + bytes.len() + 64, 0);
                            loop {
                                match write.encrypt(bytes, &mut outgoing[start..]) {
                                    Ok(n) => {
                                        outgoing.truncate(start + n);
                                        break;
                                    }
                                    Err(EncryptError::InsufficientSize(need)) => {
                                        outgoing.resize(start + need.required_size, 0);
                                    }
                                    Err(other) => return Err(tls_error(other)),
                                }
                            }
                            Some(Stop::Writable(bytes.len()))
                        }
                    }
                }
                ConnectionState::PeerClosed => {
                    *eof = true;
                    None
                }
                ConnectionState::Closed => Some(Stop::Closed),
                _ => return Err(tls_error(io::Error::other("unexpected TLS state (early data is off)"))),
            };
            incoming.drain(..discard);
            if incoming.is_empty() {
                *incoming = Vec::new();
            }
            if let Some(stop) = stop {
                // Nothing was made readable by a record: hand back to the caller.
                return Ok(stop);
            }
        }
    }

    /// Reads what the socket has into `incoming`; 0 at the end of the stream. Allocates only
    /// once the socket is readable.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_read_ready(cx))?;
            let start = self.incoming.len();
            self.incoming.resize(start + READ_CHUNK, 0);
            match self.tcp.try_read(&mut self.incoming[start..]) {
                Ok(n) => {
                    self.incoming.truncate(start + n);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.incoming.truncate(start);
                    if self.incoming.is_empty() {
                        self.incoming = Vec::new();
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Writes `outgoing` to the socket; frees it once written.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.outgoing[self.out_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at += n;
        }
        self.outgoing = Vec::new();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }

    fn take_plaintext(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.plain_at >= self.plaintext.len() {
            return false;
        }
        let n = buf.remaining().min(self.plaintext.len() - self.plain_at);
        buf.put_slice(&self.plaintext[self.plain_at..self.plain_at + n]);
        self.plain_at += n;
        if self.plain_at == self.plaintext.len() {
            self.plaintext = Vec::new();
            self.plain_at = 0;
        }
        true
    }
}

impl AsyncRead for LeanTls {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.take_plaintext(buf) || this.eof {
                return Poll::Ready(Ok(()));
            }
            // Whatever the state machine queued (a key update, an alert) goes out first.
            if this.poll_write_out(cx)?.is_pending() && this.outgoing.len() > MAX_PENDING_WRITE {
                return Poll::Pending;
            }
            let stop = this.process(Action::Nothing)?;
            // Anything the records called for (tickets, a key update) starts out now; if the
            // socket is full, its readiness wakes us again.
            let _ = this.poll_write_out(cx)?;
            match stop {
                Stop::Closed => this.eof = true,
                _ if this.plaintext.len() > this.plain_at || this.eof => {}
                _ => {
                    if ready!(this.poll_fill(cx))? == 0 {
                        this.eof = true;
                    }
                }
            }
        }
    }
}

impl AsyncWrite for LeanTls {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.outgoing.len() - this.out_at > MAX_PENDING_WRITE {
            ready!(this.poll_write_out(cx))?;
        }
        match this.process(Action::Encrypt(data))? {
            Stop::Writable(n) => {
                // Start sending; what the socket does not take now goes at the next flush.
                let _ = this.poll_write_out(cx)?;
                Poll::Ready(Ok(n))
            }
            Stop::Closed => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Stop::NeedRead => Poll::Ready(Err(io::Error::other("TLS connection not ready for writing"))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            // Best effort: a connection already broken is closed all the same.
            let _ = this.process(Action::CloseNotify);
        }
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}
