//! When a stream relay should wake up: to write a heartbeat, or to give up on a silent
//! upstream. Pure timing logic, driven by the relay loop with real `Instant`s.
//!
//! Two clocks run: upstream silence (only upstream bytes reset it; it ends the stream at
//! the idle timeout) and client silence (upstream bytes and heartbeats reset it; it
//! triggers the next heartbeat). The relay keeps one timer armed at [`Schedule::next_wake`]
//! and only re-arms it when that moves earlier, so the per-chunk path touches no timer.

use std::time::{Duration, Instant};

/// The heartbeat comment: an SSE comment line and a blank line, ignored by `EventSource`.
pub const COMMENT: &[u8] = b": keep-alive\n\n";

/// Timing state of one relayed stream.
#[derive(Clone, Debug)]
pub struct Schedule {
    idle: Duration,
    heartbeat: Option<Duration>,
    last_upstream: Instant,
    last_write: Instant,
}

/// What to do when the timer fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The upstream has been silent for the idle timeout: end the stream.
    IdleTimeout,
    /// Write a heartbeat now.
    Heartbeat,
    /// Nothing yet; sleep until then.
    SleepUntil(Instant),
}

impl Schedule {
    /// Starts both clocks at `now`. `heartbeat: None` disables heartbeats.
    pub fn new(idle: Duration, heartbeat: Option<Duration>, now: Instant) -> Self {
        Schedule {
            idle,
            heartbeat,
            last_upstream: now,
            last_write: now,
        }
    }

    /// Turns heartbeats on or off from now on (e.g. once the response is known to be SSE).
    pub fn set_heartbeat(&mut self, heartbeat: Option<Duration>) {
        self.heartbeat = heartbeat;
    }

    /// Upstream bytes were passed to the client.
    pub fn on_upstream(&mut self, now: Instant) {
        self.last_upstream = now;
        self.last_write = now;
    }

    /// A heartbeat was written.
    pub fn on_heartbeat(&mut self, now: Instant) {
        self.last_write = now;
    }

    /// When the upstream will have been silent too long.
    pub fn idle_deadline(&self) -> Instant {
        self.last_upstream + self.idle
    }

    /// When the next heartbeat is due, if heartbeats are on and one may be written now.
    fn heartbeat_due(&self, at_boundary: bool) -> Option<Instant> {
        let every = self.heartbeat?;
        at_boundary.then_some(self.last_write + every)
    }

    /// The earliest instant at which something may have to happen.
    pub fn next_wake(&self, at_boundary: bool) -> Instant {
        let idle = self.idle_deadline();
        match self.heartbeat_due(at_boundary) {
            Some(hb) if hb < idle => hb,
            _ => idle,
        }
    }

    /// What the timer firing at `now` calls for. The idle timeout wins over a heartbeat.
    pub fn on_wake(&self, now: Instant, at_boundary: bool) -> Wake {
        if now >= self.idle_deadline() {
            return Wake::IdleTimeout;
        }
        match self.heartbeat_due(at_boundary) {
            Some(due) if now >= due => Wake::Heartbeat,
            _ => Wake::SleepUntil(self.next_wake(at_boundary)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn heartbeats_every_period_while_silent_until_idle() {
        let t0 = Instant::now();
        let mut s = Schedule::new(10 * S, Some(3 * S), t0);
        assert_eq!(s.next_wake(true), t0 + 3 * S);
        assert_eq!(s.on_wake(t0 + 3 * S, true), Wake::Heartbeat);
        s.on_heartbeat(t0 + 3 * S);
        assert_eq!(s.next_wake(true), t0 + 6 * S);
        s.on_heartbeat(t0 + 6 * S);
        s.on_heartbeat(t0 + 9 * S);
        assert_eq!(s.next_wake(true), t0 + 10 * S, "idle deadline comes first");
        assert_eq!(s.on_wake(t0 + 10 * S, true), Wake::IdleTimeout);
    }

    #[test]
    fn heartbeats_do_not_extend_idle_but_upstream_bytes_do() {
        let t0 = Instant::now();
        let mut s = Schedule::new(5 * S, Some(S), t0);
        s.on_heartbeat(t0 + 4 * S);
        assert_eq!(s.idle_deadline(), t0 + 5 * S);
        s.on_upstream(t0 + 4 * S);
        assert_eq!(s.idle_deadline(), t0 + 9 * S);
        assert_eq!(s.next_wake(true), t0 + 5 * S);
    }

    #[test]
    fn no_heartbeat_inside_an_event() {
        let t0 = Instant::now();
        let s = Schedule::new(10 * S, Some(S), t0);
        assert_eq!(s.next_wake(false), t0 + 10 * S);
        assert_eq!(s.on_wake(t0 + 2 * S, false), Wake::SleepUntil(t0 + 10 * S));
        assert_eq!(s.on_wake(t0 + 2 * S, true), Wake::Heartbeat);
    }

    #[test]
    fn early_wake_sleeps_again() {
        let t0 = Instant::now();
        let mut s = Schedule::new(10 * S, Some(3 * S), t0);
        s.on_upstream(t0 + 2 * S);
        assert_eq!(s.on_wake(t0 + 3 * S, true), Wake::SleepUntil(t0 + 5 * S));
    }

    #[test]
    fn disabled_heartbeat_only_idles() {
        let t0 = Instant::now();
        let s = Schedule::new(4 * S, None, t0);
        assert_eq!(s.next_wake(true), t0 + 4 * S);
        assert_eq!(s.on_wake(t0 + 4 * S, true), Wake::IdleTimeout);
    }
}
