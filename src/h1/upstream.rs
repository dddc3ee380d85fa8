//! The relay's connection to an upstream server: one HTTP/1.1 exchange at a time over a
//! plain TCP socket, taken from and given back to an [`IdlePool`](super::pool::IdlePool).
//!
//! Reads wait for readiness and only then read, into the thread's buffer: the body decoder
//! hands its pieces to the relay where they lie there, and a head is copied out at its exact
//! size. So a stream waiting on a silent model holds no read buffer at all (Pingora's client
//! holds 64 KiB per response: bench/MEMORY.md).

use std::io::{self, Read};
use std::net::SocketAddr;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::{Error, ErrorType, OrErr, Result};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use super::body::{put_chunk, Decoder, Framing, LAST_CHUNK};
use super::head::Response;
use super::{head, scratch};
use crate::headers::view::{Fields, RequestHead};
use crate::timer::within;

/// Largest response head accepted from an upstream.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// How the request body goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Send {
    None,
    Raw,
    Chunked,
}

/// One upstream connection and the exchange on it.
#[derive(Debug)]
pub struct Upstream {
    sock: TcpStream,
    pub(super) addr: SocketAddr,
    write_timeout: Duration,
    send: Send,
    head_request: bool,
    /// Bytes read past the response head, before the body decoder existed.
    early: Option<Bytes>,
    decoder: Option<Decoder>,
    eof: bool,
    tunnel: bool,
    /// The upstream sent more while the last piece was read: keep reading without waiting.
    busy: bool,
    /// [`Upstream::readable`] waited for the socket: the next read is the wait's first.
    woke: bool,
    /// The connection came from the idle pool.
    pub(super) reused: bool,
    /// Nothing was written yet on this new connection (see [`Upstream::write`]).
    fresh: bool,
    /// Any byte of a response has arrived.
    answered: bool,
    /// The last read drained the socket and cleared tokio's readiness, so tokio reports
    /// anything that arrives after it (see the pool's `take`).
    pub(super) drained: bool,
}

fn io_err(kind: ErrorType, what: &'static str, e: io::Error) -> Box<Error> {
    Error::because(kind, what, e)
}

/// What a read without waiting found.
struct ReadNow<R> {
    /// What was made of the bytes read (none read: `None`).
    got: Option<R>,
    /// Whether the socket was actually asked (tokio knew it was not ready otherwise).
    asked: bool,
    /// The read came back short and tokio's readiness was cleared: the socket was drained.
    drained: bool,
}

/// Reads whatever the socket has now, without waiting, and hands it to `take` where it lies,
/// in the thread's read buffer (empty: the upstream closed). `take` must not use that buffer.
///
/// With `short_drains`, a read that comes back short is taken to have drained the socket and
/// tells tokio so (the closure's `WouldBlock` clears the readiness it saw, and only that: an
/// arrival since is kept). On a paced stream that saves the second read per event that would
/// only have said "nothing more". On a busy one the caller keeps reading instead: what came
/// meanwhile is read at once, without a trip through the reactor (see `relay::MAX_BATCH_BYTES`).
fn try_read_now<R>(
    sock: &TcpStream,
    short_drains: bool,
    take: impl FnOnce(&[u8]) -> R,
) -> io::Result<ReadNow<R>> {
    let mut now = ReadNow {
        got: None,
        asked: false,
        drained: false,
    };
    let mut take = Some(take);
    let read = sock.try_io(Interest::READABLE, || {
        now.asked = true;
        scratch::with(|buf| {
            let n = (&*SockRef::from(sock)).read(buf)?;
            if let Some(take) = take.take() {
                now.got = Some(take(&buf[..n]));
            }
            if short_drains && n > 0 && n < buf.len() {
                now.drained = true;
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        })
    });
    match read {
        Ok(()) => Ok(now),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(now),
        Err(e) => Err(e),
    }
}

/// What [`Upstream::read_now`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Got {
    /// Some of the body (perhaps none of it data), and maybe more behind it.
    Read,
    /// Nothing more for now.
    Quiet,
    /// The body is complete.
    End,
}

