//! The Prometheus metrics of the contract, on a registry of our own.
//!
//! Label values come only from the config (route names, upstream names, server labels) or
//! from small fixed sets (status codes, outcomes), never from request data, so a client
//! cannot grow the number of series.

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::observe::Outcome;

/// Time to first byte and to first token: 5 ms to two minutes (a model may load that long).
const FIRST_BYTE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Request and stream durations: up to an hour.
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    3600.0,
];
/// Longest silence inside a stream: up to the longest idle timeout anyone should need.
const GAP_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Every metric ssegate exports.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    streams_active: IntGaugeVec,
    streams: IntCounterVec,
    ttfb: HistogramVec,
    first_token: HistogramVec,
    stream_duration: HistogramVec,
    max_gap: HistogramVec,
    chunks: IntCounterVec,
    events: IntCounterVec,
    bytes: IntCounterVec,
    output_chars: IntCounterVec,
    tokens: IntCounterVec,
    stream_errors: IntCounterVec,
    heartbeats: IntCounterVec,
    rejected: IntCounterVec,
    /// 1 healthy, 0 failing its health check; labels upstream, server.
    pub upstream_healthy: IntGaugeVec,
    /// Latency of the last keep-warm request; labels upstream, server.
    pub keep_warm_seconds: GaugeVec,
    /// Keep-warm requests that failed; labels upstream, server.
    pub keep_warm_failures: IntCounterVec,
}

fn counter(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(reg, IntCounterVec::new(Opts::new(name, help), labels))
}

fn histogram(reg: &Registry, name: &str, help: &str, buckets: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(reg, HistogramVec::new(opts, &["route"]))
}

