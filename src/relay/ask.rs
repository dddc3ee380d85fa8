//! How a relay gets its answer: a server from the upstream's pool, a connection (an idle one
//! or a new one), the request sent, the response head awaited; once more on a new connection
//! when the server closed a reused one as it was reused.

use pingora::{Error, ErrorType, OrErr};

use super::resend::{resendable, stale, Sent};
use super::{down, up, Downstream, Relay, Stop};
use crate::h1::head::Response;
use crate::h1::scratch;
use crate::h1::upstream::Upstream;
use crate::headers;
use crate::headers::view::RequestHead;
use crate::proxy::{bounded, UPSTREAM_WRITE_TIMEOUT};

impl<D: Downstream> Relay<'_, D> {
    /// Leases a server and connects; a failed connection is tried once more on the next one.
    pub(super) async fn connect(
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
            let resendable = resendable(self.session.req_header().fields());
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
    pub(super) async fn ask(
        &mut self,
        upstream: &mut Upstream,
        pool: &crate::upstream::Pool,
        trusted: &[ipnet::IpNet],
    ) -> std::result::Result<Response, Stop> {
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
    ) -> std::result::Result<Response, Stop> {
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
        let fwd = headers::Forwarded::new(req.fields(), peer, self.session.is_tls(), trusted);
        let how = headers::upstream::Outbound {
            upgrade: self.mode.upgrade,
            identity: self.mode.stream_route,
        };
        // Written in the thread's write buffer, given back once sent.
        let mut head = scratch::write_buf();
        head.reserve(512);
        headers::upstream::write_head(req, how, &fwd, &mut head)
            .or_err(ErrorType::InvalidHTTPHeader, "upstream request head")
            .map_err(up)?;
        upstream.send_head(&head, req).await.map_err(up)?;
        scratch::give_back(head);
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
    ) -> std::result::Result<Response, Stop> {
        let silent = "no response header from the upstream in time";
        let read = std::pin::pin!(upstream.read_header());
        self.await_upstream(read, silent).await
    }
}
