//! Open streams: the live registry behind `GET /streams`, and [`TrackedStream`], which feeds
//! one stream's bytes to its observer, its registry entry and its route's metrics.
//!
//! Both ways a stream is served (the relay loop of stream routes and Pingora's own pipeline)
//! go through `TrackedStream`, so they count the same things the same way.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::metrics::RouteMetrics;
use crate::observe::{log_line, ChunkDelta, Outcome, StreamEnd, StreamObserver, StreamStats};
use crate::sse::Framing;

/// The open streams, by id.
#[derive(Default)]
pub struct Registry {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<LiveStream>>>,
}

/// What `/streams` shows of one open stream; updated with atomics as chunks pass.
pub struct LiveStream {
    id: u64,
    route: Arc<str>,
    client: IpAddr,
    upstream: Mutex<String>,
    started: Instant,
    events: AtomicU64,
    bytes: AtomicU64,
    output_chars: AtomicU64,
    /// Nanoseconds after `started` of the last event, plus one (0: none yet).
    last_event: AtomicU64,
}

/// One row of `GET /streams`.
#[derive(Serialize, Debug, PartialEq)]
pub struct StreamRow {
    /// Stream id, unique for the life of the process.
    pub id: u64,
    /// Route label.
    pub route: String,
    /// Client address.
    pub client: String,
    /// Upstream server serving it.
    pub upstream: String,
    /// Time since the request arrived.
    pub age_ms: u64,
    /// Events so far.
    pub events: u64,
    /// Body bytes so far.
    pub bytes: u64,
    /// Model output characters so far.
    pub output_chars: u64,
    /// Time since the last event, `null` before the first.
    pub last_event_age_ms: Option<u64>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(
        &self,
        route: Arc<str>,
        client: IpAddr,
        upstream: String,
        started: Instant,
    ) -> Arc<LiveStream> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let live = Arc::new(LiveStream {
            id,
            route,
            client,
            upstream: Mutex::new(upstream),
            started,
            events: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            output_chars: AtomicU64::new(0),
            last_event: AtomicU64::new(0),
        });
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, live.clone());
        }
        live
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Number of open streams.
    pub fn len(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    /// Whether no stream is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The open streams, oldest first.
    pub fn rows(&self, now: Instant) -> Vec<StreamRow> {
        let open: Vec<Arc<LiveStream>> = match self.open.lock() {
            Ok(o) => o.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let mut rows: Vec<StreamRow> = open.iter().map(|s| s.row(now)).collect();
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// `GET /streams` as JSON.
    pub fn to_json(&self, now: Instant) -> String {
        serde_json::to_string(&self.rows(now)).unwrap_or_else(|_| "[]".into())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl LiveStream {
    fn row(&self, now: Instant) -> StreamRow {
        let last = self.last_event.load(Ordering::Relaxed);
        let last_event_age_ms = (last > 0).then(|| {
            let at = self.started + Duration::from_nanos(last - 1);
            millis(now.saturating_duration_since(at))
        });
        StreamRow {
            id: self.id,
            route: self.route.to_string(),
            client: self.client.to_string(),
            upstream: self.upstream.lock().map(|u| u.clone()).unwrap_or_default(),
            age_ms: millis(now.saturating_duration_since(self.started)),
            events: self.events.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            output_chars: self.output_chars.load(Ordering::Relaxed),
            last_event_age_ms,
        }
    }
}

/// One stream being served: observer, live registry entry and metrics in step.
/// Dropping it (however the request ends, even when the runtime is torn down) closes the
/// registry entry and the active gauge.
pub struct TrackedStream {
    observer: StreamObserver,
    live: Arc<LiveStream>,
    registry: Arc<Registry>,
    /// Shared by the route's streams: one pointer here, not its twenty-odd handles.
    metrics: Arc<RouteMetrics>,
    started: Instant,
    outcome: Option<Outcome>,
    /// Counts not yet added to the shared counters (see [`PUBLISH_EVERY`]).
    pending: Pending,
}

/// How often a stream adds its counts to the shared counters and `/streams`. Shared atomics
/// on every chunk of a fast stream cost more than parsing it; a scrape never sees the lag.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// Counts of a stream not yet published.
#[derive(Default)]
struct Pending {
    chunks: u64,
    bytes: u64,
    delta: ChunkDelta,
    last_event: Option<Instant>,
    /// When the counts are next published by a chunk (`PUBLISH_EVERY` after the last time):
    /// comparing two instants per batch costs less than subtracting them.
    publish_due: Option<Instant>,
}

impl TrackedStream {
    /// Opens a stream that started (request arrival) at `started`.
    pub fn start(
        framing: Framing,
        started: Instant,
        metrics: Arc<RouteMetrics>,
        registry: Arc<Registry>,
        client: IpAddr,
        upstream: String,
    ) -> Self {
        metrics.active.inc();
        let live = registry.insert(metrics.name.clone(), client, upstream, started);
        TrackedStream {
            observer: StreamObserver::new(framing, started),
            live,
            registry,
            metrics,
            started,
            outcome: None,
            pending: Pending::default(),
        }
    }

    /// Observes one upstream body chunk on its way to the client and publishes at once
    /// (for callers that cannot tell when the stream goes quiet).
    pub fn on_chunk(&mut self, chunk: &[u8]) {
        let now = Instant::now();
        self.observe(chunk, now);
        self.publish(now);
    }

    /// Observes one chunk of a batch going to the client at `now` (one clock reading for
    /// all); [`Self::observed`] ends the batch. Counts reach the shared counters every
    /// `PUBLISH_EVERY` at most; the caller calls [`Self::publish_now`] when the upstream goes
    /// quiet, so nothing waits on the next chunk.
    pub fn observe(&mut self, chunk: &[u8], now: Instant) {
        if chunk.is_empty() {
            return;
        }
        let p = &mut self.pending;
        let d = self.observer.on_chunk(chunk, now);
        p.delta.events += d.events;
        p.delta.output_chars += d.output_chars;
        p.delta.errors += d.errors;
        if d.events > 0 {
            p.last_event = Some(now);
        }
        p.bytes += chunk.len() as u64;
        p.chunks += 1;
    }

    /// A batch of [`Self::observe`]d chunks went out at `now`: publishes if it is time.
    pub fn observed(&mut self, now: Instant) {
        if self.pending.publish_due.is_none_or(|due| now >= due) {
            self.publish(now);
        }
    }

    /// Adds the pending counts to the shared counters and the live entry now.
    pub fn publish_now(&mut self) {
        if self.pending.chunks > 0 || self.pending.delta != ChunkDelta::default() {
            self.publish(Instant::now());
        }
    }

    /// Adds the pending counts to the shared counters and the live entry.
    fn publish(&mut self, now: Instant) {
        let p = std::mem::take(&mut self.pending);
        self.pending.publish_due = now.checked_add(PUBLISH_EVERY);
        let (m, live, d) = (&self.metrics, &self.live, p.delta);
        if p.chunks > 0 {
            m.chunks.inc_by(p.chunks);
            m.bytes.inc_by(p.bytes);
            live.bytes.fetch_add(p.bytes, Ordering::Relaxed);
        }
        if d.events > 0 {
            m.events.inc_by(d.events);
            live.events.fetch_add(d.events, Ordering::Relaxed);
        }
        if let Some(at) = p.last_event {
            let since = u64::try_from(at.duration_since(self.started).as_nanos());
            live.last_event
                .store(since.unwrap_or(u64::MAX - 1) + 1, Ordering::Relaxed);
        }
        if d.output_chars > 0 {
            m.output_chars.inc_by(d.output_chars);
            live.output_chars
                .fetch_add(d.output_chars, Ordering::Relaxed);
        }
        if d.errors > 0 {
            m.errors.inc_by(d.errors);
        }
    }

    /// Whether the bytes passed so far end between events (where a heartbeat may go).
    pub fn at_event_boundary(&self) -> bool {
        self.observer.at_event_boundary()
    }

    /// Names the upstream server once it is known (streams opened before connecting).
    pub fn set_upstream(&self, label: &str) {
        if let Ok(mut u) = self.live.upstream.lock() {
            label.clone_into(&mut u);
        }
    }

    /// Counts a heartbeat comment written to the client.
    pub fn on_heartbeat(&self) {
        self.metrics.heartbeats.inc();
    }

    /// Statistics so far.
    pub fn stats(&self) -> &StreamStats {
        self.observer.stats()
    }

    /// Whether `finish` already ran.
    pub fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    /// Ends the stream as `end` says, records its metrics and log line once; returns the outcome.
    pub fn finish(&mut self, end: StreamEnd, status: u16) -> Outcome {
        if let Some(o) = self.outcome {
            return o;
        }
        let now = Instant::now();
        let outcome = self.observer.finish(end, now);
        // An unterminated last NDJSON line is only dispatched by finish.
        let last = self.observer.finish_delta();
        self.pending.delta.events += last.events;
        self.pending.delta.output_chars += last.output_chars;
        self.pending.delta.errors += last.errors;
        self.publish(now);
        self.outcome = Some(outcome);
        let stats = self.observer.stats();
        let m = &self.metrics;
        m.outcome(outcome).inc();
        let duration = now.duration_since(self.started);
        m.duration.observe(duration.as_secs_f64());
        if let Some(t) = stats.ttfb {
            m.ttfb.observe(t.as_secs_f64());
        }
        if let Some(t) = stats.first_token {
            m.first_token.observe(t.as_secs_f64());
        }
        if stats.ttfb.is_some() {
            m.max_gap.observe(stats.max_gap.as_secs_f64());
        }
        if let Some(n) = stats.input_tokens {
            m.input_tokens.inc_by(n);
        }
        if let Some(n) = stats.output_tokens {
            m.output_tokens.inc_by(n);
        }
        log::info!("{}", log_line(&m.name, status, outcome, stats, duration));
        outcome
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        self.publish(Instant::now());
        self.metrics.active.dec();
        self.registry.remove(self.live.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::net::Ipv4Addr;

    /// Observes `chunks` as one write to the client at `now`, as the relay does.
    fn batch(s: &mut TrackedStream, chunks: &[&[u8]], now: Instant) {
        chunks.iter().for_each(|c| s.observe(c, now));
        s.observed(now);
    }

    #[test]
    fn registry_follows_the_stream_and_gauge_returns_to_zero() {
        let m = Metrics::new();
        let reg = Arc::new(Registry::new());
        let rm = Arc::new(m.route("chat"));
        let started = Instant::now();
        let mut s = TrackedStream::start(
            Framing::Sse,
            started,
            rm.clone(),
            reg.clone(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            "127.0.0.1:8000".into(),
        );
        assert_eq!(rm.active.get(), 1);
        batch(&mut s, &[b"", b": comment\n\n"], Instant::now());
        assert_eq!(rm.chunks.get(), 1, "empty chunks are not counted");
        s.on_chunk(b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n");
        let rows = reg.rows(Instant::now());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].route, "chat");
        assert_eq!(rows[0].events, 2);
        assert_eq!(rows[0].output_chars, 2);
        assert!(rows[0].last_event_age_ms.is_some());
        assert!(reg
            .to_json(Instant::now())
            .contains("\"upstream\":\"127.0.0.1:8000\""));
        assert_eq!(s.finish(StreamEnd::Finished, 200), Outcome::Completed);
        assert_eq!(
            s.finish(StreamEnd::ClientClosed, 200),
            Outcome::Completed,
            "finish is idempotent"
        );
        assert_eq!(rm.outcome(Outcome::Completed).get(), 1);
        assert_eq!(rm.events.get(), 2);
        drop(s);
        assert_eq!(rm.active.get(), 0);
        assert!(reg.is_empty());
    }

    #[test]
    fn dropped_without_finish_still_closes() {
        let m = Metrics::new();
        let reg = Arc::new(Registry::new());
        let rm = Arc::new(m.route("r"));
        let s = TrackedStream::start(
            Framing::Ndjson,
            Instant::now(),
            rm.clone(),
            reg.clone(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            "u".into(),
        );
        drop(s);
        assert_eq!(rm.active.get(), 0);
        assert!(reg.is_empty());
    }

    #[test]
    fn counts_are_published_at_most_every_period_and_when_asked() {
        let m = Metrics::new();
        let rm = Arc::new(m.route("r"));
        let t0 = Instant::now();
        let mut s = TrackedStream::start(
            Framing::Sse,
            t0,
            rm.clone(),
            Arc::new(Registry::new()),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            "u".into(),
        );
        let event: &[u8] = b"data: x\n\n";
        batch(&mut s, &[event], t0);
        assert_eq!(rm.chunks.get(), 1, "the first batch is published at once");
        batch(&mut s, &[event], t0 + PUBLISH_EVERY / 2);
        assert_eq!(rm.chunks.get(), 1, "within the period, held");
        batch(&mut s, &[event], t0 + PUBLISH_EVERY);
        assert_eq!(rm.chunks.get(), 3, "a period on, published");
        batch(&mut s, &[event], t0 + PUBLISH_EVERY + PUBLISH_EVERY / 4);
        assert_eq!(rm.chunks.get(), 3);
        s.publish_now();
        assert_eq!(rm.chunks.get(), 4, "the upstream went quiet: published now");
        assert_eq!(rm.events.get(), 4);
    }
}
