use super::*;
use reference::Ev;

fn ev(ty: &str, data: &str, id: Option<&str>) -> Ev {
    Ev::new(ty, data.as_bytes(), id.map(str::as_bytes))
}

fn msg(data: &str) -> Ev {
    ev("message", data, None)
}

fn feed_all(p: &mut Parser, chunks: &[&[u8]]) -> Vec<Ev> {
    let mut out = Vec::new();
    let mut sink = |e: &Event<'_>| out.push(Ev::new(e.event_type, e.data, e.id));
    for c in chunks {
        p.feed(c, &mut sink);
    }
    p.finish(&mut sink);
    out
}

fn parse_with(framing: Framing, max: usize, chunks: &[&[u8]]) -> Vec<Ev> {
    feed_all(&mut Parser::new(framing, max), chunks)
}

fn sse(chunks: &[&[u8]]) -> Vec<Ev> {
    parse_with(Framing::Sse, DEFAULT_MAX_EVENT_BYTES, chunks)
}

fn ndjson(chunks: &[&[u8]]) -> Vec<Ev> {
    parse_with(Framing::Ndjson, DEFAULT_MAX_EVENT_BYTES, chunks)
}

#[test]
fn each_line_ending_kind() {
    for body in [
        "data: a\n\n",
        "data: a\r\n\r\n",
        "data: a\r\r",
        "data: a\r\n\n",
        "data: a\n\r",
    ] {
        assert_eq!(sse(&[body.as_bytes()]), vec![msg("a")], "{body:?}");
    }
    let mixed = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r";
    assert_eq!(sse(&[mixed]), vec![msg("a\nb\nc"), msg("d")]);
}

