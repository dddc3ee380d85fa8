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

#[derive(Clone, Debug, PartialEq, Eq)]
struct Ev {
    ty: String,
    data: Vec<u8>,
    id: Option<Vec<u8>>,
}

const LIMITS: [usize; 8] = [1 << 20, 1, 3, 8, 17, 64, 300, 4096];
const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, PartialEq, Eq)]
struct Run {
    events: Vec<Ev>,
    oversized: u64,
    retry: Option<u64>,
    boundary_before_finish: bool,
}

fn collect(out: &mut Vec<Ev>) -> impl FnMut(&Event<'_>) + '_ {
    |e: &Event<'_>| {
        out.push(Ev {
            ty: e.event_type.to_string(),
            data: e.data.to_vec(),
            id: e.id.map(<[u8]>::to_vec),
        })
    }
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

/// The WHATWG event-stream interpretation over a whole body (no size limit).
fn reference_sse(body: &[u8]) -> (Vec<Ev>, Option<u64>) {
    let body = body.strip_prefix(BOM).unwrap_or(body);
    let mut lines = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < body.len() {
        if body[i] == b'\r' || body[i] == b'\n' {
            lines.push(&body[start..i]);
            if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    let (mut out, mut data, mut ty, mut id, mut retry) =
        (Vec::new(), Vec::<u8>::new(), Vec::new(), Vec::new(), None);
    let mut has_data = false;
    for line in lines {
        if line.is_empty() {
            if has_data {
                let ty = if ty.is_empty() {
                    "message".to_string()
                } else {
                    String::from_utf8_lossy(&ty).into_owned()
                };
                out.push(Ev {
                    ty,
                    data: std::mem::take(&mut data),
                    id: (!id.is_empty()).then(|| id.clone()),
                });
            }
            data.clear();
            has_data = false;
            ty.clear();
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(c) => (
                &line[..c],
                line[c + 1..].strip_prefix(b" ").unwrap_or(&line[c + 1..]),
            ),
            None => (line, &b""[..]),
        };
        match name {
            b"event" => ty = value.to_vec(),
            b"data" => {
                if has_data {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
                has_data = true;
            }
            b"id" if !value.contains(&0) => id = value.to_vec(),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let v = value.iter().fold(0u64, |acc, d| {
                    acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                retry = Some(v);
            }
            _ => {}
        }
    }
    (out, retry)
}

/// One event per non-empty LF-terminated line (a CR before the LF dropped); a last
/// unterminated line counts at the end.
fn reference_ndjson(body: &[u8]) -> Vec<Ev> {
    let body = body.strip_prefix(BOM).unwrap_or(body);
    body.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(|l| Ev {
            ty: "message".into(),
            data: l.to_vec(),
            id: None,
        })
        .collect()
}

/// Chunk sizes from a xorshift generator: mostly tiny, sometimes large.
fn chunks<'a>(body: &'a [u8], seed: u64) -> Vec<&'a [u8]> {
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let r = next();
        let n = match r % 4 {
            0 => 1,
            1 => 1 + (r >> 8) as usize % 4,
            2 => 1 + (r >> 8) as usize % 32,
            _ => 1 + (r >> 8) as usize % 512,
        };
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let Some((seed, body)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let framing = if mode & 1 == 0 {
        Framing::Sse
    } else {
        Framing::Ndjson
    };
    let max = LIMITS[usize::from(mode >> 1) % LIMITS.len()];
    let whole = run(framing, max, &[body]);
    let split = run(framing, max, &chunks(body, u64::from_le_bytes(*seed)));
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
