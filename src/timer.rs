//! Deadlines that cost little when they are met, which is nearly always.
//!
//! - [`Timer`]: one timer a connection keeps for all its waits (the next request head, the
//!   upstream's answer, a stream's silences). A new timer per wait takes tokio's timer wheel
//!   twice (to register, and again when dropped), and so does moving a registered one
//!   earlier (in a profile of plain requests, tokio's timer code was 7% of ssegate's user
//!   time before, 3.5% after; README, "Performance against nginx"). A [`Timer`] moves its
//!   tokio timer only when a deadline comes earlier than the timer's; a later one is kept
//!   aside, and a timer that fires before it is set again.
//! - [`within`]: a limit on a wait that usually does not wait (a write to a socket with room):
//!   the clock is read and a timer made only once the wait has begun.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A reusable deadline.
#[derive(Debug)]
pub struct Timer {
    // Boxed: a `Sleep` is about 100 bytes, and its owner is a long-lived future.
    sleep: Pin<Box<Sleep>>,
    /// The deadline; the sleep is due at it or before.
    due: Instant,
}

impl Timer {
    /// A timer due at `at`.
    pub fn new(at: Instant) -> Self {
        Timer {
            sleep: Box::pin(tokio::time::sleep_until(at)),
            due: at,
        }
    }

    /// A timer due only once [`set`](Self::set) (a year from now until then).
    pub fn unset() -> Self {
        Timer::new(Instant::now() + Duration::from_secs(365 * 86_400))
    }

    /// Makes the timer due at `at`, earlier or later than before, elapsed or not.
    pub fn set(&mut self, at: Instant) {
        self.due = at;
        if self.sleep.is_elapsed() || self.sleep.deadline() > at {
            self.sleep.as_mut().reset(at);
        }
    }

    /// When the timer is due.
    pub fn deadline(&self) -> Instant {
        self.due
    }

    /// Completes at the deadline (at once if it has passed), and again at once until
    /// [`set`](Self::set).
    pub fn fired(&mut self) -> Fired<'_> {
        Fired(self)
    }
}

/// The future of [`Timer::fired`]: one pointer, for it waits inside long-lived futures.
#[derive(Debug)]
pub struct Fired<'a>(&'a mut Timer);

impl Future for Fired<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let t = &mut *self.0;
        loop {
            ready!(t.sleep.as_mut().poll(cx));
            if t.sleep.deadline() >= t.due {
                return Poll::Ready(());
            }
            // Due at an earlier deadline since moved later: a wake-up, no more.
            t.sleep.as_mut().reset(t.due);
        }
    }
}

/// `fut`, limited to `limit` from the moment it first has to wait. (Pinned by the caller:
/// moved in here, it would take its room twice in the caller's future.)
pub fn within<F: Future>(limit: Duration, fut: Pin<&mut F>) -> Within<'_, F> {
    Within {
        fut,
        limit,
        sleep: None,
    }
}

/// The future of [`within`].
#[derive(Debug)]
pub struct Within<'a, F> {
    fut: Pin<&'a mut F>,
    limit: Duration,
    /// Made when `fut` first waits; boxed, so that a wait that never began costs no room.
    sleep: Option<Pin<Box<Sleep>>>,
}

/// What [`within`] gives when its limit passed first.
#[derive(Debug, PartialEq, Eq)]
pub struct TimedOut;

impl<F: Future> Future for Within<'_, F> {
    type Output = Result<F::Output, TimedOut>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(out) = self.fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let limit = self.limit;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Err(TimedOut))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn a_timer_moved_later_fires_at_its_new_deadline_not_its_first() {
        let start = Instant::now();
        let mut t = Timer::new(start + 100 * MS);
        // Registered at 100 ms, then moved on before and after that moment has passed.
        tokio::select! {
            _ = t.fired() => panic!("fired early"),
            _ = tokio::time::sleep(50 * MS) => {}
        }
        t.set(start + 300 * MS);
        t.fired().await;
        assert_eq!(Instant::now(), start + 300 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_moved_earlier_fires_at_once_when_due() {
        let start = Instant::now();
        let mut t = Timer::new(start + 300 * MS);
        tokio::select! {
            _ = t.fired() => panic!("fired early"),
            _ = tokio::time::sleep(10 * MS) => {}
        }
        t.set(start + 20 * MS);
        assert_eq!(t.deadline(), start + 20 * MS);
        t.fired().await;
        assert_eq!(Instant::now(), start + 20 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unset_timer_fires_once_set_and_not_before() {
        let start = Instant::now();
        let mut t = Timer::unset();
        tokio::select! {
            _ = t.fired() => panic!("an unset timer fired"),
            _ = tokio::time::sleep(Duration::from_secs(86_400)) => {}
        }
        t.set(Instant::now() + 5 * MS);
        t.fired().await;
        assert_eq!(Instant::now(), start + Duration::from_secs(86_400) + 5 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fired_timer_stays_fired_until_set_again() {
        let start = Instant::now();
        let mut t = Timer::new(start + 10 * MS);
        t.fired().await;
        t.fired().await;
        assert_eq!(Instant::now(), start + 10 * MS);
        t.set(start + 40 * MS);
        t.fired().await;
        assert_eq!(Instant::now(), start + 40 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn within_only_limits_a_wait_that_began() {
        let ready = within(Duration::ZERO, pin!(async { 7 })).await;
        assert_eq!(ready.ok(), Some(7));
        let start = Instant::now();
        let slow = within(30 * MS, pin!(tokio::time::sleep(Duration::from_secs(3600)))).await;
        assert!(slow.is_err());
        assert_eq!(Instant::now(), start + 30 * MS);
        let quick = within(30 * MS, pin!(tokio::time::sleep(10 * MS))).await;
        assert!(quick.is_ok());
    }
}
