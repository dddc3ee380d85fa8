//! Dialect extraction from one event payload (`ssegate::dialect::inspect`), and from a
//! stream of them (`ssegate::dialect::Inspector`, which reuses the last payload's shape).
//!
//! Input: byte 0 picks the SSE event type (`message`, `done`, `error`, or the next bytes up
//! to a NUL), the rest is the event's data. Checked on every input:
//! - no panic, no hang, no stack overflow (payloads nest as deep as the fuzzer likes);
//! - ASCII whitespace around the payload changes nothing;
//! - a payload that is not valid JSON (and not `[DONE]`) is of no dialect and carries no
//!   text or tokens;
//! - an unrecognised payload carries no text or tokens; text, when present, is not empty;
//! - the data split at each 0x1e byte and read in order by one `Inspector` gives, for every
//!   part, what `inspect` gives for that part alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssegate::dialect::{inspect, Dialect, Inspector};

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else {
        return;
    };
    let (event_type, data) = match selector % 4 {
        0 => ("message".to_string(), rest),
        1 => ("done".to_string(), rest),
        2 => ("error".to_string(), rest),
        _ => {
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let ty = String::from_utf8_lossy(&rest[..end]).into_owned();
            (ty, rest.get(end + 1..).unwrap_or_default())
        }
    };
    let p = inspect(&event_type, data);

    let mut inspector = Inspector::default();
    for part in data.split(|&b| b == 0x1e) {
        assert_eq!(
            inspector.inspect(&event_type, part),
            inspect(&event_type, part),
            "the Inspector read {:?} otherwise",
            String::from_utf8_lossy(part)
        );
    }

    let mut padded = b" \r\n\t".to_vec();
    padded.extend_from_slice(data);
    padded.extend_from_slice(b"\n\x0c ");
    assert_eq!(
        p,
        inspect(&event_type, &padded),
        "surrounding whitespace mattered"
    );

    if let Some(t) = &p.text {
        assert!(!t.is_empty(), "empty text reported as text");
    }
    if p.dialect == Dialect::Unknown {
        assert!(p.text.is_none(), "text without a dialect: {p:?}");
        assert!(
            p.input_tokens.is_none() && p.output_tokens.is_none(),
            "{p:?}"
        );
        assert_eq!(p.end, event_type == "done", "end marker without a dialect");
    }
    let body = data.trim_ascii();
    if body != b"[DONE]" && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
        assert_eq!(
            p.dialect,
            Dialect::Unknown,
            "invalid JSON recognised: {p:?}"
        );
        assert_eq!(p.error, event_type == "error", "{p:?}");
    }
});
