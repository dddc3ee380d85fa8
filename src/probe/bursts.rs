//! Bursts in the arrival times: how a buffering hop shows from the outside.
//!
//! Pure, on arrival times relative to the request; the thresholds are explained at
//! [`buffering`].

use std::time::Duration;

/// Fewer events than this can't be judged "buffered": one or two events look the same
/// whether a hop held them or the model produced them at once.
pub const MIN_EVENTS: usize = 3;
/// A release needs at least this many events: an upstream legitimately writes two or three
/// events together (a role chunk with the first token, a usage block with `[DONE]`).
pub const MIN_RELEASE: usize = 3;
/// A hold shorter than this is not a hold: people don't notice it, and the model's own time
/// to first token is easily longer.
pub const MIN_SILENCE: Duration = Duration::from_millis(100);
/// A release must be this many times shorter than the silence before it.
pub const HOLD_RATIO: u32 = 4;
/// Mean spacing of the events of a release at most: faster than any model writes tokens
/// (~2 ms a token for the fastest small local models), but slow enough for a released buffer
/// to cross a WAN in several round trips (230-byte events at 2 Mbit/s are ~1 ms apart).
pub const MAX_RELEASE_PACE: Duration = Duration::from_millis(1);
/// Share of all events that arrived in releases for the verdict `buffered`.
pub const BUFFERED_SHARE: f64 = 0.8;

/// A run of events that arrived together after a silence: a hop letting go of what it held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// Index of its first event.
    pub first: usize,
    /// Number of events in it.
    pub count: usize,
    /// Arrival of its first event.
    pub at: Duration,
    /// From its first event to its last.
    pub span: Duration,
    /// Silence before it (since the previous event, or since the request).
    pub silence: Duration,
}

/// What the arrival times say about buffering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Buffering {
    /// Too few events to judge.
    TooFew(usize),
    /// Most events arrived in releases.
    Held {
        /// The releases found.
        releases: Vec<Release>,
        /// Events in them.
        held: usize,
        /// All events.
        total: usize,
    },
    /// Everything arrived within `MIN_SILENCE` of the request: nothing to tell apart.
    TooFast(Duration),
    /// The events came spread over time.
    Spread {
        /// Events that arrived in releases all the same.
        held: usize,
        /// All events.
        total: usize,
    },
}

/// Looks for releases in the arrival times (ascending, from the request).
///
/// The signature of a buffering hop is not "everything arrived at the end" (a cold model can
/// be silent for a minute and then stream quickly, and that is not buffering), but "many events
/// arrived far faster than any model writes them, right after a silence much longer than their
/// own span". So a release starts at an event that follows a silence of at least
/// `MIN_SILENCE`, and is the longest run from there that holds at least `MIN_RELEASE` events,
/// spans at most a quarter (`HOLD_RATIO`) of that silence, and came at a mean pace of at most
/// `MAX_RELEASE_PACE` an event. A whole-body buffer shows as one release (even when it crosses
/// a WAN in a few round trips); an nginx with `proxy_buffering on` as one release per filled
/// buffer. The response is `buffered` when at least `BUFFERED_SHARE` of its events came in
/// releases; fewer than `MIN_EVENTS` events are never judged.
pub fn buffering(arrivals: &[Duration]) -> Buffering {
    let total = arrivals.len();
    if total < MIN_EVENTS {
        return Buffering::TooFew(total);
    }
    let mut releases = Vec::new();
    let mut i = 0;
    while let Some(&at) = arrivals.get(i) {
        let before = i
            .checked_sub(1)
            .and_then(|p| arrivals.get(p))
            .copied()
            .unwrap_or_default();
        let silence = at.saturating_sub(before);
        match (silence >= MIN_SILENCE)
            .then(|| release_from(arrivals, i, silence))
            .flatten()
        {
            Some(release) => {
                i += release.count;
                releases.push(release);
            }
            None => i += 1,
        }
    }
    let held: usize = releases.iter().map(|r| r.count).sum();
    if held as f64 >= BUFFERED_SHARE * total as f64 {
        return Buffering::Held {
            releases,
            held,
            total,
        };
    }
    let last = arrivals.last().copied().unwrap_or_default();
    if last < MIN_SILENCE {
        return Buffering::TooFast(last);
    }
    Buffering::Spread { held, total }
}

/// The longest release starting at event `first`, which followed `silence`.
fn release_from(arrivals: &[Duration], first: usize, silence: Duration) -> Option<Release> {
    let at = *arrivals.get(first)?;
    let limit = silence / HOLD_RATIO;
    let mut best = None;
    // Span grows with the run: once past the limit, no longer run can qualify.
    for (offset, &t) in arrivals.get(first + 1..)?.iter().enumerate() {
        let span = t.saturating_sub(at);
        if span > limit {
            break;
        }
        let count = offset + 2;
        let pace_limit = u32::try_from(count - 1)
            .ok()
            .and_then(|n| MAX_RELEASE_PACE.checked_mul(n))
            .unwrap_or(Duration::MAX);
        if count >= MIN_RELEASE && span <= pace_limit {
            best = Some(Release {
                first,
                count,
                at,
                span,
                silence,
            });
        }
    }
    best
}
