//! Waiting on the upstream while watching the client (gone: stop) and the clock (heartbeats
//! while the upstream is late, and its idle timeout).

use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use pingora::{Error, ErrorType, Result};

use super::{down, up, Downstream, Relay, Stop};
use crate::heartbeat::{self, Wake};
use crate::observe::StreamEnd;

impl<D: Downstream> Relay<'_, D> {
    /// Waits for an upstream read while watching the client (gone: stop) and the clock
    /// (heartbeats while the upstream is late, and its idle timeout).
    ///
    /// `read` comes pinned by the caller: taken by value, it would have two places in this
    /// future (the argument's and the pinned local's), in every stream's state.
    pub(super) async fn await_upstream<T>(
        &mut self,
        mut read: std::pin::Pin<&mut impl std::future::Future<Output = Result<T>>>,
        silent: &'static str,
    ) -> std::result::Result<T, Stop> {
        if self.session.holds_output() {
            // What is already here needs no wait, so what is held back can go with it.
            let now = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
            if let Poll::Ready(r) = now {
                return r.map_err(up);
            }
            // Boxed: needed at most once per response, and inline it would take room in
            // every stream's future.
            Box::pin(self.session.flush()).await.map_err(down)?;
        }
        // Otherwise the wait below asks the read first: asked here too, a paced stream's
        // read was polled twice per event.
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

    fn at_boundary(&self) -> bool {
        self.ctx
            .stream
            .as_ref()
            .is_none_or(|s| s.at_event_boundary())
    }

    async fn heartbeat(&mut self) -> std::result::Result<(), Stop> {
        self.session
            .write_body(&[heartbeat::COMMENT])
            .await
            .map_err(down)?;
        self.schedule.on_heartbeat(Instant::now());
        if let Some(s) = self.ctx.stream.as_ref() {
            s.on_heartbeat();
        }
        Ok(())
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
