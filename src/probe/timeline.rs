//! What a response body says as it arrives: decoding, events, their arrival times and payloads.
//!
//! Pure: body chunks and the instants they arrived are fed in, so it is tested without a
//! network. Built on ssegate's own SSE/NDJSON parser and payload dialects, so a probe sees a
//! stream exactly as the proxy's observer does.

use std::time::{Duration, Instant};

use pingora::protocols::http::compression::{Algorithm, Encode};

use crate::dialect::{self, Dialect};
use crate::sse::{Event, Framing, Parser, DEFAULT_MAX_EVENT_BYTES};

/// Characters of model text (or raw data) shown per event.
pub const PREVIEW_CHARS: usize = 40;

/// One event as the probe saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// Arrival, since the request was sent.
    pub at: Duration,
    /// Since the previous event (since the request for the first).
    pub gap: Duration,
    /// The SSE `event:` type (`message` when absent; NDJSON lines are `message`).
    pub event_type: String,
    /// Model text, quoted, or else the start of the raw data.
    pub preview: String,
    /// Characters of model text in it.
    pub text_chars: u64,
    /// It is its dialect's end marker.
    pub end: bool,
    /// It reports an in-stream error.
    pub error: bool,
    /// Token counts it reports (input, output).
    pub tokens: (Option<u64>, Option<u64>),
}

/// Events and statistics of one response body.
pub struct Timeline {
    started: Instant,
    framing: Option<Framing>,
    parser: Option<Parser>,
    decoder: Option<Box<dyn Encode + Send + Sync>>,
    /// Why the body could not be decoded; nothing is parsed after that.
    pub decode_error: Option<String>,
    /// Events in arrival order.
    pub events: Vec<EventRecord>,
    /// Body chunks with data, as the HTTP client returned them (one per HTTP/1.1 chunk).
    pub chunks: u64,
    /// Body bytes as received.
    pub bytes: u64,
    /// Body bytes after decoding (equal to `bytes` when not encoded).
    pub decoded_bytes: u64,
    /// First body byte, since the request.
    pub first_byte: Option<Duration>,
    /// First event with model text, since the request.
    pub first_token: Option<Duration>,
    /// Characters of model text.
    pub output_chars: u64,
    /// Last input token count reported.
    pub input_tokens: Option<u64>,
    /// Last output token count reported (Anthropic's are cumulative).
    pub output_tokens: Option<u64>,
    /// The first recognised dialect.
    pub dialect: Dialect,
    /// The end marker passed.
    pub end_marker: bool,
}

impl Timeline {
    /// A timeline for a response with these headers; `started` is when the request was sent.
    pub fn new(
        started: Instant,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> Timeline {
        let mut decode_error = None;
        let decoder = content_encoding
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
            .and_then(|e| {
                let d = Algorithm::from(e).decompressor(true);
                if d.is_none() {
                    decode_error = Some(format!("no decoder for Content-Encoding {e}"));
                }
                d
            });
        Timeline {
            started,
            framing: content_type.and_then(Framing::from_content_type),
            parser: None,
            decoder,
            decode_error,
            events: Vec::new(),
            chunks: 0,
            bytes: 0,
            decoded_bytes: 0,
            first_byte: None,
            first_token: None,
            output_chars: 0,
            input_tokens: None,
            output_tokens: None,
            dialect: Dialect::Unknown,
            end_marker: false,
        }
    }

    /// The framing used to read the body, once known (a non-stream body is sniffed).
    pub fn framing(&self) -> Option<Framing> {
        self.parser.as_ref().map(Parser::framing).or(self.framing)
    }

    /// Arrival times of all events.
    pub fn arrivals(&self) -> Vec<Duration> {
        self.events.iter().map(|e| e.at).collect()
    }

    /// One body read that arrived at `now`; `sink` sees each event it completes.
    pub fn on_chunk(&mut self, chunk: &[u8], now: Instant, sink: &mut dyn FnMut(&EventRecord)) {
        if chunk.is_empty() {
            return;
        }
        let at = now.saturating_duration_since(self.started);
        self.chunks += 1;
        self.bytes += chunk.len() as u64;
        self.first_byte.get_or_insert(at);
        let decoded = self.decode(chunk, false);
        self.parse(decoded.as_deref(), at, false, sink);
    }

    /// The body ended at `now`; `clean` when the server ended it (a last NDJSON line counts).
    pub fn finish(&mut self, clean: bool, now: Instant, sink: &mut dyn FnMut(&EventRecord)) {
        let at = now.saturating_duration_since(self.started);
        let rest = if clean { self.decode(&[], true) } else { None };
        self.parse(rest.as_deref(), at, clean, sink);
    }

    /// Decoded bytes of `chunk` (`None` once decoding has failed).
    fn decode(&mut self, chunk: &[u8], end: bool) -> Option<Vec<u8>> {
        if self.decode_error.is_some() {
            return None;
        }
        let out = match self.decoder.as_mut() {
            None => chunk.to_vec(),
            Some(d) => match d.encode(chunk, end) {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    self.decode_error = Some(e.to_string());
                    return None;
                }
            },
        };
        self.decoded_bytes += out.len() as u64;
        Some(out)
    }

