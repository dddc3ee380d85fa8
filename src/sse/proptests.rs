//! Chunking must never change what is parsed; whole bodies are checked against a reference.

use super::super::*;
use super::reference::{reference_ndjson, reference_sse, Ev};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    let atoms = vec![
        "a",
        "b",
        " ",
        ":",
        "é",
        "€",
        "😀",
        "{\"x\":1}",
        "\u{FEFF}",
        "data",
    ];
    prop::collection::vec(prop::sample::select(atoms), 0..5).prop_map(|v| v.concat())
}

fn sse_line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        3 => text().prop_map(|t| format!("data: {t}")),
        1 => text().prop_map(|t| format!("data:{t}")),
        1 => Just("data".to_string()),
        1 => text().prop_map(|t| format!("event: {t}")),
        1 => text().prop_map(|t| format!("id: {t}")),
        1 => Just("id: a\0b".to_string()),
        1 => prop::sample::select(vec!["retry: 250", "retry: 1x", "retry"]).prop_map(String::from),
        1 => text().prop_map(|t| format!(":{t}")),
        1 => text().prop_map(|t| format!("x-field: {t}")),
    ]
}

fn sse_body() -> impl Strategy<Value = Vec<u8>> {
    let eol = prop::sample::select(vec!["\n", "\r\n", "\r"]);
    // A whole BOM, or the start of one that turns out to be content.
    let bom = prop::sample::select(vec![&b""[..], &BOM[..], &BOM[..1], &BOM[..2]]);
    (
        bom,
        prop::collection::vec((sse_line(), eol), 0..24),
        sse_line(),
    )
        .prop_map(|(bom, lines, tail)| {
            let mut body = bom.to_vec();
            for (line, eol) in lines {
                body.extend_from_slice(line.as_bytes());
                body.extend_from_slice(eol.as_bytes());
            }
            body.extend_from_slice(tail.as_bytes());
            body
        })
}

fn ndjson_body() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(String::new()),
        text(),
        text().prop_map(|t| format!("{t}\r{t}"))
    ];
    let eol = prop::sample::select(vec!["\n", "\r\n"]);
    (
        prop::collection::vec((line.clone(), eol), 0..16),
        line,
        any::<bool>(),
    )
        .prop_map(|(lines, tail, cr)| {
            let mut body: String = lines.into_iter().map(|(l, e)| l + e).collect();
            body.push_str(&tail);
            if cr {
                body.push('\r');
            }
            body.into_bytes()
        })
}

/// Cut `body` at the given (sorted, deduplicated) points.
fn split<'a>(body: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut prev = 0;
    for a in at.into_iter().chain([body.len()]) {
        out.push(&body[prev..a]);
        prev = a;
    }
    out
}

fn run(framing: Framing, max: usize, chunks: &[&[u8]]) -> (Vec<Ev>, u64, Option<u64>, bool) {
    let mut p = Parser::new(framing, max);
    let mut out = Vec::new();
    let mut sink = |e: &Event<'_>| out.push(Ev::new(e.event_type, e.data, e.id));
    for c in chunks {
        p.feed(c, &mut sink);
    }
    let (retry, boundary) = (p.retry(), p.at_event_boundary());
    p.finish(&mut sink);
    (out, p.oversized_events(), retry, boundary)
}

proptest! {
    // No regression files: they would land outside this module's files in the shared tree.
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn sse_chunking_never_changes_events(body in sse_body(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12)) {
        let whole = run(Framing::Sse, DEFAULT_MAX_EVENT_BYTES, &[&body]);
        let (want, want_retry) = reference_sse(&body);
        prop_assert_eq!(&whole.0, &want);
        prop_assert_eq!(whole.2, want_retry);
        prop_assert_eq!(&run(Framing::Sse, DEFAULT_MAX_EVENT_BYTES, &split(&body, &cuts)), &whole);
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        prop_assert_eq!(&run(Framing::Sse, DEFAULT_MAX_EVENT_BYTES, &bytes), &whole);
        // With a small limit some events are skipped, the same way whatever the chunking.
        let small = run(Framing::Sse, 12, &[&body]);
        prop_assert_eq!(&run(Framing::Sse, 12, &split(&body, &cuts)), &small);
        prop_assert_eq!(&run(Framing::Sse, 12, &bytes), &small);
    }

    #[test]
    fn ndjson_chunking_never_changes_events(body in ndjson_body(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12)) {
        let whole = run(Framing::Ndjson, DEFAULT_MAX_EVENT_BYTES, &[&body]);
        prop_assert_eq!(&whole.0, &reference_ndjson(&body));
        prop_assert_eq!(&run(Framing::Ndjson, DEFAULT_MAX_EVENT_BYTES, &split(&body, &cuts)), &whole);
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        prop_assert_eq!(&run(Framing::Ndjson, DEFAULT_MAX_EVENT_BYTES, &bytes), &whole);
        let small = run(Framing::Ndjson, 6, &[&body]);
        prop_assert_eq!(&run(Framing::Ndjson, 6, &split(&body, &cuts)), &small);
        prop_assert_eq!(&run(Framing::Ndjson, 6, &bytes), &small);
    }
}
