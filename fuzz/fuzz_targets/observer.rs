//! A whole stream through `ssegate::observe::StreamObserver` (the parser and the dialects
//! together, as the proxy runs them), fed whole and in arbitrary chunks.
//!
//! Input: byte 0 picks the framing and how the body ends, bytes 1..=8 seed the chunk sizes,
//! the rest is the body. Checked: no panic, and every count (chunks aside), the dialect, the
//! token usage, the end marker and the outcome are the same however the body is chunked.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ssegate::observe::{Outcome, StreamEnd, StreamObserver};
use ssegate::sse::Framing;

#[path = "chunked_input.rs"]
mod chunked_input;

use chunked_input::{chunks, Input};

#[derive(Debug, PartialEq, Eq)]
struct Summary {
    events: u64,
    bytes: u64,
    output_chars: u64,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    errors: u64,
    oversized: u64,
    end_marker: bool,
    dialect: &'static str,
    first_token: bool,
    outcome: Outcome,
}

fn observe(framing: Framing, max: usize, end: StreamEnd, chunks: &[&[u8]]) -> Summary {
    let t0 = Instant::now();
    let mut o = StreamObserver::with_max_event_bytes(framing, t0, max);
    let mut live = 0;
    for (i, c) in chunks.iter().enumerate() {
        live += o.on_chunk(c, t0 + Duration::from_millis(i as u64)).events;
    }
    let outcome = o.finish(end, t0 + Duration::from_secs(1));
    live += o.finish_delta().events;
    let s = o.stats();
    assert_eq!(live, s.events, "live deltas do not add up to the total");
    let summary = Summary {
        events: s.events,
        bytes: s.bytes,
        output_chars: s.output_chars,
        input_tokens: s.input_tokens,
        output_tokens: s.output_tokens,
        errors: s.errors,
        oversized: s.oversized,
        end_marker: s.end_marker,
        dialect: s.dialect.as_str(),
        first_token: s.first_token.is_some(),
        outcome,
    };
    assert_eq!(
        o.finish(StreamEnd::ClientClosed, t0),
        outcome,
        "outcome changed"
    );
    summary
}

fuzz_target!(|input: &[u8]| {
    let Some(Input {
        mode,
        framing,
        seed,
        body,
    }) = chunked_input::read(input)
    else {
        return;
    };
    let end = match (mode >> 1) % 4 {
        0 => StreamEnd::Finished,
        1 => StreamEnd::ClientClosed,
        2 => StreamEnd::UpstreamError,
        _ => StreamEnd::IdleTimeout,
    };
    let max = if mode & 0x80 == 0 { 1 << 20 } else { 48 };
    let whole = observe(framing, max, end, &[body]);
    let split = observe(framing, max, end, &chunks(body, seed));
    assert_eq!(whole, split, "chunking changed what was observed");
    assert_eq!(whole.bytes, body.len() as u64);
});
