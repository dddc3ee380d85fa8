//! Differential tests: `inspect` (the scanner, falling back to serde_json) must give what
//! `inspect_slow` (serde_json alone) gives for every payload, and whatever the scanner accepts
//! serde_json must read to the same `Raw`.

use std::cell::Cell;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};

use super::*;
use payloads::{anthropic, ollama, openai, responses_and_chunks};

#[path = "payloads.rs"]
mod payloads;

type S = BoxedStrategy<String>;

fn lit(s: &str) -> S {
    Just(s.to_owned()).boxed()
}

/// Whitespace between tokens: mostly none, as servers send it.
fn ws() -> S {
    prop_oneof![12 => lit(""), 2 => lit(" "), 1 => lit("\n"), 1 => lit("\t "), 1 => lit("\r\n  ")]
        .boxed()
}

/// A JSON string: plain text, non-ASCII, escapes, keys and JSON punctuation inside the value,
/// and now and then something invalid (lone surrogates, bad escapes, raw control characters).
fn string() -> S {
    let piece = prop_oneof![
        50 => prop::sample::select(vec![
            "Hello", " quick", " brown", ",", ".", "content", "text", "delta", "type", "chunk",
            "text_delta", "chat.completion.chunk", "response.", "caf\u{e9}", "\u{65e5}\u{672c}",
            "\u{1f600}", "na\u{ef}ve", "{", "}", "[", "]", ":", "\\\"content\\\":\\\"x\\\"",
        ]),
        20 => prop::sample::select(vec![
            "\\n", "\\\"", "\\\\", "\\/", "\\b\\f\\r\\t", "\\u00e9", "\\u00E9", "\\ud83d\\ude00",
            "\\u0000", "\\u001f", "\\uffff", "\\\\\\\"", "\\\\n",
        ]),
        // One string in ten has one of these.
        1 => prop::sample::select(vec![
            "\\ud800", "\\udc00", "\\ud83dx", "\\ud83d\\u0041", "\\x", "\\u12", "\\uZZZZ", "\n",
            "\t", "\u{1}", "\\", "\u{7f}",
        ]),
    ];
    prop::collection::vec(piece, 0..4)
        .prop_map(|p| format!("\"{}\"", p.concat()))
        .boxed()
}

/// A JSON number: mostly counts, then other numbers, and some near misses.
fn number() -> S {
    let pick = |v: Vec<&'static str>| prop::sample::select(v).prop_map(str::to_owned);
    prop_oneof![
        12 => pick(vec!["0", "7", "42", "1741569952", "9999999999999999999"]),
        2 => pick(vec![
            "18446744073709551615", "18446744073709551616", "99999999999999999999", "-1", "-0",
            "1.5", "9.0", "1e3", "1E+2", "2e-1", "-12.5e10", "1e999",
        ]),
        1 => pick(vec!["01", "1.", "-", ".5", "1e", "+1", "0x1", "1.e2"]),
    ]
    .boxed()
}

