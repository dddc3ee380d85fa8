//! The relay: how a stream route is served.
//!
//! Pingora's proxy loop writes to the client only when the upstream sends something, and its
//! body filters are synchronous and data-driven, so nothing in the pipeline can write a
//! heartbeat while the upstream is silent. A stream route is therefore relayed by ssegate
//! itself, in one task that waits on three things at once: the next upstream read, the client
//! hanging up, and one timer (heartbeat or idle deadline, see
//! [`crate::heartbeat::Schedule`]). It waits on the upstream's readiness and reads only once
//! that has come, so a timer's wake-up never cancels a read half done. What a wake-up finds
//! goes from the read buffer to the observer and into one write to the client, piece by
//! piece, with no copy of the read in between.
//!
//! The client side is a `Downstream`: ssegate's lean HTTP/1 connection for plain HTTP/1.1
//! requests on any route (see [`front`](crate::front)), or Pingora's session for stream
//! routes and upgrades that reach Pingora (HTTP/2, chunked uploads, `Expect`, HTTP/1.0). The
//! upstream side is always ssegate's own lean [`Upstream`](crate::h1::upstream::Upstream).
//!
//! Here: a request's relay from start to end (`serve`). Its parts, in the order a request
//! meets them: `ask` (a connection, the request, the response head; `resend` keeps what a
//! retry needs), `forward` (the response to the client) and `wait` (every wait on the
//! upstream, with the client and the clock watched).

mod ask;
mod downstream;
mod forward;
mod resend;
mod wait;

pub(crate) use downstream::Downstream;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorType, OrErr, Result};

use crate::config::Route;
use crate::h1::upstream::Got;
use crate::headers;
use crate::heartbeat::Schedule;
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

/// A write stops growing past this many bytes: what the upstream has sent goes out a few
/// reads at a time, so a stream's write buffer stays small whatever its pace. (Counted in
/// chunks instead, 32 per write made 142k sends for 133k reads on back-to-back events.)
const MAX_BATCH_BYTES: usize = 64 * 1024;

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
/// means the response is complete. `timer` is for its waits, each of which sets it.
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
        let resp = headers::early_sse_response(self.session.http11())
            .or_err(ErrorType::InternalError, "early response head")?;
        self.session.write_header(resp).await?;
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
        loop {
            let silent = "upstream silent for the idle timeout";
            self.await_upstream(std::pin::pin!(upstream.readable()), silent)
                .await?;
            if self.forward(&mut upstream).await? == Got::End {
                break;
            }
        }
        self.shared.idle.put(upstream);
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
        self.session.write_body(&[event.as_bytes()]).await?;
        self.session.finish().await?;
        Ok(true)
    }
}
