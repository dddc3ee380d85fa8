//! The verdict: from what arrived and when, decide whether a response really streamed.
//!
//! Pure: it sees the response headers and the arrival time of every event (relative to the
//! request), never the network, so every rule is tested with synthetic timelines.

use std::time::Duration;

use crate::dialect::Dialect;
use crate::sse::Framing;

use super::bursts::{buffering, Buffering, Release, MIN_EVENTS};

/// What the probe concluded about one response; the order is the verdict's priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The content type (or the framing of the body) is not a stream's.
    NotAStream,
    /// A `Content-Encoding` on an event stream.
    Compressed,
    /// The events arrived in bursts after silences: some hop held them.
    Buffered,
    /// The stream ended (or was cut) without the end marker its dialect promises.
    Incomplete,
    /// The events arrived spread over time.
    Streamed,
}

impl Kind {
    /// The verdict as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NotAStream => "not a stream",
            Kind::Compressed => "compressed",
            Kind::Buffered => "buffered",
            Kind::Incomplete => "incomplete",
            Kind::Streamed => "streamed",
        }
    }

    /// The verdict in JSON (snake case).
    pub fn id(self) -> &'static str {
        match self {
            Kind::NotAStream => "not_a_stream",
            other => other.as_str(),
        }
    }

    /// The process exit code for this verdict (documented in `probe`).
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Streamed => 0,
            Kind::Buffered => 10,
            Kind::Compressed => 11,
            Kind::Incomplete => 12,
            Kind::NotAStream => 13,
        }
    }
}

/// How the response body ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyEnd {
    /// The server ended the body.
    Finished,
    /// The end marker passed and the probe stopped waiting for the server to close, as SDKs do.
    StoppedAfterEndMarker,
    /// `--timeout` (the value) ran out while the body was still open.
    TimedOut(Duration),
    /// The connection failed mid-body.
    Broken(String),
}

/// What was observed of one response.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// `Content-Type`, if any.
    pub content_type: Option<&'a str>,
    /// `Content-Encoding`, if any.
    pub content_encoding: Option<&'a str>,
    /// `Content-Length`, if any.
    pub content_length: Option<&'a str>,
    /// When each event arrived, measured from the request.
    pub arrivals: &'a [Duration],
    /// When each event with model text arrived. Buffering is judged on these when there are
    /// any: the protocol events around them (role, finish, usage, `[DONE]`) are written
    /// together by design and would look like a burst.
    pub text_arrivals: &'a [Duration],
    /// Body bytes as received (before any decoding).
    pub body_bytes: u64,
    /// The first recognised payload dialect.
    pub dialect: Dialect,
    /// The dialect's end marker was seen.
    pub end_marker: bool,
    /// How the body ended.
    pub end: &'a BodyEnd,
    /// Why a compressed body could not be decoded, if it could not.
    pub decode_error: Option<&'a str>,
}

/// One rule that fired, with the evidence that made it fire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The verdict this rule gives.
    pub kind: Kind,
    /// Why, in one sentence.
    pub evidence: String,
}

/// Every finding, most important first; the first is the verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Never empty: `Streamed` stands alone when nothing is wrong.
    pub findings: Vec<Finding>,
}

impl Verdict {
    /// The verdict.
    pub fn kind(&self) -> Kind {
        self.findings.first().map_or(Kind::Streamed, |f| f.kind)
    }

    /// The evidence for the verdict.
    pub fn evidence(&self) -> &str {
        self.findings.first().map_or("", |f| f.evidence.as_str())
    }
}

/// Judges one response.
pub fn judge(f: &Facts<'_>) -> Verdict {
    let mut findings = Vec::new();
    let events = f.arrivals.len();
    let stream_type = f.content_type.and_then(Framing::from_content_type);
    match (f.content_type, stream_type) {
        (None, _) => findings.push(Finding {
            kind: Kind::NotAStream,
            evidence: format!(
                "no Content-Type; a stream is text/event-stream or application/x-ndjson{}",
                sniffed(events)
            ),
        }),
        (Some(ct), None) => findings.push(Finding {
            kind: Kind::NotAStream,
            evidence: format!(
                "Content-Type {ct} is not a stream type (text/event-stream or application/x-ndjson){}",
                sniffed(events)
            ),
        }),
        // Only a body that ended can be said to hold no event: one cut short (say, heartbeats
        // while a model loads past --timeout) is incomplete instead.
        (Some(ct), Some(_))
            if events == 0
                && f.body_bytes > 0
                && f.decode_error.is_none()
                && *f.end == BodyEnd::Finished =>
        {
            findings.push(Finding {
                kind: Kind::NotAStream,
                evidence: format!(
                    "Content-Type says {ct}, but its {} bytes hold no event (an event is a `data:` line ended by a blank line)",
                    f.body_bytes
                ),
            })
        }
        _ => {}
    }
    if let Some(enc) = f
        .content_encoding
        .filter(|e| !e.trim().eq_ignore_ascii_case("identity"))
    {
        let decoded = match f.decode_error {
            Some(e) => format!("; the body could not be decoded ({e})"),
            None => String::new(),
        };
        findings.push(Finding {
            kind: Kind::Compressed,
            evidence: format!(
                "Content-Encoding: {enc} on a stream: a compressor holds events until its block fills \
                 (turn compression off for this response){decoded}"
            ),
        });
    }
    let (timed, noun) = if f.text_arrivals.is_empty() {
        (f.arrivals, "events")
    } else {
        (f.text_arrivals, "text events")
    };
    let buffering = buffering(timed);
    if let Buffering::Held {
        releases,
        held,
        total,
    } = &buffering
    {
        findings.push(Finding {
            kind: Kind::Buffered,
            evidence: held_evidence(releases, *held, *total, noun, f.content_length),
        });
    }
    if let Some(evidence) = incomplete(f) {
        findings.push(Finding {
            kind: Kind::Incomplete,
            evidence,
        });
    }
    findings.sort_by_key(|x| x.kind);
    if findings.is_empty() {
        findings.push(Finding {
            kind: Kind::Streamed,
            evidence: spread_evidence(timed, noun, &buffering),
        });
    }
    Verdict { findings }
}