#[test]
fn cr_lf_split_across_chunks_is_one_line_end() {
    // Were CR|LF two line ends, the LF would be a blank line dispatching "a" alone.
    let got = sse(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
    assert_eq!(got, vec![msg("a\nb")]);
    // A CR at a chunk end followed by something else is still a line end.
    assert_eq!(sse(&[b"data: a\r", b"\r"]), vec![msg("a")]);
}

#[test]
fn bom_is_dropped_only_at_stream_start() {
    let whole = "\u{FEFF}data: x\n\n".as_bytes();
    assert_eq!(sse(&[whole]), vec![msg("x")]);
    assert_eq!(
        sse(&[&whole[..1], &whole[1..2], &whole[2..]]),
        vec![msg("x")]
    );
    assert_eq!(
        sse(&[&whole[..2], &whole[2..5], &whole[5..]]),
        vec![msg("x")]
    );
    // A second BOM is part of the field name, so the field is unknown.
    assert_eq!(
        sse(&["data: a\n\n\u{FEFF}data: b\n\n".as_bytes()]),
        vec![msg("a")]
    );
}

#[test]
fn partial_bom_that_turns_out_not_to_be_one_is_kept() {
    assert_eq!(
        ndjson(&[b"\xEF\xBB", b"x\n"]),
        vec![Ev {
            ty: "message".into(),
            data: b"\xEF\xBBx".to_vec(),
            id: None
        }]
    );
    assert_eq!(
        ndjson(&[b"\xEF", b"\xBB"]),
        vec![Ev {
            ty: "message".into(),
            data: b"\xEF\xBB".to_vec(),
            id: None
        }]
    );
    assert_eq!(
        ndjson(&[b"\xEF", b"a\n"]),
        vec![Ev {
            ty: "message".into(),
            data: b"\xEFa".to_vec(),
            id: None
        }]
    );
}

#[test]
fn comments_are_not_events() {
    assert_eq!(sse(&[b": hello\n\n: again\r\n\r\n"]), vec![]);
    assert_eq!(sse(&[b"data: a\n: mid\ndata: b\n\n"]), vec![msg("a\nb")]);
    assert_eq!(
        sse(&[b": a long", b" comment: data: x\n", b"data: y\n\n"]),
        vec![msg("y")]
    );
}

#[test]
fn field_without_colon_has_empty_value() {
    assert_eq!(sse(&[b"data\n\n"]), vec![msg("")]);
    assert_eq!(sse(&[b"data\ndata\n\n"]), vec![msg("\n")]);
    assert_eq!(sse(&[b"da", b"ta\n\n"]), vec![msg("")]);
    assert_eq!(sse(&[b"event: x\nevent\ndata: y\n\n"]), vec![msg("y")]);
    assert_eq!(sse(&[b"foo\ndatax\ndata: y\n\n"]), vec![msg("y")]);
}

#[test]
fn exactly_one_space_after_colon_is_stripped() {
    assert_eq!(sse(&[b"data:  two\n\n"]), vec![msg(" two")]);
    assert_eq!(sse(&[b"data:x\n\n"]), vec![msg("x")]);
    assert_eq!(sse(&[b"data: \n\n"]), vec![msg("")]);
    assert_eq!(sse(&[b"data:", b" ", b" y\n\n"]), vec![msg(" y")]);
    assert_eq!(sse(&[b"event:  t\ndata\n\n"]), vec![ev(" t", "", None)]);
}

#[test]
fn data_lines_are_joined_and_empty_data_dispatches() {
    assert_eq!(sse(&[b"data: a\ndata:\ndata: c\n\n"]), vec![msg("a\n\nc")]);
    assert_eq!(sse(&[b"data:\n\n"]), vec![msg("")]);
    assert_eq!(sse(&[b"data: a\n", b"data: b\n", b"\n"]), vec![msg("a\nb")]);
}

#[test]
fn blank_line_without_data_dispatches_nothing_and_resets_type() {
    assert_eq!(sse(&[b"\n\n\r\n"]), vec![]);
    assert_eq!(sse(&[b"event: x\n\ndata: y\n\n"]), vec![msg("y")]);
    assert_eq!(
        sse(&[b"id: 7\n\ndata: y\n\n"]),
        vec![ev("message", "y", Some("7"))]
    );
}

#[test]
fn event_type_field() {
    let body = b"event: content_block_delta\ndata: {}\n\nevent:\ndata: z\n\n";
    assert_eq!(
        sse(&[body]),
        vec![ev("content_block_delta", "{}", None), msg("z")]
    );
    assert_eq!(
        sse(&[b"event: del", b"ta\ndata: q\n\n"]),
        vec![ev("delta", "q", None)]
    );
}

#[test]
fn id_persists_resets_and_ignores_nul() {
    let body = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x003\ndata: c\n\nid\ndata: d\n\n";
    let want = vec![
        ev("message", "a", Some("1")),
        ev("message", "b", Some("1")),
        ev("message", "c", Some("1")),
        msg("d"),
    ];
    assert_eq!(sse(&[body]), want);
    let chunks: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(sse(&chunks), want);
}

#[test]
fn retry_takes_only_digits() {
    let mut p = Parser::new(Framing::Sse, DEFAULT_MAX_EVENT_BYTES);
    assert_eq!(p.retry(), None);
    let mut sink = |_: &Event<'_>| {};
    p.feed(b"retry: 30", &mut sink);
    p.feed(b"00\n", &mut sink);
    assert_eq!(p.retry(), Some(3000));
    for bad in [
        &b"retry: 12a\n"[..],
        b"retry:\n",
        b"retry\n",
        b"retry: -5\n",
        b"retry:  5\n",
    ] {
        p.feed(bad, &mut sink);
        assert_eq!(p.retry(), Some(3000), "{bad:?}");
    }
    p.feed(b"retry:5\n", &mut sink);
    assert_eq!(p.retry(), Some(5));
}

#[test]
fn unknown_fields_are_ignored() {
    assert_eq!(sse(&[b"foo: bar\ndata: x\nevents: y\n\n"]), vec![msg("x")]);
}

#[test]
fn incomplete_final_event_is_discarded() {
    assert_eq!(sse(&[b"data: a\n\ndata: b\n"]), vec![msg("a")]);
    assert_eq!(sse(&[b"data: a\n\ndata: b"]), vec![msg("a")]);
    assert_eq!(sse(&[b"data: a\n\ndata: b\r"]), vec![msg("a")]);
}

#[test]
fn whole_events_in_a_chunk_borrow_from_it() {
    let chunk = b"data: {\"a\":1}\n\nevent: e\ndata: x\n\n";
    let range = chunk.as_ptr_range();
    let mut p = Parser::new(Framing::Sse, DEFAULT_MAX_EVENT_BYTES);
    let mut seen = 0;
    p.feed(chunk, &mut |e: &Event<'_>| {
        assert!(range.contains(&e.data.as_ptr()));
        seen += 1;
    });
    assert_eq!(seen, 2);
    assert_eq!(p.buffered_capacity(), 0, "nothing is copied");
}

