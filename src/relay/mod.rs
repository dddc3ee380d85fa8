//! The relay: how a stream route is served.
//!
//! Pingora's proxy loop writes to the client only when the upstream sends something, and its
//! body filters are synchronous and data-driven, so nothing in the pipeline can write a
//! heartbeat while the upstream is silent. A stream route is therefore relayed by ssegate
//! itself, in one task that waits on three things at once: the next upstream read, the client
//! hanging up, and one timer (heartbeat or idle deadline, see [`heartbeat::Schedule`]). The
//! upstream read future is kept alive across timer wake-ups rather than re-created, so no
//! partial read is ever cancelled.
//!
//! The client side is a [`Downstream`]: ssegate's lean HTTP/1 connection for plain HTTP/1.1
//! requests on any route (see [`front`](crate::front)), or Pingora's session for stream
//! routes and upgrades that reach Pingora (HTTP/2, chunked uploads, `Expect`, HTTP/1.0). The
//! upstream side is always ssegate's own lean [`Upstream`].

mod downstream;
mod resend;

pub(crate) use downstream::Downstream;
use resend::{resendable, stale, Sent};

use std::net::SocketAddr;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorType, OrErr, Result};
use pingora_http::ResponseHeader;

use crate::config::Route;
use crate::h1::upstream::Upstream;
use crate::headers;
use crate::heartbeat::{self, Schedule, Wake};
use crate::observe::StreamEnd;
use crate::proxy::{bounded, error_status, RequestCtx};
use crate::proxy::{UPGRADED_IDLE, UPSTREAM_POOL_IDLE, UPSTREAM_WRITE_TIMEOUT};
use crate::site::{RouteState, Shared};
use crate::sse::Framing;
use crate::timer::Timer;

/// An upstream peer for a pre-resolved address (no DNS on the request path).
pub fn peer(
    addr: SocketAddr,
    connect_timeout: Duration,
    read_timeout: Option<Duration>,
) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.connection_timeout = Some(connect_timeout);
    peer.options.read_timeout = read_timeout;
    peer.options.write_timeout = Some(UPSTREAM_WRITE_TIMEOUT);
    peer.options.idle_timeout = Some(UPSTREAM_POOL_IDLE);
    peer
}

/// Most upstream chunks written to the client in one go. Batching by bytes instead (32 KiB,
/// one write per full read of small events), together with draining on every short read,
/// cost about 10% more CPU per event on back-to-back events (bench raw scenario, interleaved
/// runs); smaller writes probably let the client read while the next batch is made.
const MAX_BATCH: usize = 32;

/// Why a relay stopped before the upstream finished.
enum Stop {
    /// The client went away (or could not be written to).
    Client(Box<Error>),
    /// The upstream failed or stayed silent too long.
    Upstream(Box<Error>, StreamEnd),
}

fn up(e: Box<Error>) -> Stop {
    Stop::Upstream(e.into_up(), StreamEnd::UpstreamError)
}

fn down(e: Box<Error>) -> Stop {
    Stop::Client(e.into_down())
}

/// Relays a request (a stream route, an upgrade, or any route on the lean path); `Ok(true)`
/// means the response is complete. `timer` is for its waits (its deadline is set here).
pub(crate) async fn serve<D: Downstream>(
    shared: &Shared,
    session: &mut D,
    ctx: &mut RequestCtx,
    timer: &mut Timer,
) -> Result<bool> {
    let (site, index) = ctx.routed()?;
    let Some((route, state, pool)) = site.served(index) else {
        return Error::e_explain(ErrorType::InternalError, "route without upstream");
    };
    let mode = Mode::of(route, session.is_upgrade_req());
    let header_wait = if route.read_timeout_set || route.stream.is_none() {
        route.read_timeout
    } else {
        mode.idle
    };
    let now = Instant::now();
    timer.set((now + header_wait).into());
    let mut relay = Relay {
        shared,
        session,
        ctx,
        state,
        mode,
        schedule: Schedule::new(header_wait, None, now),
        timer,
    };
    if mode.early_headers {
        // Rare paths are boxed (here, the tunnel, the error event): inline, they would
        // enlarge every relay's future, which a stream keeps for its whole life.
        Box::pin(relay.start_early())
            .await
            .map_err(|e| e.into_down())?;
    }
    let result = relay.run(pool, &site.config.trusted_proxies).await;
    relay.conclude(result).await
}

