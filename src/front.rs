//! The front of every client connection: reads each HTTP/1 request head and picks the path
//! that serves it.
//!
//! - A plain HTTP/1.1 request (no upgrade, no `Expect`, not HEAD, a body of a clear length)
//!   takes ssegate's lean path: an [`h1::downstream::Client`] under the
//!   [`relay`](crate::relay), with ssegate's own upstream client. An open stream holds a few
//!   KiB there, where Pingora's request pipeline parks about 40 (bench/MEMORY.md), and a
//!   plain request takes less CPU than on the pipeline (README, "Performance against nginx").
//! - Every other request goes to Pingora's pipeline over a [`Replay`] of the bytes read, and
//!   the connection comes back here for its next request.
//! - HTTP/2 connections go to Pingora whole.
//!
//! Reading heads here is also where `header_timeout` is kept: Pingora bounds each read of a
//! head, never the head as a whole, so a client trickling a byte a second could hold a
//! connection as long as it liked. From a head's first byte, the whole head must be in within
//! the limit, or the connection closes unanswered.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use http::{header, Method, Version};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest, Stream, ALPN};
use pingora::server::ShutdownWatch;
use pingora::{Error, ErrorType};
use pingora_http::RequestHeader;
use pingora_proxy::HttpProxy;
use tokio::time::Instant;

use crate::h1::body::Framing;
use crate::h1::downstream::{Client, Origin};
use crate::h1::{head, scratch};
use crate::proxy::{self, Gateway, RequestCtx};
use crate::proxy::{CLIENT_KEEPALIVE_SECS, CLIENT_READ_TIMEOUT, CLIENT_WRITE_TIMEOUT};
use crate::relay::Downstream;
use crate::replay::Replay;
use crate::site::Shared;

/// How long a new connection may wait before its first byte (Pingora's own default).
const FIRST_HEAD_WAIT: Duration = Duration::from_secs(60);
/// Largest request head read here (Pingora's limit: a larger one goes to Pingora to refuse).
const MAX_HEAD: usize = 1_048_575;

/// The proxy's server app: ssegate's lean path in front of Pingora's pipeline.
pub struct Front {
    proxy: Arc<HttpProxy<Gateway>>,
    shared: Arc<Shared>,
}

impl Front {
    /// A front for `proxy` over the shared state.
    pub fn new(proxy: HttpProxy<Gateway>, shared: Arc<Shared>) -> Self {
        Front {
            proxy: Arc::new(proxy),
            shared,
        }
    }

    /// Serves an HTTP/1 connection, request after request, until it closes.
    async fn serve_h1(&self, io: Stream, shutdown: &ShutdownWatch) {
        let Some((mut io, mut buf, peer)) = rehome(io) else {
            return;
        };
        let origin = Origin {
            peer: peer.map(|a| a.ip()),
            tls: io.get_ssl_digest().is_some(),
        };
        let mut settings: Option<HttpPersistentSettings> = None;
        let mut idle = FIRST_HEAD_WAIT;
        loop {
            let limit = self.shared.site().config.header_timeout;
            // Boxed: a head is read in moments, and inline its wait would take room in the
            // connection's task for as long as the request it reads is served.
            let read = Box::pin(read_head(&mut io, &mut buf, idle, limit));
            let Some(end) = read.await else {
                return;
            };
            idle = Duration::from_secs(CLIENT_KEEPALIVE_SECS);
            // The request's header values are slices of its head for its whole life: the head
            // is taken as it was read when nothing came after it, else copied, so that a body
            // or a next request read with it is not kept too.
            let head = if buf.len() == end {
                buf.split().freeze()
            } else {
                let head = Bytes::copy_from_slice(&buf[..end]);
                buf.advance(end);
                head
            };
            if buf.is_empty() {
                buf = BytesMut::new();
            }
            // (A `let`, not an `if let`: the parsed request would otherwise keep its room in
            // this future while it is served.)
            let Some((req, body_len)) = self.lean_request(&head) else {
                // Boxed: inline, Pingora's request future would enlarge every connection's
                // task, which a lean stream keeps for its whole life.
                let Some(digested) = with_digest(io, peer) else {
                    return;
                };
                let pingora = self.serve_pingora(digested, head, buf, settings.take(), shutdown);
                let Some(next) = Box::pin(pingora).await else {
                    return;
                };
                (io, buf, settings) = next;
                if *shutdown.borrow() {
                    return;
                }
                continue;
            };
            // Inline: a lean request, a stream above all, is what this task is for. (Made here
            // and lent, the request has one place in this future, not one per async fn.)
            let mut client = Client::new(
                &mut io,
                &mut buf,
                req,
                body_len,
                origin,
                CLIENT_READ_TIMEOUT,
                CLIENT_WRITE_TIMEOUT,
            );
            if !self.serve_lean(&mut client, shutdown).await || *shutdown.borrow() {
                return;
            }
        }
    }