#[test]
fn one_line_events_read_as_line_by_line() {
    // Whole in one chunk, events of one data line take the short way; byte by byte, none can.
    let body: &[u8] = b"data: a\n\ndata:b\n\ndata:\n\nid: 7\ndata: c\n\ndata: d\n\n\
        data: e\ndata: f\n\nevent: x\ndata: g\n\ndata: h\r\n\r\ndata: i\n\r\n: c\ndata: j\n\n";
    let want = vec![
        msg("a"),
        msg("b"),
        msg(""),
        ev("message", "c", Some("7")),
        ev("message", "d", Some("7")),
        ev("message", "e\nf", Some("7")),
        ev("x", "g", Some("7")),
        ev("message", "h", Some("7")),
        ev("message", "i", Some("7")),
        ev("message", "j", Some("7")),
    ];
    assert_eq!(sse(&[body]), want);
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(sse(&bytes), want);
    // With a type: empty, none but no data, not UTF-8.
    let body: &[u8] = b"event:\ndata: k\n\nevent: y\n\ndata: l\n\nevent: \xff\ndata: m\n\n";
    let want = vec![msg("k"), msg("l"), ev("\u{fffd}", "m", None)];
    assert_eq!(sse(&[body]), want);
    // The size limit holds on the short way too, the type counted with the data.
    let mut p = Parser::new(Framing::Sse, 3);
    let body = b"data: abc\n\ndata: abcd\n\nevent: ab\ndata: c\n\nevent: ab\ndata: cd\n\n";
    assert_eq!(
        feed_all(&mut p, &[body]),
        vec![msg("abc"), ev("ab", "c", None)]
    );
    assert_eq!(p.oversized_events(), 2);
}

#[test]
fn oversized_event_is_skipped_and_counted() {
    let small = |chunks: &[&[u8]]| {
        let mut p = Parser::new(Framing::Sse, 16);
        let evs = feed_all(&mut p, chunks);
        (evs, p.oversized_events())
    };
    let body = b"data: 0123456789abcdefX\n\ndata: ok\n\n";
    assert_eq!(small(&[body]), (vec![msg("ok")], 1));
    assert_eq!(small(&[&body[..10], &body[10..]]), (vec![msg("ok")], 1));
    // Exactly at the limit is fine; the joining LF and the event type count too.
    assert_eq!(
        small(&[b"data: 0123456789abcdef\n\n"]),
        (vec![msg("0123456789abcdef")], 0)
    );
    assert_eq!(small(&[b"data: 01234567\ndata: 01234567\n\n"]).1, 1);
    assert_eq!(small(&[b"event: 0123456789\ndata: 0123456\n\n"]).1, 1);
    // The id counts too, the last id line of the event only.
    assert_eq!(
        small(&[b"id: 0123456789\ndata: 012345\n\n"]),
        (vec![ev("message", "012345", Some("0123456789"))], 0)
    );
    assert_eq!(small(&[b"id: 0123456789\ndata: 0123456\n\n"]).1, 1);
    assert_eq!(
        small(&[b"id: 0123456789\nid: 01\ndata: 0123456789ab\n\n"]).1,
        0
    );
    // Later fields of a skipped event cannot revive it.
    assert_eq!(
        small(&[b"data: 0123456789abcdefX\ndata: y\nid: 1\n\ndata: z\n\n"]),
        (vec![msg("z")], 1)
    );
}

#[test]
fn endless_data_line_keeps_memory_bounded() {
    let max = 64 << 10;
    let mut p = Parser::new(Framing::Sse, max);
    let mut got = Vec::new();
    let mut sink = |e: &Event<'_>| got.push(e.data.to_vec());
    p.feed(b"data: ", &mut sink);
    let chunk = vec![b'x'; 4096];
    for _ in 0..(8 << 20) / chunk.len() {
        p.feed(&chunk, &mut sink);
        assert!(p.buffered_capacity() <= max, "{}", p.buffered_capacity());
        assert!(!p.at_event_boundary());
    }
    p.feed(b"\n\ndata: after\n\n", &mut sink);
    assert_eq!(got, vec![b"after".to_vec()]);
    assert_eq!(p.oversized_events(), 1);
}