/// How one request is relayed.
#[derive(Clone, Copy, Debug)]
struct Mode {
    /// Longest upstream silence once the response has started.
    idle: Duration,
    heartbeat: Option<Duration>,
    sse_headers: bool,
    early_headers: bool,
    /// An HTTP/1.1 upgrade (WebSocket): after a 101, bytes flow both ways as they are.
    upgrade: bool,
    /// A stream route's response (not an upgrade): a stream whatever its content type says.
    stream_route: bool,
}

impl Mode {
    fn of(route: &Route, upgrade: bool) -> Mode {
        let plain = Mode {
            idle: route.read_timeout,
            heartbeat: None,
            sse_headers: false,
            early_headers: false,
            upgrade,
            stream_route: false,
        };
        match (&route.stream, upgrade) {
            (Some(s), false) => Mode {
                idle: s.idle_timeout,
                heartbeat: s.heartbeat,
                sse_headers: s.sse_headers,
                early_headers: s.early_headers,
                stream_route: true,
                ..plain
            },
            (s, true) => Mode {
                idle: s.as_ref().map_or(UPGRADED_IDLE, |s| s.idle_timeout),
                ..plain
            },
            (None, false) => plain,
        }
    }
}

struct Relay<'a, D> {
    shared: &'a Shared,
    session: &'a mut D,
    ctx: &'a mut RequestCtx,
    state: &'a RouteState,
    mode: Mode,
    schedule: Schedule,
    /// The schedule's one timer (the connection's, on the lean path), kept for the stream's
    /// life: moving a deadline later is cheap, a new timer per event is not.
    timer: &'a mut Timer,
}

