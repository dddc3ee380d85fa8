//! The front of every client connection: reads each HTTP/1 request head and picks the path
//! that serves it.
//!
//! - A plain HTTP/1.1 request (no upgrade, no `Expect`, not HEAD, a body of a clear length)
//!   takes ssegate's lean path: a [`Client`] under the
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

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Version};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use pingora::{Error, ErrorType};
use pingora_proxy::HttpProxy;
use tokio::io::AsyncRead;
use tokio::time::Instant;

use crate::h1::body::Framing;
use crate::h1::conn::Conn;
use crate::h1::downstream::{Client, Origin};
use crate::h1::{head, scratch};
use crate::proxy::{self, Gateway, RequestCtx};
use crate::proxy::{CLIENT_KEEPALIVE_SECS, CLIENT_READ_TIMEOUT, CLIENT_WRITE_TIMEOUT};
use crate::relay::Downstream;
use crate::replay::Replay;
use crate::site::Shared;
use crate::timer::Timer;

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
        let Some((mut conn, mut buf, peer)) = Conn::adopt(io) else {
            return;
        };
        let origin = Origin {
            peer: peer.map(|a| a.ip()),
            tls: conn.is_tls(),
        };
        // Boxed: only a connection Pingora's pipeline has served has any.
        let mut settings: Option<Box<HttpPersistentSettings>> = None;
        let mut idle = FIRST_HEAD_WAIT;
        // Every wait of this connection on the lean path, one after another.
        let mut timer = Timer::new(Instant::now() + idle);
        loop {
            let limit = self.shared.site().config.header_timeout;
            // Boxed: a head is read in moments, and inline its wait would take room in the
            // connection's task for as long as the request it reads is served.
            let read = Box::pin(read_head(conn.io(), &mut buf, &mut timer, idle, limit));
            let Some(end) = read.await else {
                return;
            };
            idle = Duration::from_secs(CLIENT_KEEPALIVE_SECS);
            // In a block, so that the head and the parsed request keep no room of their own in
            // this future while the request is served (an `if let` would keep the parse).
            let (req, body_len) = {
                // The request's header values are slices of its head for its whole life: the
                // head is taken as it was read when nothing came after it, else copied, so
                // that a body or a next request read with it is not kept too.
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
                let Some(lean) = self.lean_request(&head) else {
                    // Boxed: inline, Pingora's request future would enlarge every
                    // connection's task, which a lean stream keeps for its whole life.
                    let io = conn.into_pingora(peer);
                    let pingora = self.serve_pingora(io, head, buf, settings.take(), shutdown);
                    let Some((io, rest, next)) = Box::pin(pingora).await else {
                        return;
                    };
                    (conn, buf, settings) = (Conn::Pingora(io), rest, next);
                    if *shutdown.borrow() {
                        return;
                    }
                    continue;
                };
                lean
            };
            // Inline: a lean request, a stream above all, is what this task is for. (Made here
            // and lent, the request has one place in this future, not one per async fn.)
            let mut client = Client::new(
                conn.io(),
                &mut buf,
                req,
                body_len,
                origin,
                CLIENT_READ_TIMEOUT,
                CLIENT_WRITE_TIMEOUT,
            );
            if !self.serve_lean(&mut client, &mut timer, shutdown).await || *shutdown.borrow() {
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
        settings: Option<Box<HttpPersistentSettings>>,
        shutdown: &ShutdownWatch,
    ) -> Option<(Stream, BytesMut, Option<Box<HttpPersistentSettings>>)> {
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
        Some((io, buf, next.map(Box::new)))
    }

    /// The request head and body length if the lean path can serve this request: plain
    /// HTTP/1.1 (origin-form target, not HEAD or CONNECT, no upgrade, no `Expect`, at most
    /// 64 header lines) with a body of a clear length. Pingora's pipeline serves the rest.
    fn lean_request(&self, head: &Bytes) -> Option<(head::Request, u64)> {
        let req = head::parse_request(head).ok()?;
        let plain = req.version == Version::HTTP_11
            && req.target().starts_with(b"/")
            && !matches!(req.method, Method::HEAD | Method::CONNECT)
            && !req.lines.contains("upgrade")
            && !req.lines.contains("expect");
        let body_len = match head::request_framing(&req)? {
            Framing::Empty => 0,
            Framing::Length(n) => n,
            Framing::Chunked | Framing::UntilClose => return None,
        };
        plain.then_some((req, body_len))
    }

    /// Serves one request on the lean path; `true` if the connection may carry another.
    async fn serve_lean(
        &self,
        client: &mut Client<'_>,
        timer: &mut Timer,
        shutdown: &ShutdownWatch,
    ) -> bool {
        let mut ctx = RequestCtx::new(&self.shared);
        if *shutdown.borrow() {
            client.close_after();
        }
        let error = match proxy::admit(&self.shared, client, &mut ctx, Some(timer)).await {
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
                String::from_utf8_lossy(req.target())
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

/// Reads until `buf` holds a whole request head and returns its length. `None` when the
/// client closed, stayed idle for `idle` before a head began, or took longer than `limit` over
/// one: the connection then closes unanswered.
async fn read_head(
    io: &mut (impl AsyncRead + Unpin + ?Sized),
    buf: &mut BytesMut,
    timer: &mut Timer,
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
        timer.set(deadline.unwrap_or_else(|| Instant::now() + idle));
        tokio::select! {
            biased;
            read = scratch::read_append(io, scratch::SIZE, buf) => match read {
                Ok(n) if n > 0 => {
                    deadline.get_or_insert_with(|| Instant::now() + limit);
                }
                _ => return None,
            },
            _ = timer.fired() => {
                if deadline.is_some() {
                    log::debug!("request head not complete within {limit:?}: closing");
                }
                return None;
            }
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
            read_head(
                &mut io,
                &mut buf,
                &mut Timer::new(Instant::now()),
                30 * S,
                10 * S,
            )
            .await
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
            let end = read_head(
                &mut io,
                &mut buf,
                &mut Timer::new(Instant::now()),
                60 * S,
                10 * S,
            )
            .await;
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
        assert_eq!(
            read_head(&mut io, &mut buf, &mut Timer::new(Instant::now()), 5 * S, S).await,
            None
        );
        assert_eq!(t0.elapsed(), 5 * S);
    }
}