#[test]
fn default_limit_bounds_an_8_mib_line_and_ndjson_too() {
    for framing in [Framing::Sse, Framing::Ndjson] {
        let mut p = Parser::new(framing, DEFAULT_MAX_EVENT_BYTES);
        let mut n = 0;
        let chunk = vec![b'y'; 4096];
        p.feed(b"data:", &mut |_| n += 1);
        for _ in 0..2048 {
            p.feed(&chunk, &mut |_| n += 1);
            assert!(p.buffered_capacity() <= DEFAULT_MAX_EVENT_BYTES);
        }
        p.finish(&mut |_| n += 1);
        assert_eq!((n, p.oversized_events()), (0, 1), "{framing:?}");
    }
}

#[test]
fn at_event_boundary_in_each_state() {
    let after = |framing: Framing, chunks: &[&[u8]]| {
        let mut p = Parser::new(framing, 16);
        for c in chunks {
            p.feed(c, &mut |_| {});
        }
        p.at_event_boundary()
    };
    let s = Framing::Sse;
    assert!(after(s, &[]));
    assert!(!after(s, &[b"data: a"]), "mid-line");
    assert!(!after(s, &[b"data: a\n"]), "data pending");
    assert!(!after(s, &[b"event: x\n"]), "event type pending");
    assert!(!after(s, &[b"id: 1\n"]), "id pending");
    assert!(after(s, &[b"data: a\n\n"]));
    assert!(after(s, &[b"data: a\r\n\r\n"]));
    assert!(!after(s, &[b"data: a\r\r"]), "CR whose LF may come");
    assert!(after(s, &[b"data: a\r\r", b"\n"]));
    assert!(after(s, &[b": comment\n"]), "comments are harmless");
    assert!(!after(s, &[b": comm"]));
    assert!(after(s, &[b"retry: 5\n"]));
    assert!(!after(s, &[b"\xEF\xBB"]), "partial BOM");
    assert!(after(s, &[b"\xEF\xBB\xBF"]));
    assert!(
        !after(s, &[b"data: 0123456789abcdefgh\n"]),
        "skipping an oversized event"
    );
    assert!(after(s, &[b"data: 0123456789abcdefgh\n\n"]));
    let n = Framing::Ndjson;
    assert!(after(n, &[]));
    assert!(!after(n, &[b"{\"a\":1}"]));
    assert!(after(n, &[b"{\"a\":1}\n"]));
    assert!(!after(n, &[b"{\"a\":1}\r"]));
    assert!(after(n, &[b"{\"a\":1}\r", b"\n"]));
}

#[test]
fn ndjson_lines() {
    let want = vec![msg("{\"a\":1}"), msg("{\"b\":2}"), msg("{\"c\":3}")];
    assert_eq!(
        ndjson(&[b"{\"a\":1}\n{\"b\":2}\r\n\n\r\n{\"c\":3}\n"]),
        want
    );
    assert_eq!(
        ndjson(&[b"{\"a\":1}\n{\"b\":2}\r", b"\n{\"c\":3}"]),
        want,
        "last line at finish"
    );
    assert_eq!(
        ndjson(&[b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\r"]),
        want,
        "final CR of a cut CRLF"
    );
    assert_eq!(
        ndjson(&[b"a\rb\n"]),
        vec![msg("a\rb")],
        "a lone CR is content"
    );
    assert_eq!(ndjson(&[b"a\r", b"b\n"]), vec![msg("a\rb")]);
    assert_eq!(
        ndjson(&[b"data: x\n\nevent: y\n"]),
        vec![msg("data: x"), msg("event: y")]
    );
}

#[test]
fn ndjson_oversized_line_is_skipped() {
    let run = |chunks: &[&[u8]]| {
        let mut p = Parser::new(Framing::Ndjson, 8);
        (feed_all(&mut p, chunks), p.oversized_events())
    };
    let body = b"123456789\n12345678\r\n123456789";
    assert_eq!(run(&[body]), (vec![msg("12345678")], 2));
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(run(&bytes), (vec![msg("12345678")], 2));
}

#[test]
fn content_type_selects_framing() {
    assert_eq!(
        Framing::from_content_type("text/event-stream"),
        Some(Framing::Sse)
    );
    assert_eq!(
        Framing::from_content_type("Text/Event-Stream; charset=utf-8"),
        Some(Framing::Sse)
    );
    assert_eq!(
        Framing::from_content_type(" application/x-ndjson "),
        Some(Framing::Ndjson)
    );
    assert_eq!(Framing::from_content_type("application/json"), None);
    assert_eq!(Framing::from_content_type(""), None);
}

#[path = "proptests.rs"]
mod proptests;
#[path = "reference.rs"]
mod reference;