    fn parse(
        &mut self,
        bytes: Option<&[u8]>,
        at: Duration,
        finish: bool,
        sink: &mut dyn FnMut(&EventRecord),
    ) {
        let bytes = bytes.unwrap_or_default();
        if self.parser.is_none() && !bytes.is_empty() {
            let framing = self.framing.unwrap_or_else(|| sniff(bytes));
            self.parser = Some(Parser::new(framing, DEFAULT_MAX_EVENT_BYTES));
        }
        let Timeline {
            parser,
            events,
            first_token,
            output_chars,
            input_tokens,
            output_tokens,
            dialect,
            end_marker,
            ..
        } = self;
        let Some(parser) = parser.as_mut() else {
            return;
        };
        let mut on_event = |ev: &Event<'_>| {
            let p = dialect::inspect(ev.event_type, ev.data);
            if *dialect == Dialect::Unknown {
                *dialect = p.dialect;
            }
            let text_chars = p.text.as_ref().map_or(0, |t| t.chars().count() as u64);
            if text_chars > 0 {
                first_token.get_or_insert(at);
            }
            *output_chars += text_chars;
            *input_tokens = p.input_tokens.or(*input_tokens);
            *output_tokens = p.output_tokens.or(*output_tokens);
            *end_marker |= p.end;
            let gap = at.saturating_sub(events.last().map_or(Duration::ZERO, |e| e.at));
            let record = EventRecord {
                at,
                gap,
                event_type: ev.event_type.to_owned(),
                preview: preview(p.text.as_deref(), ev.data),
                text_chars,
                end: p.end,
                error: p.error,
                tokens: (p.input_tokens, p.output_tokens),
            };
            sink(&record);
            events.push(record);
        };
        parser.feed(bytes, &mut on_event);
        if finish {
            parser.finish(&mut on_event);
        }
    }
}

/// The framing of a body whose content type is not a stream's: JSON reads as NDJSON (so a
/// plain JSON answer is one event), anything else as SSE.
pub fn sniff(body: &[u8]) -> Framing {
    match body.trim_ascii_start().first() {
        Some(b'{' | b'[') => Framing::Ndjson,
        _ => Framing::Sse,
    }
}

