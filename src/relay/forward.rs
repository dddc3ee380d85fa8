//! The response, on its way to the client: its head (SSE headers, framing, the stream's
//! record), its body chunk batch by chunk batch, or after a 101 a tunnel both ways.

use std::time::Instant;

use bytes::Bytes;
use pingora::{Error, ErrorType};

use super::{down, up, Downstream, Relay, Stop};
use crate::h1::head::Response;
use crate::h1::upstream::Upstream;
use crate::headers;
use crate::heartbeat::Schedule;
use crate::observe::StreamEnd;
use crate::sse::Framing;

impl<D: Downstream> Relay<'_, D> {
    /// Writes the response header (unless `early_headers` already did) and starts the stream.
    pub(super) async fn forward_header(
        &mut self,
        mut resp: Response,
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
        let content_type = resp.lines.get("content-type");
        let framing = headers::response_framing(resp.status, content_type, self.mode.stream_route);
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

    /// The next upstream body chunk (`None` at the end), writing heartbeats while it is late.
    pub(super) async fn next_chunk(
        &mut self,
        upstream: &mut Upstream,
    ) -> std::result::Result<Option<Bytes>, Stop> {
        let silent = "upstream silent for the idle timeout";
        let read = std::pin::pin!(upstream.read_body());
        self.await_upstream(read, silent).await
    }

    /// Passes upstream chunks to the client as they are, in one write (`batch` is left empty).
    pub(super) async fn forward(
        &mut self,
        batch: &mut Vec<Bytes>,
    ) -> std::result::Result<(), Stop> {
        // Never empty: the batch starts with a chunk, and the body decoder makes no empty ones.
        let now = Instant::now();
        if let Some(stream) = self.ctx.stream.as_mut() {
            stream.on_chunks(batch, now);
        }
        self.session.write_body(batch).await.map_err(down)?;
        self.schedule.on_upstream(now);
        Ok(())
    }

    /// After a 101: bytes in both directions, as they come, until either side closes.
    /// (Pingora's pipeline has a race that can end such a tunnel at its start, cloudflare/pingora#946.)
    pub(super) async fn tunnel(
        &mut self,
        upstream: &mut Upstream,
    ) -> std::result::Result<(), Stop> {
        upstream.begin_tunnel();
        loop {
            // Idle is counted from the last bytes either way.
            self.timer.set((Instant::now() + self.mode.idle).into());
            tokio::select! {
                r = self.session.read_tunnel() => match r.map_err(down)? {
                    Some(bytes) => upstream.send_body(bytes).await.map_err(up)?,
                    None => return Ok(()),
                },
                r = upstream.read_body() => match r.map_err(up)? {
                    Some(bytes) => self.session.write_body(&mut vec![bytes]).await.map_err(down)?,
                    None => return Ok(()),
                },
                _ = self.timer.fired() => {
                    let e = Error::explain(ErrorType::ReadTimedout, "upgraded connection idle");
                    return Err(Stop::Upstream(e.into_up(), StreamEnd::IdleTimeout));
                }
            }
        }
    }
}