/// Opens a TCP connection to `addr`.
///
/// A connection made by the time `connect` returns (a server on this host, as in most
/// compose setups) is handed back at once: tokio's own connect waits for the reactor to
/// report the socket writable, one more turn of it per new stream.
async fn open(addr: SocketAddr) -> io::Result<TcpStream> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let tcp = TcpStream::from_std(std::net::TcpStream::from(sock))?;
    // Connected already when it has a peer; otherwise the handshake is under way.
    if tcp.peer_addr().is_err() {
        tcp.writable().await?;
        if let Some(e) = tcp.take_error()? {
            return Err(e);
        }
    }
    Ok(tcp)
}

impl Upstream {
    /// Connects to `addr` within `timeout`.
    pub async fn connect(
        addr: SocketAddr,
        timeout: Duration,
        write_timeout: Duration,
    ) -> Result<Self> {
        let sock = match tokio::time::timeout(timeout, open(addr)).await {
            Err(_) => {
                return Error::e_explain(
                    ErrorType::ConnectTimedout,
                    format!("connecting to {addr}"),
                )
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(io_err(ErrorType::ConnectRefused, "connecting", e))
            }
            Ok(Err(e)) => return Err(io_err(ErrorType::ConnectError, "connecting", e)),
            Ok(Ok(s)) => s,
        };
        let mut up = Self::over(sock, addr, write_timeout);
        up.fresh = true;
        Ok(up)
    }

