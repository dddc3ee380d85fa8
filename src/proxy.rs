//! The Pingora proxy: each callback is a thin adapter over the plain modules.
//!
//! Plain HTTP/1.1 requests are relayed on ssegate's lean path before Pingora sees them (see
//! [`front`](crate::front)). What reaches Pingora (HTTP/2, HEAD, chunked uploads, `Expect`,
//! HTTP/1.0, upgrades) is relayed from `request_filter` if it is for a stream route or an
//! upgrade, and otherwise goes through Pingora's own pipeline, which already passes each
//! upstream read to the client and flushes it at once. What a request goes through on either
//! path (`admit`, `answer_failure`, `record`) is written once, here.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, OrErr, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::h1::head::Response;
use crate::headers;
use crate::headers::view::{Fields, RequestHead};
use crate::observe::StreamEnd;
use crate::relay::Downstream;
use crate::site::{InFlight, Shared, Site};
use crate::streams::TrackedStream;
use crate::timer::Timer;
use crate::upstream::Lease;

/// How long an idle client connection is kept open between requests (Pingora's default
/// after the first request is forever).
pub(crate) const CLIENT_KEEPALIVE_SECS: u64 = 75;
/// How long one read of a request body may wait.
pub(crate) const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one write to a client may block before the client counts as gone.
pub(crate) const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a write to an upstream may block.
pub(crate) const UPSTREAM_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an idle upstream connection stays in the pool.
pub(crate) const UPSTREAM_POOL_IDLE: Duration = Duration::from_secs(60);
/// Per-read timeout of an upgraded (WebSocket) connection.
pub(crate) const UPGRADED_IDLE: Duration = Duration::from_secs(3600);

/// The proxy service.
pub struct Gateway {
    shared: Arc<Shared>,
}

impl Gateway {
    /// A proxy over the shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Gateway { shared }
    }
}

/// What one request carries through the callbacks.
pub struct RequestCtx {
    pub(crate) started: Instant,
    pub(crate) site: Option<Arc<Site>>,
    pub(crate) route: Option<usize>,
    pub(crate) client: IpAddr,
    pub(crate) lease: Option<Lease>,
    pub(crate) tried: Vec<usize>,
    pub(crate) stream: Option<TrackedStream>,
    pub(crate) status: u16,
    _slot: Option<crate::limits::Slot>,
    _in_flight: InFlight,
}

impl RequestCtx {
    /// The site the request was routed on and its route's index (set by [`admit`]).
    pub(crate) fn routed(&self) -> Result<(Arc<Site>, usize)> {
        match (&self.site, self.route) {
            (Some(s), Some(i)) => Ok((s.clone(), i)),
            _ => Error::e_explain(ErrorType::InternalError, "request not routed"),
        }
    }

    /// A request just begun (it counts as in flight until the context drops).
    pub(crate) fn new(shared: &Shared) -> Self {
        RequestCtx {
            started: Instant::now(),
            site: None,
            route: None,
            client: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            lease: None,
            tried: Vec::new(),
            stream: None,
            status: 0,
            _slot: None,
            _in_flight: shared.enter(),
        }
    }
}