/// Model text quoted (escaped, shortened), else the start of the raw data.
pub fn preview(text: Option<&str>, data: &[u8]) -> String {
    match text {
        Some(t) => format!("{:?}", shorten(t)),
        None => {
            let raw = String::from_utf8_lossy(data);
            let one_line: String = raw
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            shorten(one_line.trim())
        }
    }
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", s.get(..cut).unwrap_or(s)),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tl: &mut Timeline, chunks: &[(u64, &[u8])], t0: Instant) -> Vec<EventRecord> {
        let mut seen = Vec::new();
        for (ms, c) in chunks {
            tl.on_chunk(c, t0 + Duration::from_millis(*ms), &mut |e| {
                seen.push(e.clone())
            });
        }
        tl.finish(true, t0 + Duration::from_secs(10), &mut |e| {
            seen.push(e.clone())
        });
        seen
    }

    #[test]
    fn events_are_timed_by_the_chunk_that_completes_them() {
        let t0 = Instant::now();
        let mut tl = Timeline::new(t0, Some("text/event-stream"), None);
        let seen = run(
            &mut tl,
            &[
                (100, b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel"),
                (150, b"lo\"}}]}\n\n"),
                (
                    230,
                    b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n",
                ),
                (230, b"data: [DONE]\n\n"),
            ],
            t0,
        );
        assert_eq!(seen, tl.events);
        let at: Vec<u128> = seen.iter().map(|e| e.at.as_millis()).collect();
        assert_eq!(at, [150, 230, 230]);
        assert_eq!(seen[0].gap, Duration::from_millis(150));
        assert_eq!(seen[1].gap, Duration::from_millis(80));
        assert_eq!(seen[0].preview, "\"Hello\"");
        assert_eq!(seen[2].preview, "[DONE]");
        assert!(seen[2].end && tl.end_marker);
        assert_eq!(tl.dialect, Dialect::OpenAiChat);
        assert_eq!((tl.input_tokens, tl.output_tokens), (Some(3), Some(2)));
        assert_eq!(tl.output_chars, 5);
        assert_eq!(tl.first_token, Some(Duration::from_millis(150)));
        assert_eq!(tl.first_byte, Some(Duration::from_millis(100)));
        assert_eq!((tl.chunks, tl.framing()), (4, Some(Framing::Sse)));
    }

    #[test]
    fn a_json_answer_is_one_event() {
        let t0 = Instant::now();
        let mut tl = Timeline::new(t0, Some("application/json"), None);
        let body = br#"{"choices":[{"message":{"content":"hi"}}]}"#;
        let seen = run(&mut tl, &[(40, body)], t0);
        assert_eq!(seen.len(), 1);
        assert_eq!(tl.framing(), Some(Framing::Ndjson));
        assert!(seen[0].preview.starts_with("{\"choices\""), "{seen:?}");
    }

    #[test]
    fn gzip_bodies_are_decoded_as_they_arrive() {
        let mut gz = Algorithm::Gzip.compressor(6).unwrap();
        let wire = gz
            .encode(b"data: {\"type\":\"chunk\",\"content\":\"ok\"}\n\n", true)
            .unwrap();
        let (a, b) = wire.split_at(wire.len() / 2);
        let t0 = Instant::now();
        let mut tl = Timeline::new(t0, Some("text/event-stream"), Some("gzip"));
        let seen = run(&mut tl, &[(10, a), (20, b)], t0);
        assert_eq!(seen.len(), 1, "{:?}", tl.decode_error);
        assert_eq!(seen[0].preview, "\"ok\"");
        assert_eq!(tl.bytes, wire.len() as u64);
    }

    #[test]
    fn an_undecodable_body_stops_parsing_and_says_why() {
        let t0 = Instant::now();
        let mut tl = Timeline::new(t0, Some("text/event-stream"), Some("gzip"));
        let seen = run(&mut tl, &[(10, b"data: not gzip at all\n\n")], t0);
        assert!(seen.is_empty());
        assert!(tl.decode_error.is_some());
        let unknown = Timeline::new(t0, Some("text/event-stream"), Some("zstd-x"));
        assert!(unknown.decode_error.unwrap().contains("zstd-x"));
    }

    #[test]
    fn previews_are_short_single_lines() {
        let long = "x".repeat(100);
        let p = preview(Some(&long), b"");
        assert_eq!(p.chars().count(), PREVIEW_CHARS + 3);
        assert_eq!(preview(Some("a\nb"), b""), "\"a\\nb\"");
        assert_eq!(preview(None, b"{\"a\":\n1}"), "{\"a\": 1}");
        assert_eq!(sniff(b"  [1]"), Framing::Ndjson);
        assert_eq!(sniff(b"data: x"), Framing::Sse);
    }
}