impl<D: Downstream> Relay<'_, D> {
    /// `early_headers`: answer 200 with the SSE headers before the upstream is even asked.
    async fn start_early(&mut self) -> Result<()> {
        let resp = headers::early_sse_response(self.session.http11())?;
        self.session.write_header(Box::new(resp)).await?;
        // The point of early headers: the client sees them now, before the upstream answers.
        self.session.flush().await?;
        self.ctx.status = 200;
        self.ctx.stream = Some(self.shared.track(
            Framing::Sse,
            self.ctx.started,
            self.state,
            self.ctx.client,
            String::new(),
        ));
        self.schedule.set_heartbeat(self.mode.heartbeat);
        Ok(())
    }

    /// Connects, forwards the request and relays the response; `Ok` when the upstream ended.
    async fn run(
        &mut self,
        pool: &crate::upstream::Pool,
        trusted: &[ipnet::IpNet],
    ) -> std::result::Result<(), Stop> {
        // Boxed: connecting is a large state machine needed once, and an unboxed one would
        // stay inside every open stream's future for the stream's whole life.
        let mut upstream = Box::pin(self.connect(pool)).await?;
        // Boxed too: the request's state is not needed once its answer has begun.
        let resp = Box::pin(self.ask(&mut upstream, pool, trusted)).await?;
        self.forward_header(resp).await?;
        if self.ctx.status == 101 {
            return Box::pin(self.tunnel(&mut upstream)).await;
        }
        let mut ended = false;
        while !ended {
            let Some(first) = self.next_chunk(&mut upstream).await? else {
                break;
            };
            // Chunks the upstream already sent go out together, in one write and one flush
            // (as Pingora's pipeline does): per-chunk writes cost a syscall per event.
            let mut batch = vec![first];
            let mut quiet = false;
            while batch.len() < MAX_BATCH {
                match upstream.read_body_now() {
                    Some(Ok(Some(chunk))) => batch.push(chunk),
                    Some(Ok(None)) => {
                        ended = true;
                        break;
                    }
                    Some(Err(e)) => {
                        self.forward(batch).await?;
                        return Err(up(e));
                    }
                    None => {
                        quiet = true;
                        break;
                    }
                }
            }
            self.forward(batch).await?;
            if quiet {
                // The upstream went quiet: what was counted shows now, not at its next chunk.
                if let Some(stream) = self.ctx.stream.as_mut() {
                    stream.publish_now();
                }
            }
        }
        self.shared.idle.put(upstream);
        Ok(())
    }

    /// Leases a server and connects; a failed connection is tried once more on the next one.
    async fn connect(
        &mut self,
        pool: &crate::upstream::Pool,
    ) -> std::result::Result<Upstream, Stop> {
        loop {
            let lease = pool.pick(&self.ctx.tried).ok_or_else(|| {
                up(Error::explain(
                    ErrorType::ConnectNoRoute,
                    "every server of the upstream was tried",
                ))
            })?;
            self.ctx.tried.push(lease.index());
            let may_retry = self.ctx.tried.len() < 2 && pool.servers().len() > 1;
            let addr = match lease.server().addr_or_resolve().await {
                Ok(a) => a,
                Err(e) if may_retry => {
                    log::warn!(
                        "resolving {}: {e}; trying the next server",
                        lease.server().label
                    );
                    continue;
                }
                Err(e) => {
                    return Err(up(Error::because(
                        ErrorType::ConnectNoRoute,
                        format!("resolving {}", lease.server().label),
                        e,
                    )))
                }
            };
            let resendable = resendable(self.session.req_header());
            let connecting = self.shared.idle.get(
                addr,
                pool.connect_timeout,
                UPSTREAM_WRITE_TIMEOUT,
                resendable,
            );
            match connecting.await {
                Ok(upstream) => {
                    if let Some(stream) = self.ctx.stream.as_ref() {
                        // An early_headers stream learns its server only now.
                        stream.set_upstream(&lease.server().label);
                    }
                    self.ctx.lease = Some(lease);
                    return Ok(upstream);
                }
                Err(e) if may_retry => {
                    lease.server().refresh_after_failure();
                    log::warn!(
                        "connecting to {}: {e}; trying the next server",
                        lease.server().label
                    );
                }
                Err(e) => {
                    lease.server().refresh_after_failure();
                    return Err(up(e));
                }
            }
        }
    }

    /// Sends the request and waits for the response head; once more on a new connection if
    /// the server closed a reused one as it was reused (the request, body included, is kept
    /// for that while small).
    async fn ask(
        &mut self,
        upstream: &mut Upstream,
        pool: &crate::upstream::Pool,
        trusted: &[ipnet::IpNet],
    ) -> std::result::Result<Box<ResponseHeader>, Stop> {
        let mut sent = Sent::default();
        match self.exchange(upstream, trusted, &mut sent).await {
            Err(Stop::Upstream(e, _)) if stale(&e) && upstream.stale_maybe() && sent.replayable => {
                log::debug!(
                    "reused upstream connection failed ({}); retrying",
                    bounded(&e)
                );
                let fresh = Upstream::connect(
                    upstream.addr(),
                    pool.connect_timeout,
                    UPSTREAM_WRITE_TIMEOUT,
                );
                *upstream = Box::pin(fresh).await.map_err(up)?;
                self.exchange(upstream, trusted, &mut sent).await
            }
            other => other,
        }
    }

    /// Sends the request and waits for the response head. The first time, the body comes
    /// from the client (and a copy is kept while it is small); a retry sends the copy.
    async fn exchange(
        &mut self,
        upstream: &mut Upstream,
        trusted: &[ipnet::IpNet],
        sent: &mut Sent,
    ) -> std::result::Result<Box<ResponseHeader>, Stop> {
        self.send_request(upstream, trusted, sent).await?;
        self.wait_for_header(upstream).await
    }

    /// Sends the request header and the request body.
    async fn send_request(
        &mut self,
        upstream: &mut Upstream,
        trusted: &[ipnet::IpNet],
        sent: &mut Sent,
    ) -> std::result::Result<(), Stop> {
        let req = self.session.req_header();
        let peer = self.session.peer_ip().unwrap_or(self.ctx.client);
        let fwd = headers::Forwarded::new(&req.headers, peer, self.session.is_tls(), trusted);
        let how = headers::upstream::Outbound {
            upgrade: self.mode.upgrade,
            identity: self.mode.stream_route,
        };
        let mut head = BytesMut::with_capacity(512);
        headers::upstream::write_head(req, how, &fwd, &mut head)
            .or_err(ErrorType::InvalidHTTPHeader, "upstream request head")
            .map_err(up)?;
        upstream.send_head(&head, req).await.map_err(up)?;
        if sent.started {
            for chunk in &sent.body {
                upstream.send_body(chunk.clone()).await.map_err(up)?;
            }
        } else {
            sent.started = true;
            sent.replayable = true;
            while let Some(chunk) = self.session.read_body().await.map_err(down)? {
                sent.keep(&chunk);
                upstream.send_body(chunk).await.map_err(up)?;
            }
        }
        upstream.finish_body().await.map_err(up)?;
        Ok(())
    }

    /// Waits for the response header while watching the client and the clock.
    async fn wait_for_header(
        &mut self,
        upstream: &mut Upstream,
    ) -> std::result::Result<Box<ResponseHeader>, Stop> {
        let silent = "no response header from the upstream in time";
        let read = std::pin::pin!(upstream.read_header());
        self.await_upstream(read, silent).await
    }

    /// Waits for an upstream read while watching the client (gone: stop) and the clock
    /// (heartbeats while the upstream is late, and its idle timeout).
    ///
    /// `read` comes pinned by the caller: taken by value, it would have two places in this
    /// future (the argument's and the pinned local's), in every stream's state.
    async fn await_upstream<T>(
        &mut self,
        mut read: std::pin::Pin<&mut impl std::future::Future<Output = Result<T>>>,
        silent: &'static str,
    ) -> std::result::Result<T, Stop> {
        // What is already here needs no wait, so anything held back can still go with it.
        let now = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
        if let Poll::Ready(r) = now {
            return r.map_err(up);
        }
        if self.session.holds_output() {
            // Boxed: needed at most once per response, and inline it would take room in
            // every stream's future.
            Box::pin(self.session.flush()).await.map_err(down)?;
        }
        self.arm_timer();
        loop {
            tokio::select! {
                biased;
                r = &mut read => return r.map_err(up),
                r = self.session.hang_up() => return Err(gone(r)),
                _ = self.timer.fired() => {
                    match self.schedule.on_wake(Instant::now(), self.at_boundary()) {
                        Wake::IdleTimeout => {
                            let e = Error::explain(ErrorType::ReadTimedout, silent);
                            return Err(Stop::Upstream(e.into_up(), StreamEnd::IdleTimeout));
                        }
                        // Boxed, as above: one allocation per heartbeat, none per event.
                        Wake::Heartbeat => Box::pin(self.heartbeat()).await?,
                        Wake::SleepUntil(_) => {}
                    }
                    self.arm_timer();
                }
            }
        }
    }

    /// Makes the timer fire at the schedule's next wake. Each upstream chunk moves it later,
    /// which the timer takes as a number to check when it fires: a busy stream touches tokio's
    /// timer about once per heartbeat period or idle timeout, not once per chunk.
    fn arm_timer(&mut self) {
        self.timer
            .set(self.schedule.next_wake(self.at_boundary()).into());
    }

    /// Writes the response header (unless `early_headers` already did) and starts the stream.
    async fn forward_header(
        &mut self,
        mut resp: Box<ResponseHeader>,
    ) -> std::result::Result<(), Stop> {
        let now = Instant::now();
        if self.ctx.stream.is_some() {
            // early_headers: the client already has a 200; only success can continue it.
            if !resp.status.is_success() {
                let e = Error::explain(
                    ErrorType::HTTPStatus(resp.status.as_u16()),
                    "upstream answered with an error status",
                );
                return Err(Stop::Upstream(e.into_up(), StreamEnd::UpstreamError));
            }
            self.schedule = Schedule::new(self.mode.idle, self.mode.heartbeat, now);
            return Ok(());
        }
        if self.mode.upgrade && resp.status.as_u16() == 101 {
            // The handshake answer goes out as it came: its Upgrade and Connection headers
            // are the protocol switch itself.
            self.ctx.status = 101;
            self.session.write_header(resp).await.map_err(down)?;
            self.schedule = Schedule::new(self.mode.idle, None, now);
            return Ok(());
        }
        let framing = headers::response_framing(&resp, self.mode.stream_route);
        if let (Some(f), true) = (framing, self.mode.sse_headers) {
            headers::set_sse_headers(&mut resp, f);
        }
        if resp.status.as_u16() == 101 {
            // A switch the client never asked for cannot be relayed.
            return Err(up(Error::explain(
                ErrorType::InvalidHTTPHeader,
                "upstream switched protocols unasked",
            )));
        }
        headers::set_downstream_framing(&mut resp, self.session.http11());
        self.ctx.status = resp.status.as_u16();
        self.session.write_header(resp).await.map_err(down)?;
        // Heartbeats are SSE comments: only an SSE body may carry them.
        let heartbeat = if framing == Some(Framing::Sse) {
            self.mode.heartbeat
        } else {
            None
        };
        self.schedule = Schedule::new(self.mode.idle, heartbeat, now);
        if let Some(f) = framing {
            let label = self
                .ctx
                .lease
                .as_ref()
                .map(|l| l.server().label.clone())
                .unwrap_or_default();
            self.ctx.stream =
                Some(
                    self.shared
                        .track(f, self.ctx.started, self.state, self.ctx.client, label),
                );
        }
        Ok(())
    }

    fn at_boundary(&self) -> bool {
        self.ctx
            .stream
            .as_ref()
            .is_none_or(|s| s.at_event_boundary())
    }

    /// The next upstream body chunk (`None` at the end), writing heartbeats while it is late.
    async fn next_chunk(
        &mut self,
        upstream: &mut Upstream,
    ) -> std::result::Result<Option<Bytes>, Stop> {
        let silent = "upstream silent for the idle timeout";
        let read = std::pin::pin!(upstream.read_body());
        self.await_upstream(read, silent).await
    }

    /// Passes upstream chunks to the client as they are, in one write.
    async fn forward(&mut self, batch: Vec<Bytes>) -> std::result::Result<(), Stop> {
        // Never empty: the batch starts with a chunk, and the body decoder makes no empty ones.
        let now = Instant::now();
        if let Some(stream) = self.ctx.stream.as_mut() {
            stream.on_chunks(&batch, now);
        }
        self.session.write_body(batch).await.map_err(down)?;
        self.schedule.on_upstream(now);
        Ok(())
    }

    /// After a 101: bytes in both directions, as they come, until either side closes.
    /// (Pingora's pipeline has a race that can end such a tunnel at its start, cloudflare/pingora#946.)
    async fn tunnel(&mut self, upstream: &mut Upstream) -> std::result::Result<(), Stop> {
        upstream.begin_tunnel();
        self.timer.set((Instant::now() + self.mode.idle).into());
        loop {
            tokio::select! {
                r = self.session.read_tunnel() => match r.map_err(down)? {
                    Some(bytes) => upstream.send_body(bytes).await.map_err(up)?,
                    None => return Ok(()),
                },
                r = upstream.read_body() => match r.map_err(up)? {
                    Some(bytes) => self.session.write_body(vec![bytes]).await.map_err(down)?,
                    None => return Ok(()),
                },
                _ = self.timer.fired() => {
                    let e = Error::explain(ErrorType::ReadTimedout, "upgraded connection idle");
                    return Err(Stop::Upstream(e.into_up(), StreamEnd::IdleTimeout));
                }
            }
            self.timer.set((Instant::now() + self.mode.idle).into());
        }
    }

    async fn heartbeat(&mut self) -> std::result::Result<(), Stop> {
        self.session
            .write_body(vec![Bytes::from_static(heartbeat::COMMENT)])
            .await
            .map_err(down)?;
        self.schedule.on_heartbeat(Instant::now());
        if let Some(s) = self.ctx.stream.as_ref() {
            s.on_heartbeat();
        }
        Ok(())
    }

    /// Turns how the relay stopped into the request's result, recording the stream's end.
    async fn conclude(mut self, result: std::result::Result<(), Stop>) -> Result<bool> {
        let status = self.ctx.status;
        match result {
            Ok(()) => {
                let end = match self.session.finish().await {
                    Ok(()) => StreamEnd::Finished,
                    Err(_) => StreamEnd::ClientClosed,
                };
                if let Some(s) = self.ctx.stream.as_mut() {
                    s.finish(end, status);
                }
                Ok(true)
            }
            Err(Stop::Client(e)) => {
                if let Some(s) = self.ctx.stream.as_mut() {
                    s.finish(StreamEnd::ClientClosed, status);
                }
                Err(e)
            }
            Err(Stop::Upstream(e, end)) => {
                let early_unanswered = self
                    .ctx
                    .stream
                    .as_ref()
                    .is_some_and(|s| s.stats().bytes == 0)
                    && self.mode.early_headers;
                if early_unanswered {
                    // Boxed: rare, and its writes would otherwise enlarge every relay.
                    return Box::pin(self.error_event(e, end)).await;
                }
                if let Some(s) = self.ctx.stream.as_mut() {
                    s.finish(end, status);
                } else if self.session.response_status().is_none() {
                    log::warn!("upstream failed before answering: {}", bounded(&e));
                }
                Err(e)
            }
        }
    }

    /// `early_headers` and the upstream failed before its body: tell the client in-band.
    async fn error_event(&mut self, e: Box<Error>, end: StreamEnd) -> Result<bool> {
        let status = match e.etype() {
            ErrorType::HTTPStatus(c) => *c,
            _ => error_status(&e),
        };
        log::warn!("upstream failed behind early headers: {}", bounded(&e));
        let message = serde_json::json!({
            "type": "error",
            "status": status,
            "message": e.etype().as_str(),
        });
        let event = format!("event: error\ndata: {message}\n\n");
        if let Some(s) = self.ctx.stream.as_mut() {
            s.finish(end, 200);
        }
        self.session.write_body(vec![Bytes::from(event)]).await?;
        self.session.finish().await?;
        Ok(true)
    }
}

/// The client-side probe finished: the client is gone (any return means that).
fn gone(r: Result<Option<Bytes>>) -> Stop {
    match r {
        Err(e) => Stop::Client(e.into_down()),
        Ok(_) => Stop::Client(
            Error::explain(ErrorType::ConnectionClosed, "client sent data mid-stream").into_down(),
        ),
    }
}