    pub(super) fn over(sock: TcpStream, addr: SocketAddr, write_timeout: Duration) -> Self {
        Upstream {
            sock,
            addr,
            write_timeout,
            send: Send::None,
            head_request: false,
            early: None,
            decoder: None,
            eof: false,
            tunnel: false,
            busy: false,
            woke: false,
            reused: false,
            fresh: false,
            answered: false,
            drained: false,
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether a failure of this exchange may be the server having closed an idle
    /// connection just as it was reused: it came from the pool and nothing came back yet.
    /// Such a request is safe to send again on a new connection, as nginx and Pingora do.
    pub fn stale_maybe(&self) -> bool {
        self.reused && !self.answered
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let mut sent = 0;
        if std::mem::take(&mut self.fresh) {
            // tokio knows a new socket's readiness only from the reactor's next turn, which
            // under a burst of new streams is milliseconds away. The socket is connected
            // (`open`), so the request's first bytes are offered to it directly.
            match SockRef::from(&self.sock).send(bytes) {
                Ok(n) => sent = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(io_err(ErrorType::WriteError, "writing to the upstream", e)),
            }
        }
        let rest = &bytes[sent..];
        if rest.is_empty() {
            return Ok(());
        }
        let write = std::pin::pin!(self.sock.write_all(rest));
        match within(self.write_timeout, write).await {
            Err(_) => Error::e_explain(ErrorType::WriteTimedout, "writing to the upstream"),
            Ok(r) => r.or_err(ErrorType::WriteError, "writing to the upstream"),
        }
    }

    /// Sends a request head written for `req`; its headers say how the body (if any) follows.
    pub async fn send_head(&mut self, wire: &[u8], req: &(impl RequestHead + Sync)) -> Result<()> {
        self.head_request = req.method() == http::Method::HEAD;
        self.send = if head::chunked(req.fields()) {
            Send::Chunked
        } else if req.fields().contains("content-length") {
            Send::Raw
        } else {
            Send::None
        };
        self.write(wire).await
    }

    /// Sends one piece of the request body (or, in a tunnel, any bytes).
    pub async fn send_body(&mut self, data: Bytes) -> Result<()> {
        match (self.tunnel, self.send) {
            (true, _) | (false, Send::Raw) => self.write(&data).await,
            (false, Send::Chunked) => {
                let mut out = BytesMut::with_capacity(data.len() + 16);
                put_chunk(&data, &mut out);
                self.write(&out).await
            }
            (false, Send::None) => Ok(()),
        }
    }

    /// Ends the request body.
    pub async fn finish_body(&mut self) -> Result<()> {
        if self.send == Send::Chunked && !self.tunnel {
            self.send = Send::None;
            return self.write(LAST_CHUNK).await;
        }
        Ok(())
    }

    /// Reads until a final response head has arrived (1xx other than 101 are skipped) and
    /// returns it; the body follows through [`Upstream::readable`] and [`Upstream::read_now`].
    pub async fn read_header(&mut self) -> Result<Response> {
        // A head that came in one read is parsed where it lies; one in pieces is gathered
        // first, and parsed once its end is in.
        let mut got = Bytes::new();
        let mut pieces = BytesMut::new();
        loop {
            if !got.is_empty() {
                match head::parse_response(&got) {
                    Err(e) => {
                        return Error::e_because(
                            ErrorType::InvalidHTTPHeader,
                            "upstream response head",
                            e,
                        )
                    }
                    Ok(Some((resp, len))) => {
                        let rest = got.slice(len..);
                        let status = resp.status.as_u16();
                        if (100..200).contains(&status) && status != 101 {
                            got = rest;
                            continue;
                        }
                        return self.start_body(resp, rest);
                    }
                    Ok(None) => pieces.extend_from_slice(&std::mem::take(&mut got)),
                }
            }
            if pieces.len() >= MAX_RESPONSE_HEAD {
                return Error::e_explain(
                    ErrorType::InvalidHTTPHeader,
                    "upstream response head too large",
                );
            }
            let more = self.read_some().await?;
            self.answered |= !more.is_empty();
            if more.is_empty() {
                return Error::e_explain(
                    ErrorType::ConnectionClosed,
                    "upstream closed before its response head",
                );
            }
            if pieces.is_empty() {
                got = more;
            } else {
                let from = head::resume_at(pieces.len());
                pieces.extend_from_slice(&more);
                if head::head_end(&pieces, from).is_some() {
                    got = pieces.split().freeze();
                }
            }
        }
    }

    /// Sets up the body decoder for a final response head; `rest` was read past it.
    fn start_body(&mut self, mut resp: Response, rest: Bytes) -> Result<Response> {
        let framing = if resp.status.as_u16() == 101 {
            Framing::UntilClose
        } else {
            head::response_framing(&mut resp, self.head_request)
                .or_err(ErrorType::InvalidHTTPHeader, "upstream response framing")?
        };
        self.decoder = Some(Decoder::new(framing));
        if !rest.is_empty() {
            self.early = Some(rest);
        }
        Ok(resp)
    }

    /// The next bytes the upstream sends (empty: it closed).
    ///
    /// Polled by hand rather than written as an `async fn` over `readable()`: tokio's
    /// readiness future carries a waiter node, about 100 bytes that every open stream would
    /// hold while it waits. Polling readiness uses the socket's own waker slot instead (one
    /// task reads a connection at a time).
    fn read_some(&mut self) -> impl std::future::Future<Output = Result<Bytes>> + '_ {
        std::future::poll_fn(move |cx| loop {
            let now = std::task::ready!(self.sock.poll_read_ready(cx))
                .and_then(|()| try_read_now(&self.sock, !self.busy, Bytes::copy_from_slice))
                .or_err(ErrorType::ReadError, "reading from the upstream");
            match now {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(ReadNow {
                    got: Some(b),
                    drained,
                    ..
                }) => {
                    self.drained = drained;
                    return Poll::Ready(Ok(b));
                }
                // Not ready after all: tokio's readiness is cleared, and the next poll waits.
                Ok(_) => {}
            }
        })
    }

    /// Resolves once [`read_now`](Self::read_now) has something to find: bytes already
    /// read, the socket readable, or the body's end.
    pub fn readable(&mut self) -> impl std::future::Future<Output = Result<()>> + '_ {
        // Polled by hand, as `read_some` is: no waiter node in every waiting stream's state.
        std::future::poll_fn(move |cx| {
            let at_hand = self.early.is_some() || self.decoder.as_ref().is_none_or(|d| d.is_done());
            if !at_hand {
                std::task::ready!(self.sock.poll_read_ready(cx))
                    .or_err(ErrorType::ReadError, "reading from the upstream")?;
                self.woke = true;
            }
            Poll::Ready(Ok(()))
        })
    }

