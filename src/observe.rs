//! Per-stream statistics and outcome, computed from the upstream body as it passes.
//!
//! Pure and deterministic: callers pass the `Instant`s, so tests can use synthetic clocks.

use std::time::{Duration, Instant};

use crate::dialect::{Dialect, Inspector};
use crate::sse::{Event, Framing, Parser, DEFAULT_MAX_EVENT_BYTES};

/// How a stream ended, as reported in `ssegate_streams_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The end marker passed, or a stream of unknown dialect ended cleanly.
    Completed,
    /// Ended cleanly without the end marker its dialect promises.
    Incomplete,
    /// The client went away first.
    ClientClosed,
    /// The upstream connection failed.
    UpstreamError,
    /// The upstream stayed silent past the idle timeout.
    IdleTimeout,
}

impl Outcome {
    /// Every outcome, for pre-registering metric label values.
    pub const ALL: [Outcome; 5] = [
        Outcome::Completed,
        Outcome::Incomplete,
        Outcome::ClientClosed,
        Outcome::UpstreamError,
        Outcome::IdleTimeout,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Incomplete => "incomplete",
            Outcome::ClientClosed => "client_closed",
            Outcome::UpstreamError => "upstream_error",
            Outcome::IdleTimeout => "idle_timeout",
        }
    }
}

/// How the body ended, as the proxy saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream ended its framing cleanly.
    Finished,
    /// The client closed the connection.
    ClientClosed,
    /// Reading the upstream failed.
    UpstreamError,
    /// The upstream was silent for longer than the idle timeout.
    IdleTimeout,
}

/// What has been seen of one stream so far.
#[derive(Clone, Debug, Default)]
pub struct StreamStats {
    /// Upstream body chunks (empty ones are not counted).
    pub chunks: u64,
    /// Dispatched events (NDJSON lines), whatever their payload.
    pub events: u64,
    /// Upstream body bytes.
    pub bytes: u64,
    /// Unicode scalar values of model output text.
    pub output_chars: u64,
    /// The last input token count the upstream reported.
    pub input_tokens: Option<u64>,
    /// The last output token count the upstream reported.
    pub output_tokens: Option<u64>,
    /// In-stream error events.
    pub errors: u64,
    /// Events skipped for exceeding the size limit.
    pub oversized: u64,
    /// The dialect's end marker has passed.
    pub end_marker: bool,
    /// The first recognised dialect (sticky).
    pub dialect: Dialect,
    /// Request arrival to the first body byte.
    pub ttfb: Option<Duration>,
    /// Request arrival to the first event carrying non-empty model text.
    pub first_token: Option<Duration>,
    /// Longest interval between consecutive body chunks.
    pub max_gap: Duration,
    /// When the last event was dispatched.
    pub last_event_at: Option<Instant>,
}

/// What one chunk added, for live counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkDelta {
    /// Events dispatched by the chunk.
    pub events: u64,
    /// Output characters in those events.
    pub output_chars: u64,
    /// In-stream errors in those events.
    pub errors: u64,
}

/// Watches one streamed response body and classifies how it ended.
#[derive(Debug)]
pub struct StreamObserver {
    parser: Parser,
    /// Reads each event's payload; remembers the stream's repeated shape.
    inspector: Inspector,
    stats: StreamStats,
    started: Instant,
    last_chunk_at: Option<Instant>,
    outcome: Option<Outcome>,
    finish_delta: ChunkDelta,
}

impl StreamObserver {
    /// An observer for a body of `framing`; `started` is the request's arrival.
    pub fn new(framing: Framing, started: Instant) -> Self {
        Self::with_max_event_bytes(framing, started, DEFAULT_MAX_EVENT_BYTES)
    }

    /// Like `new`, with another limit on the bytes of one event.
    pub fn with_max_event_bytes(framing: Framing, started: Instant, max: usize) -> Self {
        StreamObserver {
            parser: Parser::new(framing, max),
            inspector: Inspector::default(),
            stats: StreamStats::default(),
            started,
            last_chunk_at: None,
            outcome: None,
            finish_delta: ChunkDelta::default(),
        }
    }

    /// Account one chunk of upstream body (never heartbeats); ignored after `finish`.
    pub fn on_chunk(&mut self, chunk: &[u8], now: Instant) -> ChunkDelta {
        if chunk.is_empty() || self.outcome.is_some() {
            return ChunkDelta::default();
        }
        let stats = &mut self.stats;
        stats.chunks += 1;
        stats.bytes += chunk.len() as u64;
        if stats.ttfb.is_none() {
            stats.ttfb = Some(now.saturating_duration_since(self.started));
        }
        // The chunks of one batch share one clock reading: only a batch's first can be a gap,
        // and comparing instants costs less than subtracting them (on back-to-back events,
        // a batch holds about a hundred chunks).
        if let Some(prev) = self.last_chunk_at.filter(|&prev| prev != now) {
            stats.max_gap = stats.max_gap.max(now.saturating_duration_since(prev));
        }
        self.last_chunk_at = Some(now);
        let mut delta = ChunkDelta::default();
        let (started, inspector) = (self.started, &mut self.inspector);
        self.parser.feed(chunk, &mut |ev| {
            record(stats, inspector, &mut delta, ev, started, now)
        });
        self.add(delta);
        delta
    }

