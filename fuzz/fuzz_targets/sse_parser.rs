//! The SSE / NDJSON parser fed arbitrary bodies in arbitrary chunkings.
//!
//! Input: byte 0 picks the framing and the event size limit, bytes 1..=8 seed the chunk
//! sizes, the rest is the body. Checked on every input:
//! - no panic, no hang;
//! - chunking never changes what is parsed: the body fed in random chunks gives the same
//!   events, `retry`, oversized count and event-boundary state as the body fed whole;
//! - with no oversized event, the events are those of a plain transcription of the WHATWG
//!   algorithm (SSE) or of "one event per non-empty line" (NDJSON) over the whole body;
//! - the bytes the parser keeps stay within a few times the event size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssegate::sse::{Event, Framing, Parser};

#[path = "chunked_input.rs"]
mod chunked_input;
// The same reference the property tests use.
#[path = "../../src/sse/reference.rs"]
mod reference;

use chunked_input::{chunks, Input};
use reference::{reference_ndjson, reference_sse, Ev};

const LIMITS: [usize; 8] = [1 << 20, 1, 3, 8, 17, 64, 300, 4096];

#[derive(Debug, PartialEq, Eq)]
struct Run {
    events: Vec<Ev>,
    oversized: u64,
    retry: Option<u64>,
    boundary_before_finish: bool,
}

fn collect(out: &mut Vec<Ev>) -> impl FnMut(&Event<'_>) + '_ {
    |e: &Event<'_>| out.push(Ev::new(e.event_type, e.data, e.id))
}

fn run(framing: Framing, max: usize, chunks: &[&[u8]]) -> Run {
    let mut p = Parser::new(framing, max);
    let mut events = Vec::new();
    let bound = 4 * max.max(64) + 4 * 64;
    for c in chunks {
        p.feed(c, &mut collect(&mut events));
        assert!(
            p.buffered_capacity() <= bound,
            "parser holds {} bytes with a {max}-byte event limit",
            p.buffered_capacity()
        );
    }
    let boundary_before_finish = p.at_event_boundary();
    let retry = p.retry();
    p.finish(&mut collect(&mut events));
    assert!(p.at_event_boundary(), "not at a boundary after finish");
    Run {
        events,
        oversized: p.oversized_events(),
        retry,
        boundary_before_finish,
    }
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
    let max = LIMITS[usize::from(mode >> 1) % LIMITS.len()];
    let whole = run(framing, max, &[body]);
    let split = run(framing, max, &chunks(body, seed));
    assert_eq!(whole, split, "chunking changed the parse");
    if whole.oversized == 0 {
        match framing {
            Framing::Sse => {
                let (events, retry) = reference_sse(body);
                assert_eq!(whole.events, events, "differs from the WHATWG reference");
                assert_eq!(whole.retry, retry, "retry differs from the reference");
            }
            Framing::Ndjson => {
                assert_eq!(whole.events, reference_ndjson(body), "NDJSON lines differ");
            }
        }
    }
});