    /// Without waiting: hands the body pieces already read, or else those of one read of
    /// what the socket holds now, to `piece`, as they lie in the read (no copy).
    ///
    /// `piece` runs inside the thread's read buffer's borrow: it must not read a socket.
    pub fn read_now(&mut self, piece: impl FnMut(&[u8])) -> Result<Got> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "body read before the head");
        };
        if let Some(early) = self.early.take() {
            decoder
                .decode(&early, piece)
                .or_err(ErrorType::InvalidHTTPHeader, "upstream body")?;
            return Ok(Got::Read);
        }
        if decoder.is_done() {
            return Ok(Got::End);
        }
        // A wait's first read drains a paced stream's socket in one (see `try_read_now`).
        let first = std::mem::take(&mut self.woke);
        let mut eof = false;
        let now = try_read_now(&self.sock, first && !self.busy, |read| {
            eof = read.is_empty();
            if eof {
                decoder
                    .eof()
                    .or_err(ErrorType::ConnectionClosed, "upstream body")
            } else {
                decoder
                    .decode(read, piece)
                    .or_err(ErrorType::InvalidHTTPHeader, "upstream body")
            }
        })
        .or_err(ErrorType::ReadError, "reading from the upstream")?;
        let Some(decoded) = now.got else {
            // Asked and found nothing: the stream is paced, not busy.
            self.busy &= !now.asked;
            return Ok(Got::Quiet);
        };
        self.eof |= eof;
        self.drained = now.drained;
        // More behind a wait's first read: the upstream is sending faster than it is read.
        self.busy |= !first;
        decoded?;
        Ok(if decoder.is_done() {
            Got::End
        } else {
            Got::Read
        })
    }

    /// After a 101: bytes flow both ways as they are, until a side closes.
    pub fn begin_tunnel(&mut self) {
        self.tunnel = true;
    }

    /// Whether the connection can carry another request.
    pub fn reusable(&self) -> bool {
        !self.tunnel
            && !self.eof
            && self.early.is_none()
            && self.decoder.as_ref().is_some_and(|d| d.reusable())
    }

    /// The socket, for the pool.
    pub(super) fn into_socket(self) -> TcpStream {
        self.sock
    }
}

#[cfg(test)]
pub(in crate::h1) mod tests {
    use super::*;
    use crate::h1::pool::IdlePool;
    use std::time::Instant;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    pub(in crate::h1) const W: Duration = Duration::from_secs(5);

    pub(in crate::h1) async fn server(
        script: &'static [u8],
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        serve(
            TcpListener::bind("127.0.0.1:0").await.expect("bind"),
            script,
        )
    }

