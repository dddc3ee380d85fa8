//! The response, on its way to the client: its head (SSE headers, framing, the stream's
//! record), its body a write at a time, or after a 101 a tunnel both ways.

use std::time::Instant;

use pingora::{Error, ErrorType};

use super::{down, up, Downstream, Relay, Stop, MAX_BATCH_BYTES};
use crate::h1::head::Response;
use crate::h1::upstream::{Got, Upstream};
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

    /// Passes what the upstream has sent, without waiting for more, to the client in one
    /// write, observed on its way; says what the upstream's side found.
    pub(super) async fn forward(&mut self, upstream: &mut Upstream) -> Result<Got, Stop> {
        // One clock reading for all the pieces of one write.
        let now = Instant::now();
        let mut buf = self.session.body_buf();
        let mut data = false;
        let (session, stream) = (&*self.session, &mut self.ctx.stream);
        let got = loop {
            // Each piece goes from the read buffer to the observer and into the write as it
            // lies: no copy of the read, no shared bytes per piece.
            let got = upstream.read_now(|piece| {
                data = true;
                if let Some(s) = stream.as_mut() {
                    s.observe(piece, now);
                }
                session.put_body(piece, &mut buf);
            });
            match got {
                Ok(Got::Read) if buf.len() < MAX_BATCH_BYTES => {}
                other => break other,
            }
        };
        if let Some(s) = stream.as_mut() {
            if matches!(got, Ok(Got::Quiet)) {
                // The upstream went quiet: what was counted shows now, not at its next piece.
                s.publish_now();
            } else if data {
                s.observed(now);
            }
        }
        self.session.send_body(buf).await.map_err(down)?;
        if data {
            self.schedule.on_upstream(now);
        }
        got.map_err(up)
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
                r = upstream.readable() => {
                    r.map_err(up)?;
                    if self.forward(upstream).await? == Got::End {
                        return Ok(());
                    }
                }
                _ = self.timer.fired() => {
                    let e = Error::explain(ErrorType::ReadTimedout, "upgraded connection idle");
                    return Err(Stop::Upstream(e.into_up(), StreamEnd::IdleTimeout));
                }
            }
        }
    }
}