    /// True when a heartbeat comment may be written now without splitting an event.
    pub fn at_event_boundary(&self) -> bool {
        self.parser.at_event_boundary()
    }

    /// The statistics so far.
    pub fn stats(&self) -> &StreamStats {
        &self.stats
    }

    /// The outcome once `finish` has been called.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// What `finish` itself added (a last unterminated NDJSON line), for live counters.
    pub fn finish_delta(&self) -> ChunkDelta {
        self.finish_delta
    }

    /// Finish the body (flush the parser per framing) and classify; later calls return the
    /// first outcome. A last unterminated NDJSON line counts only when the body `Finished`.
    pub fn finish(&mut self, end: StreamEnd, now: Instant) -> Outcome {
        if let Some(outcome) = self.outcome {
            return outcome;
        }
        let mut delta = ChunkDelta::default();
        let (stats, started, inspector) = (&mut self.stats, self.started, &mut self.inspector);
        if end == StreamEnd::Finished {
            self.parser
                .finish(&mut |ev| record(stats, inspector, &mut delta, ev, started, now));
        } else {
            // A body cut short leaves a truncated line: not an event.
            self.parser.finish(&mut |_| {});
        }
        self.add(delta);
        self.finish_delta = delta;
        let outcome = classify(end, self.stats.dialect, self.stats.end_marker);
        self.outcome = Some(outcome);
        outcome
    }

    fn add(&mut self, delta: ChunkDelta) {
        self.stats.events += delta.events;
        self.stats.output_chars += delta.output_chars;
        self.stats.errors += delta.errors;
        self.stats.oversized = self.parser.oversized_events();
    }
}

fn record(
    stats: &mut StreamStats,
    inspector: &mut Inspector,
    delta: &mut ChunkDelta,
    ev: &Event<'_>,
    started: Instant,
    now: Instant,
) {
    let payload = inspector.inspect(ev.event_type, ev.data);
    delta.events += 1;
    if stats.dialect == Dialect::Unknown {
        stats.dialect = payload.dialect;
    }
    if let Some(text) = &payload.text {
        // Model text is mostly ASCII, whose characters are its bytes (a quicker count).
        let chars = if text.is_ascii() {
            text.len()
        } else {
            text.chars().count()
        } as u64;
        delta.output_chars += chars;
        if chars > 0 && stats.first_token.is_none() {
            stats.first_token = Some(now.saturating_duration_since(started));
        }
    }
    // Keep the last value reported: Anthropic's output count is cumulative.
    stats.input_tokens = payload.input_tokens.or(stats.input_tokens);
    stats.output_tokens = payload.output_tokens.or(stats.output_tokens);
    delta.errors += u64::from(payload.error);
    stats.end_marker |= payload.end;
    stats.last_event_at = Some(now);
}

/// Pure classification used by `finish`.
pub fn classify(end: StreamEnd, dialect: Dialect, end_marker_seen: bool) -> Outcome {
    // SDKs hang up right after the end marker: the user got the whole answer.
    if end_marker_seen {
        return Outcome::Completed;
    }
    match end {
        StreamEnd::Finished if dialect.has_end_marker() => Outcome::Incomplete,
        StreamEnd::Finished => Outcome::Completed,
        StreamEnd::ClientClosed => Outcome::ClientClosed,
        StreamEnd::UpstreamError => Outcome::UpstreamError,
        StreamEnd::IdleTimeout => Outcome::IdleTimeout,
    }
}

/// The contract's per-stream log line (`-` for absent values).
pub fn log_line(
    route: &str,
    status: u16,
    outcome: Outcome,
    stats: &StreamStats,
    duration: Duration,
) -> String {
    let ms = |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), |d| d.as_millis().to_string());
    let count = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    // Keep the line splittable on spaces whatever the route's name.
    let route = if route.is_empty() || route.contains(|c: char| c.is_whitespace() || c == '"') {
        format!("{route:?}")
    } else {
        route.to_owned()
    };
    format!(
        "stream end route={route} status={status} outcome={} ttfb_ms={} first_token_ms={} duration_ms={} \
         max_gap_ms={} chunks={} events={} bytes={} output_chars={} tokens={}/{}",
        outcome.as_str(),
        ms(stats.ttfb),
        ms(stats.first_token),
        duration.as_millis(),
        stats.max_gap.as_millis(),
        stats.chunks,
        stats.events,
        stats.bytes,
        stats.output_chars,
        count(stats.input_tokens),
        count(stats.output_tokens),
    )
}

#[cfg(test)]
#[path = "observe/tests.rs"]
mod tests;