fn sniffed(events: usize) -> String {
    if events > 0 {
        format!("; its body reads as {events} event(s), but browsers' EventSource and proxies go by the Content-Type")
    } else {
        String::new()
    }
}

fn incomplete(f: &Facts<'_>) -> Option<String> {
    let n = f.arrivals.len();
    let at = |d: Option<&Duration>| d.map_or_else(|| "the start".to_owned(), |d| human(*d));
    match f.end {
        BodyEnd::Broken(e) => Some(format!(
            "the connection broke after {n} event(s) (last at {}): {e}",
            at(f.arrivals.last())
        )),
        BodyEnd::TimedOut(t) if !f.end_marker => Some(format!(
            "--timeout {} ran out after {n} event(s) with the stream still open",
            human(*t)
        )),
        _ if n == 0 && f.body_bytes == 0 => Some("the stream ended without any event".to_owned()),
        _ if f.dialect.has_end_marker() && !f.end_marker => Some(format!(
            "the {} stream ended without its end marker ({})",
            f.dialect.as_str(),
            end_marker_name(f.dialect)
        )),
        _ => None,
    }
}

/// How the end marker of a dialect is written.
pub fn end_marker_name(d: Dialect) -> &'static str {
    match d {
        Dialect::OpenAiChat | Dialect::OpenAiCompletions => "data: [DONE]",
        Dialect::OpenAiResponses => "response.completed",
        Dialect::Anthropic => "message_stop",
        Dialect::Ollama => "\"done\": true",
        Dialect::Chunk => "{\"type\":\"done\"}",
        Dialect::Unknown => "none",
    }
}

fn held_evidence(
    releases: &[Release],
    held: usize,
    total: usize,
    noun: &str,
    length: Option<&str>,
) -> String {
    let length = match length {
        Some(l) => {
            format!("; Content-Length: {l} says the whole body existed before the headers left")
        }
        None => String::new(),
    };
    match releases {
        [one] => format!(
            "{held} of {total} {noun} arrived within {} at {}, after {} of silence: a hop held the stream and released it at once{length}",
            human(one.span),
            human(one.at),
            human(one.silence)
        ),
        _ => {
            let largest = releases.iter().map(|r| r.count).max().unwrap_or(0);
            let longest = releases.iter().map(|r| r.silence).max().unwrap_or_default();
            format!(
                "{held} of {total} {noun} arrived in {} bursts (largest {largest}) after silences of up to {}: a hop passes the stream on in buffer-sized blocks{length}",
                releases.len(),
                human(longest)
            )
        }
    }
}

fn spread_evidence(arrivals: &[Duration], noun: &str, b: &Buffering) -> String {
    let (Some(first), Some(last)) = (arrivals.first(), arrivals.last()) else {
        return "no event to judge".to_owned();
    };
    match b {
        Buffering::TooFew(n) => format!(
            "too few {noun} ({n}) to tell streaming from buffering (at least {MIN_EVENTS} needed)"
        ),
        Buffering::TooFast(d) => format!(
            "the whole stream arrived within {} of the request: too fast for buffering to show; probe with a longer answer",
            human(*d)
        ),
        Buffering::Spread { held, total } => {
            let bursts = match held {
                0 => String::new(),
                n => format!("; {n} arrived in bursts after a silence, too few to call it buffering"),
            };
            format!(
                "{total} {noun} spread from {} to {} (longest gap {}){bursts}",
                human(*first),
                human(*last),
                human(longest_gap(arrivals))
            )
        }
        Buffering::Held { .. } => String::new(),
    }
}

/// The longest silence between two consecutive events.
pub fn longest_gap(arrivals: &[Duration]) -> Duration {
    arrivals
        .windows(2)
        .filter_map(|w| match w {
            [a, b] => Some(b.saturating_sub(*a)),
            _ => None,
        })
        .max()
        .unwrap_or_default()
}

/// A duration for people: `0.4 ms`, `95 ms`, `2.41 s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
