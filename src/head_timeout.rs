//! A deadline on each HTTP/1 request head as a whole (`header_timeout`).
//!
//! Pingora bounds each *read* of a request head, never the head as a whole, so a client that
//! trickles a byte a second holds a connection as long as it likes. [`HeadTimeout`] wraps the
//! proxy's app and puts every accepted connection behind a [`HeadGuard`]: from the first byte
//! of a head, reads fail once the limit has passed, until the proxy says the head is in
//! ([`head_read`], from `early_request_filter`). [`next_head`] (from `logging`) arms the guard
//! again for the next request on a kept-alive connection. The guard never looks at the bytes.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::http::ServerSession;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Waiting for the first byte of a head; the clock starts with it.
const ARMED: u8 = 0;
/// The head is in: reads pass through untimed.
const DONE: u8 = 1;
/// Armed again by the proxy; the poll side drops the last head's clock first.
const REARMED: u8 = 2;

/// Wraps a [`ServerApp`] so that each connection it is given reads through a [`HeadGuard`].
pub struct HeadTimeout<A> {
    app: Arc<A>,
    limit: Box<dyn Fn() -> Duration + Send + Sync>,
}

impl<A> HeadTimeout<A> {
    /// `limit` is asked once per connection, so a reloaded config applies to new connections.
    pub fn new(app: A, limit: impl Fn() -> Duration + Send + Sync + 'static) -> Self {
        HeadTimeout {
            app: Arc::new(app),
            limit: Box::new(limit),
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeadTimeout<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // HTTP/2 multiplexes heads over one connection (and is never told a head is in);
        // a stream handed back for reuse is already guarded.
        let skip = matches!(stream.selected_alpn_proto(), Some(ALPN::H2))
            || stream.as_any().is::<HeadGuard>();
        let stream: Stream = if skip {
            stream
        } else {
            Box::new(HeadGuard::new(stream, (self.limit)()))
        };
        self.app.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}

/// Tells the guard under `session` (if any) that its request head has been read.
pub fn head_read(session: &ServerSession) {
    if let Some(guard) = guard_of(session) {
        guard.phase.store(DONE, Ordering::Relaxed);
    }
}

/// Arms the guard under `session` (if any) for the next request head on the connection.
pub fn next_head(session: &ServerSession) {
    if let Some(guard) = guard_of(session) {
        guard.phase.store(REARMED, Ordering::Relaxed);
    }
}

fn guard_of(session: &ServerSession) -> Option<&HeadGuard> {
    session.stream()?.as_any().downcast_ref::<HeadGuard>()
}

/// A connection whose request heads must arrive within a limit.
pub struct HeadGuard {
    inner: Stream,
    limit: Duration,
    phase: AtomicU8,
    /// When the current head's first byte arrived.
    started: Option<Instant>,
    /// Wakes the reader at the deadline; made only when a head is actually waited on.
    timer: Option<Pin<Box<Sleep>>>,
}

impl HeadGuard {
    /// Guards `inner`; its first head is timed from its first byte.
    pub fn new(inner: Stream, limit: Duration) -> Self {
        HeadGuard {
            inner,
            limit,
            phase: AtomicU8::new(ARMED),
            started: None,
            timer: None,
        }
    }

    fn expired(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("request head not complete within {:?}", self.limit),
        )
    }
}

impl fmt::Debug for HeadGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadGuard")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .field("phase", &self.phase.load(Ordering::Relaxed))
            .finish()
    }
}

impl AsyncRead for HeadGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.phase.load(Ordering::Relaxed) {
            DONE => {
                this.started = None;
                this.timer = None;
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            REARMED => {
                this.started = None;
                this.timer = None;
                this.phase.store(ARMED, Ordering::Relaxed);
            }
            _ => {}
        }
        let deadline = this.started.map(|t| t + this.limit);
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Poll::Ready(Err(this.expired()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.started.is_none() && buf.filled().len() > before {
                    this.started = Some(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let Some(deadline) = deadline else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(this.expired())),
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => ready,
        }
    }
}

impl AsyncWrite for HeadGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HeadGuard {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeadGuard {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadGuard {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadGuard {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadGuard {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeadGuard {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeadGuard {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    async fn guarded(limit: Duration) -> (HeadGuard, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1024);
        (HeadGuard::new(Box::new(ours), limit), theirs)
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_trickled_past_the_limit_fails_the_read() {
        let (mut guard, mut client) = guarded(Duration::from_secs(10)).await;
        let mut buf = [0u8; 64];
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(guard.read(&mut buf).await.unwrap(), 16);
        for _ in 0..9 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.write_all(b"x").await.unwrap();
            assert_eq!(guard.read(&mut buf).await.unwrap(), 1);
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        client.write_all(b"y").await.unwrap();
        let err = guard.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_half_head_is_woken_at_the_deadline() {
        let (mut guard, mut client) = guarded(Duration::from_secs(10)).await;
        let mut buf = [0u8; 64];
        client.write_all(b"GET / HT").await.unwrap();
        assert_eq!(guard.read(&mut buf).await.unwrap(), 8);
        let t0 = Instant::now();
        let err = guard.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(t0.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_starts_at_the_first_byte_and_stops_when_the_head_is_in() {
        let (mut guard, mut client) = guarded(Duration::from_secs(10)).await;
        let mut buf = [0u8; 64];
        // An idle connection is not this clock's business (keepalive bounds it).
        tokio::time::sleep(Duration::from_secs(30)).await;
        client.write_all(b"POST / HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(guard.read(&mut buf).await.unwrap(), 19);
        guard.phase.store(DONE, Ordering::Relaxed);
        // A slow body is not a slow head.
        tokio::time::sleep(Duration::from_secs(30)).await;
        client.write_all(b"body").await.unwrap();
        assert_eq!(guard.read(&mut buf).await.unwrap(), 4);

        // The next head gets a fresh clock, from its own first byte.
        guard.phase.store(REARMED, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(30)).await;
        client.write_all(b"GET /2 HTTP/1.1\r\n").await.unwrap();
        assert_eq!(guard.read(&mut buf).await.unwrap(), 17);
        tokio::time::sleep(Duration::from_secs(9)).await;
        client.write_all(b"\r\n").await.unwrap();
        assert_eq!(guard.read(&mut buf).await.unwrap(), 2);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(guard.read(&mut buf).await.is_err(), "past the limit");
    }

    #[tokio::test]
    async fn writes_and_end_of_stream_pass_through() {
        let (mut guard, mut client) = guarded(Duration::from_secs(10)).await;
        guard.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let mut got = [0u8; 19];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\n");
        drop(client);
        let mut buf = [0u8; 8];
        assert_eq!(guard.read(&mut buf).await.unwrap(), 0);
    }
}