    /// Accepts one connection on `l`, reads the request and answers with `script`'s pieces
    /// (`|` between them, 20 ms apart); the handle gives back the request.
    fn serve(
        l: TcpListener,
        script: &'static [u8],
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let addr = l.local_addr().expect("addr");
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut got = vec![0u8; 4096];
            let n = s.read(&mut got).await.expect("read");
            got.truncate(n);
            for piece in script.split(|b| *b == b'|') {
                s.write_all(piece).await.expect("write");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            got
        });
        (addr, h)
    }

    /// Sends a request head with no body: `GET <path>`.
    pub(in crate::h1) async fn send(up: &mut Upstream, path: &str) {
        let wire = Bytes::from(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"));
        let req = head::parse_request(&wire).expect("a request head");
        up.send_head(&wire, &req).await.expect("send");
    }

    /// What came of the rest of the body, and how it ended (`Ok` at its end).
    pub(in crate::h1) async fn read_all(up: &mut Upstream) -> (Vec<u8>, Result<()>) {
        let mut all = Vec::new();
        loop {
            if let Err(e) = up.readable().await {
                return (all, Err(e));
            }
            match up.read_now(|piece| all.extend_from_slice(piece)) {
                Ok(Got::End) => return (all, Ok(())),
                Ok(Got::Read | Got::Quiet) => {}
                Err(e) => return (all, Err(e)),
            }
        }
    }

    pub(in crate::h1) async fn body(up: &mut Upstream) -> Vec<u8> {
        let (all, end) = read_all(up).await;
        end.expect("body");
        all
    }

    #[tokio::test]
    async fn a_chunked_response_in_pieces_is_reusable_after_its_end() {
        let (addr, h) =
            server(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel|lo\r\n0\r\n|\r\n").await;
        let pool = IdlePool::new(W);
        let mut up = pool.get(addr, W, W, true).await.expect("connect");
        send(&mut up, "/s").await;
        let resp = up.read_header().await.expect("head");
        assert_eq!(resp.status.as_u16(), 200);
        assert_eq!(body(&mut up).await, b"hello");
        assert!(up.reusable());
        let sent = h.await.expect("server");
        assert!(sent.starts_with(b"GET /s HTTP/1.1\r\n"), "{sent:?}");
        pool.put(up);
        // The server has closed since: the pool notices and does not hand it out.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take(addr, true).is_none());
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error_and_until_close_is_not() {
        let (addr, _h) = server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").await;
        let mut up = Upstream::connect(addr, W, W).await.expect("connect");
        send(&mut up, "/").await;
        up.read_header().await.expect("head");
        let (got, end) = read_all(&mut up).await;
        assert_eq!(got, b"abc", "what came before the cut still came");
        let e = end.expect_err("a body cut short");
        assert_eq!(e.etype(), &ErrorType::ConnectionClosed);

        let (addr, _h) = server(b"HTTP/1.1 200 OK\r\n\r\nuntil|close").await;
        let mut up = Upstream::connect(addr, W, W).await.expect("connect");
        send(&mut up, "/").await;
        up.read_header().await.expect("head");
        assert_eq!(body(&mut up).await, b"untilclose");
        assert!(!up.reusable());
    }

    #[tokio::test]
    async fn refused_and_garbage_are_typed_errors() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        let e = Upstream::connect(addr, W, W).await.expect_err("refused");
        assert_eq!(e.etype(), &ErrorType::ConnectRefused);

        let (addr, _h) = server(b"NOT HTTP AT ALL\r\n\r\n").await;
        let mut up = Upstream::connect(addr, W, W).await.expect("connect");
        send(&mut up, "/").await;
        let e = up.read_header().await.expect_err("garbage");
        assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader);
    }

    #[tokio::test]
    async fn a_connection_not_made_at_once_is_waited_for_within_the_timeout() {
        // A listener that never accepts, with its queue full: the kernel drops further SYNs,
        // so a connect stays under way (the path a remote server takes for a round trip).
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        sock.listen(0).expect("listen");
        let addr = sock.local_addr().expect("addr").as_socket().expect("inet");
        let mut fillers = Vec::new();
        for _ in 0..4 {
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await
            {
                fillers.push(s);
            }
        }
        assert!(!fillers.is_empty(), "the queue took no connection at all");
        let started = Instant::now();
        let e = Upstream::connect(addr, Duration::from_millis(400), W)
            .await
            .expect_err("the queue is full");
        assert_eq!(e.etype(), &ErrorType::ConnectTimedout);
        assert!(started.elapsed() >= Duration::from_millis(350));
    }

    #[tokio::test]
    async fn connects_over_ipv6_where_the_host_has_it() {
        let Ok(l) = TcpListener::bind("[::1]:0").await else {
            return; // no IPv6 loopback on this host
        };
        let (addr, served) = serve(l, b"HTTP/1.1 204 No Content\r\n\r\n");
        let mut up = Upstream::connect(addr, W, W).await.expect("connect");
        send(&mut up, "/v6").await;
        let resp = up.read_header().await.expect("head");
        assert_eq!(resp.status.as_u16(), 204);
        let got = served.await.expect("server");
        assert!(got.starts_with(b"GET /v6 HTTP/1.1\r\n"));
    }
}