    /// Serves one request on Pingora's pipeline, which reads `head` again and then what
    /// followed it in `buf`; the connection comes back if it may carry another request.
    async fn serve_pingora(
        &self,
        io: Stream,
        head: Bytes,
        buf: BytesMut,
        settings: Option<HttpPersistentSettings>,
        shutdown: &ShutdownWatch,
    ) -> Option<(Stream, BytesMut, Option<HttpPersistentSettings>)> {
        let mut again = BytesMut::with_capacity(head.len() + buf.len());
        again.extend_from_slice(&head);
        again.extend_from_slice(&buf);
        let replay = Replay::new(io, again);
        let mut session = ServerSession::new_http1(Box::new(replay));
        // No keepalive once shutting down; `early_request_filter` bounds it otherwise.
        session.set_keepalive((!*shutdown.borrow()).then_some(CLIENT_KEEPALIVE_SECS));
        if let Some(s) = settings {
            s.apply_to_session(&mut session);
        }
        let reused = self.proxy.process_new_http(session, shutdown).await?;
        let (stream, next) = reused.consume();
        let replay = stream.into_any().downcast::<Replay>().ok()?;
        let (io, buf) = replay.into_parts();
        Some((io, buf, next))
    }

    /// The request head and body length if the lean path can serve this request: plain
    /// HTTP/1.1 (origin-form target, not HEAD or CONNECT, no upgrade, no `Expect`, at most
    /// 64 header lines) with a body of a clear length. Pingora's pipeline serves the rest.
    fn lean_request(&self, head: &Bytes) -> Option<(RequestHeader, u64)> {
        let req = head::parse_request(head).ok()?;
        let plain = req.version == Version::HTTP_11
            && req.raw_path().starts_with(b"/")
            && !matches!(req.method, Method::HEAD | Method::CONNECT)
            && !req.headers.contains_key(header::UPGRADE)
            && !req.headers.contains_key(header::EXPECT);
        let body_len = match head::request_framing(&req)? {
            Framing::Empty => 0,
            Framing::Length(n) => n,
            Framing::Chunked | Framing::UntilClose => return None,
        };
        plain.then_some((req, body_len))
    }

    /// Serves one request on the lean path; `true` if the connection may carry another.
    async fn serve_lean(&self, client: &mut Client<'_>, shutdown: &ShutdownWatch) -> bool {
        let mut ctx = RequestCtx::new(&self.shared);
        if *shutdown.borrow() {
            client.close_after();
        }
        let error = match proxy::admit(&self.shared, client, &mut ctx, true).await {
            Ok(true) => None,
            Ok(false) => Some(Error::explain(
                ErrorType::InternalError,
                "lean request left unanswered",
            )),
            Err(e) => Some(e),
        };
        if let Some(e) = error.as_deref() {
            let req = client.req_header();
            log::error!(
                "{} — {} {}",
                proxy::bounded(e),
                req.method,
                String::from_utf8_lossy(req.raw_path())
            );
            // Boxed: rare, and inline it would enlarge every request's future.
            Box::pin(proxy::answer_failure(client, e, &mut ctx)).await;
        }
        proxy::record(
            &self.shared,
            &mut ctx,
            client.response_status(),
            error.as_deref(),
        );
        error.is_none() && client.reusable()
    }
}

#[async_trait]
impl ServerApp for Front {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // HTTP/2 multiplexes requests over one connection: Pingora serves it whole.
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.proxy.process_new(stream, shutdown).await;
        }
        // The connection gets a task of its own, sized for this front alone: Pingora's
        // per-connection task (about 9 KiB, sized for its TLS handshake too) ends here
        // instead of staying parked under every open stream. It stays on this thread.
        let front = self.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { front.serve_h1(stream, &shutdown).await });
        None
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(self.proxy.as_ref()).await
    }
}