/// Registers a collector built from constant, valid options; failure is a programming error
/// caught by the unit tests, so it is logged rather than propagated.
fn register<C: Collector + Clone + 'static>(reg: &Registry, made: prometheus::Result<C>) -> C {
    match made {
        Ok(c) => {
            if let Err(e) = reg.register(Box::new(c.clone())) {
                log::error!("metric registration failed: {e}");
            }
            c
        }
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates every metric on a fresh registry.
    pub fn new() -> Self {
        let r = Registry::new();
        let stream_counter = |name: &str, help: &str| counter(&r, name, help, &["route"]);
        Metrics {
            requests: counter(
                &r,
                "ssegate_requests_total",
                "Every proxied request",
                &["route", "status"],
            ),
            request_duration: histogram(
                &r,
                "ssegate_request_duration_seconds",
                "Request arrival to last byte",
                DURATION_BUCKETS,
            ),
            streams_active: register(
                &r,
                IntGaugeVec::new(
                    Opts::new("ssegate_streams_active", "Streams open now"),
                    &["route"],
                ),
            ),
            streams: counter(
                &r,
                "ssegate_streams_total",
                "Ended streams by outcome",
                &["route", "outcome"],
            ),
            ttfb: histogram(
                &r,
                "ssegate_stream_ttfb_seconds",
                "Request arrival to the first upstream body byte sent to the client",
                FIRST_BYTE_BUCKETS,
            ),
            first_token: histogram(
                &r,
                "ssegate_stream_first_token_seconds",
                "Request arrival to the first event that carries model output",
                FIRST_BYTE_BUCKETS,
            ),
            stream_duration: histogram(
                &r,
                "ssegate_stream_duration_seconds",
                "Request arrival to stream end",
                DURATION_BUCKETS,
            ),
            max_gap: histogram(
                &r,
                "ssegate_stream_max_gap_seconds",
                "The longest silence inside each stream",
                GAP_BUCKETS,
            ),
            chunks: stream_counter("ssegate_stream_chunks_total", "Upstream body chunks"),
            events: stream_counter("ssegate_stream_events_total", "SSE events (NDJSON lines)"),
            bytes: stream_counter("ssegate_stream_bytes_total", "Body bytes"),
            output_chars: stream_counter(
                "ssegate_stream_output_chars_total",
                "Characters of model output text",
            ),
            tokens: counter(
                &r,
                "ssegate_stream_tokens_total",
                "Tokens from usage blocks the upstream sends",
                &["route", "type"],
            ),
            stream_errors: stream_counter(
                "ssegate_stream_errors_total",
                "In-stream error events (event: error, \"type\":\"error\")",
            ),
            heartbeats: stream_counter("ssegate_heartbeats_total", "Heartbeat comments sent"),
            rejected: counter(
                &r,
                "ssegate_rejected_total",
                "Requests refused by a limit",
                &["route", "reason"],
            ),
            upstream_healthy: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "ssegate_upstream_healthy",
                        "1 healthy, 0 failing its health check",
                    ),
                    &["upstream", "server"],
                ),
            ),
            keep_warm_seconds: register(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "ssegate_keep_warm_seconds",
                        "Latency of the last keep-warm request",
                    ),
                    &["upstream", "server"],
                ),
            ),
            keep_warm_failures: counter(
                &r,
                "ssegate_keep_warm_failures_total",
                "Keep-warm requests that failed",
                &["upstream", "server"],
            ),
            registry: r,
        }
    }

    /// The handles of one route, resolved once so that the per-chunk path does no lookups.
    pub fn route(&self, name: &str) -> RouteMetrics {
        let l = &[name];
        RouteMetrics {
            name: name.into(),
            requests: self.requests.clone(),
            by_status: (0..RESOLVED_STATUSES)
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            request_duration: self.request_duration.with_label_values(l),
            active: self.streams_active.with_label_values(l),
            outcomes: Outcome::ALL.map(|o| self.streams.with_label_values(&[name, o.as_str()])),
            ttfb: self.ttfb.with_label_values(l),
            first_token: self.first_token.with_label_values(l),
            duration: self.stream_duration.with_label_values(l),
            max_gap: self.max_gap.with_label_values(l),
            chunks: self.chunks.with_label_values(l),
            events: self.events.with_label_values(l),
            bytes: self.bytes.with_label_values(l),
            output_chars: self.output_chars.with_label_values(l),
            input_tokens: self.tokens.with_label_values(&[name, "input"]),
            output_tokens: self.tokens.with_label_values(&[name, "output"]),
            errors: self.stream_errors.with_label_values(l),
            heartbeats: self.heartbeats.with_label_values(l),
            rejected_max_streams: self.rejected.with_label_values(&[name, "max_streams"]),
            rejected_per_client: self
                .rejected
                .with_label_values(&[name, "max_streams_per_client"]),
        }
    }

    /// Counts a request that matched no route (label `unmatched`; no stream series for it).
    pub fn unmatched_request(&self, status: u16, seconds: f64) {
        let status = status.to_string();
        self.requests
            .with_label_values(&["unmatched", &status])
            .inc();
        self.request_duration
            .with_label_values(&["unmatched"])
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("encoding metrics: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Statuses whose request counter a route keeps resolved: 0 (nothing answered) to 599.
const RESOLVED_STATUSES: usize = 600;

/// Metric handles of one route.
#[derive(Clone)]
pub struct RouteMetrics {
    /// The route label.
    pub name: std::sync::Arc<str>,
    requests: IntCounterVec,
    /// The request counter of each status, resolved at its first request: a lookup by label
    /// values formats the status and hashes both labels under a lock, on every request.
    by_status: std::sync::Arc<[std::sync::OnceLock<IntCounter>]>,
    /// Request arrival to last byte.
    pub request_duration: Histogram,
    /// Streams open now.
    pub active: IntGauge,
    outcomes: [IntCounter; 5],
    /// Request arrival to first body byte.
    pub ttfb: Histogram,
    /// Request arrival to first model output.
    pub first_token: Histogram,
    /// Request arrival to stream end.
    pub duration: Histogram,
    /// Longest silence of each stream.
    pub max_gap: Histogram,
    /// Upstream body chunks.
    pub chunks: IntCounter,
    /// Dispatched events.
    pub events: IntCounter,
    /// Body bytes.
    pub bytes: IntCounter,
    /// Characters of model output.
    pub output_chars: IntCounter,
    /// Input tokens reported by usage blocks.
    pub input_tokens: IntCounter,
    /// Output tokens reported by usage blocks.
    pub output_tokens: IntCounter,
    /// In-stream error events.
    pub errors: IntCounter,
    /// Heartbeat comments written.
    pub heartbeats: IntCounter,
    /// Refused by `max_streams`.
    pub rejected_max_streams: IntCounter,
    /// Refused by `max_streams_per_client`.
    pub rejected_per_client: IntCounter,
}

impl RouteMetrics {
    /// Counts one ended stream.
    pub fn outcome(&self, o: Outcome) -> &IntCounter {
        let i = Outcome::ALL.iter().position(|x| *x == o).unwrap_or(0);
        &self.outcomes[i]
    }

    /// Counts one finished request with its status (0 when nothing was answered).
    pub fn request_done(&self, status: u16, seconds: f64) {
        match self.by_status.get(usize::from(status)) {
            Some(slot) => slot.get_or_init(|| self.status_counter(status)).inc(),
            None => self.status_counter(status).inc(),
        }
        self.request_duration.observe(seconds);
    }

    fn status_counter(&self, status: u16) -> IntCounter {
        self.requests
            .with_label_values(&[&*self.name, &status.to_string()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_status_with_a_series_only_for_statuses_seen() {
        let m = Metrics::new();
        let r = m.route("chat");
        for status in [200, 200, 0, 599, 700, 200] {
            r.request_done(status, 0.01);
        }
        // A reload makes new handles for the same route; they count into the same series.
        m.route("chat").request_done(200, 0.01);
        r.clone().request_done(700, 0.01);
        let text = m.encode();
        for (status, n) in [("200", 4), ("0", 1), ("599", 1), ("700", 2)] {
            let line = format!("ssegate_requests_total{{route=\"chat\",status=\"{status}\"}} {n}");
            assert!(text.contains(&line), "{line} in:\n{text}");
        }
        assert!(
            !text.contains("status=\"404\""),
            "a series for a status never seen"
        );
    }

    #[test]
    fn every_contract_metric_is_exported() {
        let m = Metrics::new();
        let r = m.route("chat");
        r.request_done(200, 0.1);
        r.outcome(Outcome::Completed).inc();
        m.upstream_healthy
            .with_label_values(&["backend", "127.0.0.1:8000"])
            .set(1);
        m.keep_warm_seconds
            .with_label_values(&["llm", "127.0.0.1:1234"])
            .set(0.2);
        m.keep_warm_failures
            .with_label_values(&["llm", "127.0.0.1:1234"])
            .inc();
        let text = m.encode();
        for name in [
            "ssegate_requests_total{route=\"chat\",status=\"200\"} 1",
            "ssegate_request_duration_seconds_bucket",
            "ssegate_streams_active{route=\"chat\"} 0",
            "ssegate_streams_total{outcome=\"completed\",route=\"chat\"} 1",
            "ssegate_streams_total{outcome=\"idle_timeout\",route=\"chat\"} 0",
            "ssegate_stream_ttfb_seconds_bucket{route=\"chat\",le=\"0.005\"}",
            "ssegate_stream_ttfb_seconds_bucket{route=\"chat\",le=\"120\"}",
            "ssegate_stream_first_token_seconds_bucket",
            "ssegate_stream_duration_seconds_bucket{route=\"chat\",le=\"3600\"}",
            "ssegate_stream_max_gap_seconds_bucket{route=\"chat\",le=\"600\"}",
            "ssegate_stream_chunks_total",
            "ssegate_stream_events_total",
            "ssegate_stream_bytes_total",
            "ssegate_stream_output_chars_total",
            "ssegate_stream_tokens_total{route=\"chat\",type=\"input\"} 0",
            "ssegate_stream_tokens_total{route=\"chat\",type=\"output\"} 0",
            "ssegate_heartbeats_total",
            "ssegate_rejected_total{reason=\"max_streams\",route=\"chat\"} 0",
            "ssegate_rejected_total{reason=\"max_streams_per_client\",route=\"chat\"} 0",
            "ssegate_upstream_healthy{server=\"127.0.0.1:8000\",upstream=\"backend\"} 1",
            "ssegate_keep_warm_seconds{server=\"127.0.0.1:1234\",upstream=\"llm\"} 0.2",
            "ssegate_keep_warm_failures_total{server=\"127.0.0.1:1234\",upstream=\"llm\"} 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