/// The peer's IP address (a Unix socket peer counts as loopback).
fn peer_ip(session: &impl Downstream) -> IpAddr {
    session.peer_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Writes a short plain-text answer of ssegate's own.
pub(crate) async fn respond_plain<D: Downstream>(
    session: &mut D,
    status: u16,
    text: &str,
    extra: Option<(&'static str, &'static str)>,
) -> Result<()> {
    let body = Bytes::from(format!("{status} {text}\n"));
    let mut resp = Response::new(status, 3).or_err(ErrorType::InternalError, "answer status")?;
    resp.lines
        .append("content-type", "text/plain; charset=utf-8");
    resp.lines.append("content-length", body.len().to_string());
    if let Some((k, v)) = extra {
        resp.lines.append(k, v);
    }
    session.write_header(resp).await?;
    session.write_body(&[&body]).await?;
    session.finish().await
}

/// Routes a request, applies its route's limits and relays it if it is a stream route, an
/// upgrade, or on the lean path (`lean`: the connection's timer, which the relay then uses):
/// `Ok(true)` when the response is complete, `Ok(false)` when Pingora's pipeline proxies it.
pub(crate) async fn admit<D: Downstream>(
    shared: &Shared,
    session: &mut D,
    ctx: &mut RequestCtx,
    lean: Option<&mut Timer>,
) -> Result<bool> {
    let site = shared.site();
    let req = session.req_header();
    let Some(index) = site.find(req.host(), req.path()) else {
        ctx.status = 404;
        // Answers here are boxed: inline, their writes would enlarge every request's future,
        // which a stream keeps for its whole life.
        Box::pin(respond_plain(session, 404, "Not Found: no route", None)).await?;
        return Ok(true);
    };
    let peer = peer_ip(session);
    // Every X-Forwarded-For line: a trusted proxy may add its own after the client's.
    ctx.client = headers::client_of(peer, req.fields(), &site.config.trusted_proxies);
    ctx.site = Some(site.clone());
    ctx.route = Some(index);
    let Some((route, state)) = site.route(index) else {
        return Error::e_explain(ErrorType::InternalError, "route index out of range");
    };
    match state.limits.acquire(ctx.client) {
        Ok(slot) => ctx._slot = Some(slot),
        Err(why) => {
            match why {
                crate::limits::Rejection::MaxStreams => state.metrics.rejected_max_streams.inc(),
                crate::limits::Rejection::PerClient => state.metrics.rejected_per_client.inc(),
            }
            ctx.status = 429;
            let text = format!("Too Many Requests: {}", why.as_str());
            Box::pin(respond_plain(
                session,
                429,
                &text,
                Some(("retry-after", "1")),
            ))
            .await?;
            return Ok(true);
        }
    }
    // Stream routes need timed writes; upgrades need a tunnel Pingora can start reliably.
    if lean.is_some() || route.stream.is_some() || session.is_upgrade_req() {
        // Boxed: the relay is needed only here, and this future lives as long as the request.
        return match lean {
            Some(timer) => Box::pin(crate::relay::serve(shared, session, ctx, timer)).await,
            None => {
                Box::pin(async move {
                    let mut timer = Timer::unset();
                    crate::relay::serve(shared, session, ctx, &mut timer).await
                })
                .await
            }
        };
    }
    Ok(false)
}

/// After a failed request: answers 502/504 with a short plain body unless a response was
/// already under way, and notes the status.
pub(crate) async fn answer_failure<D: Downstream>(
    session: &mut D,
    e: &Error,
    ctx: &mut RequestCtx,
) {
    if let Some(written) = session.response_status() {
        ctx.status = written;
    } else {
        let code = error_status(e);
        ctx.status = code;
        if code > 0 {
            if let Err(we) = respond_plain(session, code, &error_text(code, e), None).await {
                log::debug!("could not send error response: {we}");
            }
        }
    }
}

/// Once per request, at its end: closes its stream record and counts it.
pub(crate) fn record(
    shared: &Shared,
    ctx: &mut RequestCtx,
    written: Option<u16>,
    e: Option<&Error>,
) {
    if let Some(status) = written {
        ctx.status = status;
    }
    if let Some(stream) = ctx.stream.as_mut() {
        stream.finish(stream_end(e), ctx.status);
    }
    let seconds = ctx.started.elapsed().as_secs_f64();
    match (&ctx.site, ctx.route) {
        (Some(site), Some(i)) => {
            if let Some((_, state)) = site.route(i) {
                state.metrics.request_done(ctx.status, seconds);
            }
        }
        _ => shared.metrics.unmatched_request(ctx.status, seconds),
    }
}

/// The status ssegate answers for an error that happened before any response was written.
pub(crate) fn error_status(e: &Error) -> u16 {
    use ErrorType::*;
    match (e.etype(), e.esource()) {
        (HTTPStatus(code), _) => *code,
        (ReadTimedout, ErrorSource::Upstream) => 504,
        (_, ErrorSource::Upstream) => 502,
        (
            ReadError | WriteError | ConnectionClosed | ReadTimedout | WriteTimedout,
            ErrorSource::Downstream,
        ) => 0,
        (_, ErrorSource::Downstream) => 400,
        _ => 500,
    }
}

/// How a stream ended, from the error Pingora reports for the request.
pub(crate) fn stream_end(e: Option<&Error>) -> StreamEnd {
    match e {
        None => StreamEnd::Finished,
        Some(e) => match (e.esource(), e.etype()) {
            (ErrorSource::Downstream, _) => StreamEnd::ClientClosed,
            (ErrorSource::Upstream, ErrorType::ReadTimedout) => StreamEnd::IdleTimeout,
            _ => StreamEnd::UpstreamError,
        },
    }
}

/// Longest error text written to the log for one request.
const MAX_LOGGED_ERROR: usize = 400;

/// An error as one bounded log line: Pingora puts whole (escaped) upstream header blocks
/// into some errors, so a hostile upstream could otherwise write megabytes per request.
pub(crate) fn bounded(e: &Error) -> String {
    let mut text = e.to_string();
    if text.len() > MAX_LOGGED_ERROR {
        let mut cut = MAX_LOGGED_ERROR;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("… (truncated)");
    }
    text
}

/// A short reason for an error body, without internal detail.
fn error_text(status: u16, e: &Error) -> String {
    let reason = match status {
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        400 => "Bad Request",
        _ => "Error",
    };
    format!("{reason}: {}", e.etype().as_str())
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(&self.shared)
    }

    /// Runs first: bounds client keepalive and slow writes.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Only bound a keepalive Pingora allows: it is off for `Connection: close`, HTTP/1.0
        // and requests with both Content-Length and Transfer-Encoding (RFC 9112 6.3: close).
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(CLIENT_KEEPALIVE_SECS));
        }
        session.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
        Ok(())
    }

    /// Routes the request, applies limits, and serves stream routes through the relay.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        admit(&self.shared, session, ctx, None).await
    }

    /// Picks a server (another one on a retry) for the pipeline.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let (site, index) = ctx.routed()?;
        let Some((route, _, pool)) = site.served(index) else {
            return Error::e_explain(ErrorType::InternalError, "route without upstream");
        };
        let read_timeout = match &route.stream {
            Some(s) => s.idle_timeout,
            None => route.read_timeout,
        };
        let lease = pool.pick(&ctx.tried).ok_or_else(|| {
            Error::explain(
                ErrorType::ConnectNoRoute,
                "every server of the upstream was tried",
            )
            .into_up()
        })?;
        ctx.tried.push(lease.index());
        let addr = lease.server().addr_or_resolve().await.map_err(|e| {
            Error::because(
                ErrorType::ConnectNoRoute,
                format!("resolving {}", lease.server().label),
                e,
            )
            .into_up()
        })?;
        ctx.lease = Some(lease);
        Ok(Box::new(crate::relay::peer(
            addr,
            pool.connect_timeout,
            Some(read_timeout),
        )))
    }

    /// A refused connection is tried once more on the next server: nothing was sent yet.
    fn fail_to_connect(
        &self,
        _s: &mut Session,
        _p: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(lease) = &ctx.lease {
            lease.server().refresh_after_failure();
        }
        let servers = ctx.routed().ok().map_or(0, |(site, i)| {
            site.served(i)
                .map_or(0, |(_, _, pool)| pool.servers().len())
        });
        if ctx.tried.len() < 2 && servers > ctx.tried.len() {
            e.set_retry(true);
        }
        e
    }

    /// Tells the upstream who the client is.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let trusted = ctx
            .site
            .as_ref()
            .map(|s| s.config.trusted_proxies.as_slice())
            .unwrap_or(&[]);
        headers::set_forwarded(req, peer_ip(session), session.is_tls(), trusted);
        Ok(())
    }

    /// Starts observing any response that is a stream.
    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.status = resp.status.as_u16();
        if resp.status.as_u16() == 101 || session.was_upgraded() {
            return Ok(());
        }
        let content_type = Fields::get(&resp.headers, "content-type");
        let Some(framing) = headers::response_framing(resp.status, content_type, false) else {
            return Ok(());
        };
        if let (Some(site), Some(index)) = (&ctx.site, ctx.route) {
            if let Some((_, state)) = site.route(index) {
                let upstream = ctx
                    .lease
                    .as_ref()
                    .map(|l| l.server().label.clone())
                    .unwrap_or_default();
                ctx.stream =
                    Some(
                        self.shared
                            .track(framing, ctx.started, state, ctx.client, upstream),
                    );
            }
        }
        Ok(())
    }

    /// Observes each body chunk of a stream on its way out (the bytes are not touched).
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let (Some(stream), Some(chunk)) = (ctx.stream.as_mut(), body.as_ref()) {
            if !chunk.is_empty() {
                stream.on_chunk(chunk);
            }
        }
        Ok(None)
    }

    /// Replaces Pingora's own error line (unbounded) with a bounded one.
    fn suppress_error_log(&self, session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        log::error!("{} — {}", bounded(e), session.request_summary());
        true
    }

    /// Answers 502/504 with a short plain body, unless a response was already under way.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        answer_failure(session, e, ctx).await;
        FailToProxy {
            error_code: ctx.status,
            can_reuse_downstream: false,
        }
    }

    /// Runs once per request: closes the stream record and counts the request.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let written = session.response_written().map(|h| h.status.as_u16());
        record(&self.shared, ctx, written, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_statuses() {
        let up = |t| *Error::explain(t, "x").into_up();
        let down = |t| *Error::explain(t, "x").into_down();
        assert_eq!(error_status(&up(ErrorType::ConnectRefused)), 502);
        assert_eq!(error_status(&up(ErrorType::ConnectTimedout)), 502);
        assert_eq!(error_status(&up(ErrorType::ReadTimedout)), 504);
        assert_eq!(error_status(&down(ErrorType::ConnectionClosed)), 0);
        assert_eq!(error_status(&down(ErrorType::InvalidHTTPHeader)), 400);
        assert_eq!(
            error_status(&Error::explain(ErrorType::HTTPStatus(413), "x")),
            413
        );
    }

    #[test]
    fn logged_errors_are_bounded() {
        let huge = "é".repeat(10_000);
        let e = Error::explain(ErrorType::InvalidHTTPHeader, huge).into_up();
        let line = bounded(&e);
        assert!(line.len() < MAX_LOGGED_ERROR + 20, "{}", line.len());
        assert!(line.ends_with("(truncated)"));
        let short = Error::explain(ErrorType::ConnectRefused, "x").into_up();
        assert!(!bounded(&short).contains("truncated"));
    }

    #[test]
    fn stream_ends() {
        assert_eq!(stream_end(None), StreamEnd::Finished);
        let e = Error::explain(ErrorType::ConnectionClosed, "x").into_down();
        assert_eq!(stream_end(Some(&e)), StreamEnd::ClientClosed);
        let e = Error::explain(ErrorType::ReadTimedout, "x").into_up();
        assert_eq!(stream_end(Some(&e)), StreamEnd::IdleTimeout);
        let e = Error::explain(ErrorType::ConnectionClosed, "x").into_up();
        assert_eq!(stream_end(Some(&e)), StreamEnd::UpstreamError);
    }
}