/// Registers a plain TCP connection with the runtime of the thread that serves it.
///
/// Pingora registers every accepted socket with the runtime that runs its accept loop, then
/// serves the connection on any worker thread. Each read readiness of a connection served
/// elsewhere then costs a cross-thread wake (an eventfd write and a futex): measured at about
/// one per plain request. A duplicate of the socket, registered here, takes its place; the
/// original is deregistered and closed. TLS connections are left as they are.
///
/// Whatever the client has sent already comes back with it, and the peer's address. `None`:
/// the client has closed. The duplicate carries no socket digest (about 400 bytes that a lean
/// request never reads): [`with_digest`] gives it one before Pingora's pipeline needs it.
fn rehome(stream: Stream) -> Option<(Stream, BytesMut, Option<SocketAddr>)> {
    let mut early = BytesMut::new();
    let peer = stream
        .get_socket_digest()
        .and_then(|d| d.peer_addr()?.as_inet().copied());
    let Some(raw) = stream
        .as_any()
        .downcast_ref::<L4Stream>()
        .map(|s| s.as_raw_fd())
    else {
        return Some((stream, early, peer));
    };
    let fd = {
        // SAFETY: the descriptor belongs to `stream`, which outlives this borrow; the borrow
        // is only used to duplicate it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
        borrowed.try_clone_to_owned()
    };
    let Ok(sock) = fd.map(std::net::TcpStream::from) else {
        return Some((stream, early, peer));
    };
    // A fresh registration knows no readiness until the reactor's next turn, so a first read
    // through it would wait that turn for a request that is usually here already.
    match scratch::read_now(&sock, &mut early) {
        Ok(Some(0)) | Err(_) => return None,
        Ok(_) => {}
    }
    let Ok(sock) = tokio::net::TcpStream::from_std(sock) else {
        return Some((stream, early, peer));
    };
    drop(stream);
    Some((Box::new(L4Stream::from(sock)), early, peer))
}

/// `io` with a socket digest naming `peer`, as Pingora's pipeline expects of a plain TCP
/// connection (the client's address in its logs and in the request's context).
fn with_digest(io: Stream, peer: Option<SocketAddr>) -> Option<Stream> {
    if io.get_socket_digest().is_some() || !io.as_any().is::<L4Stream>() {
        return Some(io);
    }
    match io.into_any().downcast::<L4Stream>() {
        Ok(mut l4) => {
            let digest = SocketDigest::from_raw_fd(l4.as_raw_fd());
            if let Some(p) = peer {
                let _ = digest.peer_addr.set(Some(PeerAddr::Inet(p)));
            }
            l4.set_socket_digest(digest);
            Some(l4)
        }
        // Not reached: the type was checked above.
        Err(_) => None,
    }
}

/// Reads until `buf` holds a whole request head and returns its length. `None` when the
/// client closed, stayed idle for `idle` before a head began, or took longer than `limit` over
/// one: the connection then closes unanswered.
async fn read_head(
    io: &mut Stream,
    buf: &mut BytesMut,
    idle: Duration,
    limit: Duration,
) -> Option<usize> {
    // Bytes already here (sent right after the last request) start the clock at once.
    let mut deadline = (!buf.is_empty()).then(|| Instant::now() + limit);
    let mut scanned = 0;
    loop {
        if let Some(end) = head::head_end(buf, scanned) {
            return Some(end);
        }
        if buf.len() >= MAX_HEAD {
            return Some(buf.len());
        }
        scanned = head::resume_at(buf.len());
        let wait = deadline.map_or(idle, |d| d.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, scratch::read_append(io, scratch::SIZE, buf)).await {
            Ok(Ok(n)) if n > 0 => {
                deadline.get_or_insert_with(|| Instant::now() + limit);
            }
            Err(_) if deadline.is_some() => {
                log::debug!("request head not complete within {limit:?}: closing");
                return None;
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncWriteExt, DuplexStream};

    fn pair() -> (Stream, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        (Box::new(ours), theirs)
    }

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_head_trickled_past_the_limit_is_dropped() {
        let (mut io, mut client) = pair();
        let reader = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            read_head(&mut io, &mut buf, 30 * S, 10 * S).await
        });
        client
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        for _ in 0..9 {
            tokio::time::sleep(S).await;
            client.write_all(b"x").await.expect("write");
        }
        tokio::time::sleep(2 * S).await;
        let _ = client.write_all(b"\r\n\r\n").await;
        assert_eq!(reader.await.expect("task"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_starts_at_the_first_byte() {
        let (mut io, mut client) = pair();
        let reader = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            let end = read_head(&mut io, &mut buf, 60 * S, 10 * S).await;
            (end, buf)
        });
        // Idle before the head is the keepalive's business, not this clock's.
        tokio::time::sleep(30 * S).await;
        client
            .write_all(b"POST / HTTP/1.1\r\n")
            .await
            .expect("write");
        tokio::time::sleep(9 * S).await;
        client
            .write_all(b"Host: a\r\n\r\nbody")
            .await
            .expect("write");
        let (end, buf) = reader.await.expect("task");
        assert_eq!(end, Some(buf.len() - 4));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_closes_after_its_idle_wait() {
        let (mut io, _client) = pair();
        let t0 = Instant::now();
        let mut buf = BytesMut::new();
        assert_eq!(read_head(&mut io, &mut buf, 5 * S, S).await, None);
        assert_eq!(t0.elapsed(), 5 * S);
    }
}