/// Any JSON value, nested a few levels, with keys the dialects use.
fn value() -> S {
    let leaf = prop_oneof![
        3 => string(),
        2 => number(),
        1 => prop::sample::select(vec!["true", "false", "null", "nul", "tru"]).prop_map(str::to_owned),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            list(inner.clone().boxed(), 0..4),
            prop::collection::vec((key("content"), inner, ws(), ws()), 0..4).prop_map(|fields| {
                let fields: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v, a, b)| format!("{a}{k}{b}:{v}"))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
    .boxed()
}

fn list(element: S, len: std::ops::Range<usize>) -> S {
    prop::collection::vec((ws(), element, ws()), len)
        .prop_map(|v| {
            let v: Vec<String> = v
                .into_iter()
                .map(|(a, e, b)| format!("{a}{e}{b}"))
                .collect();
            format!("[{}]", v.join(","))
        })
        .boxed()
}

/// The key `name`, sometimes spelt with an escape or replaced by another known key.
fn key(name: &'static str) -> S {
    let mut chars = name.chars();
    let first = chars.next().map_or(0x78, u32::from);
    let escaped = format!("\"\\u{first:04x}{}\"", chars.as_str());
    prop_oneof![
        24 => lit(&format!("\"{name}\"")),
        1 => lit(&escaped),
        1 => prop::sample::select(vec![
            "type", "object", "choices", "usage", "delta", "message", "response", "content",
            "done", "prompt_eval_count", "eval_count", "error", "text", "prompt_tokens",
            "output_tokens", "usage", "id", "",
        ])
        .prop_map(|k| format!("\"{k}\"")),
    ]
    .boxed()
}

/// An object of the given fields (each present with probability `p`) in any order, with one
/// field sometimes written twice.
fn object(fields: Vec<(&'static str, S, f64)>) -> S {
    let fields: Vec<_> = fields
        .into_iter()
        .map(|(name, v, p)| prop::option::weighted(p, (key(name), v, ws(), ws(), ws())))
        .collect();
    (fields, prop::option::weighted(0.1, any::<Index>()))
        .prop_map(|(fields, twice)| {
            let mut fields: Vec<String> = fields
                .into_iter()
                .flatten()
                .map(|(k, v, a, b, c)| format!("{a}{k}{b}:{c}{v}"))
                .collect();
            if let Some(i) = twice.filter(|_| !fields.is_empty()) {
                fields.push(i.get(&fields).clone());
            }
            fields
        })
        .prop_shuffle()
        .prop_map(|fields| format!("{{{}}}", fields.join(",")))
        .boxed()
}

/// The payload's bytes, now and then truncated or with one byte changed, dropped or added.
fn mutated(payload: S) -> BoxedStrategy<Vec<u8>> {
    let byte = prop::sample::select(vec![
        b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'0', b'-', b'e', b'n', 0, 0x1f,
        0x80, 0xc3, 0xff,
    ]);
    (payload, 0..12u8, any::<Index>(), byte)
        .prop_map(|(p, how, at, byte)| {
            let mut p = p.into_bytes();
            let i = at.index(p.len() + 1);
            match how {
                0 => p.truncate(i),
                1 if i < p.len() => p[i] = byte,
                2 if i < p.len() => drop(p.remove(i)),
                3 => p.insert(i, byte),
                _ => {}
            }
            p
        })
        .boxed()
}

/// Checks one payload; true when the scanner read it (no fallback).
fn same(event_type: &str, data: &[u8]) -> Result<bool, TestCaseError> {
    let shown = String::from_utf8_lossy(data);
    prop_assert_eq!(
        inspect(event_type, data),
        inspect_slow(event_type, data),
        "{}",
        shown
    );
    let body = data.trim_ascii();
    let mut raw = Raw::default();
    if body.first() != Some(&b'{') || scan::raw(body, &mut raw).is_none() {
        return Ok(false);
    }
    let serde = serde_json::from_slice::<Raw<'_>>(body);
    prop_assert!(
        serde.is_ok(),
        "scanner accepted what serde_json rejects: {}",
        shown
    );
    prop_assert_eq!(Some(raw), serde.ok(), "{}", shown);
    Ok(true)
}

/// Runs `cases` payloads of `payload`; at least `min_fast` of them must take the fast path, so
/// that the comparison is not vacuous.
fn differential(payload: S, event_types: Vec<&'static str>, cases: u32, min_fast: f64) {
    let cases = std::env::var("DIALECT_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let (total, fast) = (Cell::new(0u32), Cell::new(0u32));
    let strategy = (prop::sample::select(event_types), mutated(payload));
    TestRunner::new(config)
        .run(&strategy, |(event_type, data)| {
            total.set(total.get() + 1);
            fast.set(fast.get() + u32::from(same(event_type, &data)?));
            Ok(())
        })
        .unwrap();
    let (total, fast) = (total.get(), fast.get());
    println!("{fast} of {total} payloads took the fast path");
    assert!(
        f64::from(fast) >= min_fast * f64::from(total),
        "{fast} of {total}"
    );
}

#[test]
fn openai_payloads_read_as_serde_json_reads_them() {
    differential(openai(), vec!["message"], 4000, 0.3);
}

#[test]
fn anthropic_payloads_read_as_serde_json_reads_them() {
    let types = vec!["message", "content_block_delta", "error", "done"];
    differential(anthropic(), types, 4000, 0.3);
}

#[test]
fn ollama_lines_read_as_serde_json_reads_them() {
    differential(ollama(), vec!["message"], 4000, 0.3);
}

#[test]
fn responses_and_chunk_payloads_read_as_serde_json_reads_them() {
    let types = vec!["message", "response.output_text.delta", "done"];
    differential(responses_and_chunks(), types, 4000, 0.3);
}

#[test]
fn any_json_reads_as_serde_json_reads_it() {
    let top = prop_oneof![4 => object(vec![("content", value(), 0.5), ("type", value(), 0.5)]), 1 => value()];
    differential(top.boxed(), vec!["message"], 4000, 0.1);
}

/// A JSON string's contents (what lies between its quotes), now and then broken by a byte.
fn contents() -> BoxedStrategy<Vec<u8>> {
    let byte = prop::sample::select(vec![b'"', b'\\', b'u', 0, 0x1f, 0x80, 0xc3, 0xff]);
    (string(), 0..6u8, any::<Index>(), byte)
        .prop_map(|(s, how, at, byte)| {
            let quoted = s.into_bytes();
            let mut c = quoted.get(1..quoted.len() - 1).unwrap_or_default().to_vec();
            let i = at.index(c.len() + 1);
            match how {
                0 => c.insert(i, byte),
                1 => c.truncate(i),
                _ => {}
            }
            c
        })
        .boxed()
}

/// Feeds an `Inspector` a stream of events of one shape (the first payload with its text's
/// contents replaced), with now and then another payload or event type in between; each must
/// read as `inspect_slow` reads it. Returns (events built on the shape, events read from it).
fn shaped_stream(payload: S, cases: u32) -> (u64, u64) {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let (shaped, reused) = (Cell::new(0u64), Cell::new(0u64));
    let numbers = prop::sample::select(vec!["0", "7", "42", "1741569952", "01", "-3", "1.5", ""]);
    let edits = (any::<Index>(), numbers, any::<Index>(), 0..8u8);
    let others = prop::collection::vec((payload.clone(), 0..8u8, 0..12u8, edits), 1..12);
    // The first of several candidates whose text is one plain string makes the shape.
    let firsts = prop::collection::vec(payload, 1..8);
    let strategy = (firsts, prop::collection::vec(contents(), 1..12), others);
    TestRunner::new(config)
        .run(&strategy, |(firsts, texts, others)| {
            let span_of = |data: &[u8]| match inspect_slow("message", data).text {
                Some(Cow::Borrowed(t)) => {
                    let start = t.as_ptr() as usize - data.trim_ascii().as_ptr() as usize;
                    Some((start, start + t.len()))
                }
                _ => None,
            };
            let first = firsts
                .iter()
                .find(|p| span_of(p.as_bytes()).is_some())
                .unwrap_or(&firsts[0])
                .clone()
                .into_bytes();
            let body = first.trim_ascii();
            let span = span_of(&first);
            let mut inspector = Inspector::default();
            let mut events = vec![("message", first.clone())];
            for (text, (other, pick, kind, edit)) in texts.iter().zip(others.iter().cycle()) {
                let event_type = match kind {
                    0 => "content_block_delta",
                    1 => "error",
                    2 => "done",
                    _ => "message",
                };
                match (span, pick) {
                    (Some((start, end)), 0..=5) => {
                        let mut ev = [&body[..start], text.as_slice(), &body[end..]].concat();
                        // Now and then another value changes too: a read one or an unread one.
                        let around = start..start + text.len();
                        vary(&mut ev, around, edit);
                        events.push((event_type, ev));
                        shaped.set(shaped.get() + 1);
                    }
                    _ => events.push((event_type, other.clone().into_bytes())),
                }
            }
            for (event_type, data) in &events {
                prop_assert_eq!(
                    inspector.inspect(event_type, data),
                    inspect_slow(event_type, data),
                    "{}",
                    String::from_utf8_lossy(data)
                );
            }
            reused.set(reused.get() + inspector.reused());
            Ok(())
        })
        .unwrap();
    let (shaped, reused) = (shaped.get(), reused.get());
    println!("{reused} of {shaped} events built on a shape were read from it");
    (shaped, reused)
}

/// Replaces one run of digits outside `keep` with `number`, or changes one letter outside it.
fn vary(ev: &mut Vec<u8>, keep: std::ops::Range<usize>, edit: &(Index, &str, Index, u8)) {
    let (run, number, letter, how) = edit;
    let outside = |i: &usize| !keep.contains(i);
    match how {
        0 => {
            let starts: Vec<usize> = (0..ev.len())
                .filter(outside)
                .filter(|&i| ev[i].is_ascii_digit() && (i == 0 || !ev[i - 1].is_ascii_digit()))
                .collect();
            if starts.is_empty() {
                return;
            }
            let at = starts[run.index(starts.len())];
            let len = ev[at..].iter().take_while(|b| b.is_ascii_digit()).count();
            ev.splice(at..at + len, number.bytes());
        }
        1 => {
            let letters: Vec<usize> = (0..ev.len())
                .filter(outside)
                .filter(|&i| ev[i].is_ascii_lowercase())
                .collect();
            if !letters.is_empty() {
                let at = letters[letter.index(letters.len())];
                ev[at] = if ev[at] == b'q' { b'z' } else { b'q' };
            }
        }
        _ => {}
    }
}

#[test]
fn a_repeated_shape_reads_as_serde_json_reads_it() {
    for payload in [openai(), anthropic(), responses_and_chunks(), ollama()] {
        let (shaped, reused) = shaped_stream(payload, 600);
        assert!(
            reused > 0 && reused * 20 >= shaped,
            "{reused} of {shaped} read from the shape"
        );
    }
}
