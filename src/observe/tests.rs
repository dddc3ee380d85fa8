use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn chat(content: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\
         \"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
    )
}

const ROLE: &str = "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
const USAGE: &str = "data: {\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3}}\n\n";
const DONE: &str = "data: [DONE]\n\n";

/// Feed `chunks` at the given offsets from t0 and finish with `end` at `end_ms`.
fn run(
    framing: Framing,
    chunks: &[(u64, &str)],
    end: StreamEnd,
    end_ms: u64,
) -> (Outcome, StreamStats) {
    let t0 = Instant::now();
    let mut obs = StreamObserver::new(framing, t0);
    for (at, chunk) in chunks {
        obs.on_chunk(chunk.as_bytes(), t0 + ms(*at));
    }
    let outcome = obs.finish(end, t0 + ms(end_ms));
    (outcome, obs.stats().clone())
}

#[test]
fn classify_rules() {
    use Outcome::*;
    use StreamEnd as E;
    let chat = Dialect::OpenAiChat;
    for end in [
        E::Finished,
        E::ClientClosed,
        E::UpstreamError,
        E::IdleTimeout,
    ] {
        assert_eq!(
            classify(end, chat, true),
            Completed,
            "end marker wins over {end:?}"
        );
        assert_eq!(classify(end, Dialect::Unknown, true), Completed);
    }
    assert_eq!(classify(E::Finished, chat, false), Incomplete);
    assert_eq!(classify(E::Finished, Dialect::Ollama, false), Incomplete);
    assert_eq!(classify(E::Finished, Dialect::Unknown, false), Completed);
    assert_eq!(classify(E::ClientClosed, chat, false), ClientClosed);
    assert_eq!(
        classify(E::UpstreamError, Dialect::Unknown, false),
        UpstreamError
    );
    assert_eq!(
        classify(E::IdleTimeout, Dialect::Anthropic, false),
        IdleTimeout
    );
}

#[test]
fn outcome_names() {
    let names: Vec<_> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    assert_eq!(
        names,
        [
            "completed",
            "incomplete",
            "client_closed",
            "upstream_error",
            "idle_timeout"
        ]
    );
}

#[test]
fn openai_stream_counts_timings_and_tokens() {
    let hello = chat("Hello");
    let world = chat(" w\\u00f6rld");
    let (rest, cut) = USAGE.split_at(20);
    let chunks = [
        (120, ROLE),
        (300, hello.as_str()),
        (1300, world.as_str()),
        (1350, rest),
        (1400, cut),
        (1500, DONE),
    ];
    let (outcome, s) = run(Framing::Sse, &chunks, StreamEnd::Finished, 1600);
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(
        (s.chunks, s.events, s.output_chars, s.errors, s.oversized),
        (6, 5, 11, 0, 0)
    );
    assert_eq!(
        s.bytes,
        chunks.iter().map(|c| c.1.len() as u64).sum::<u64>()
    );
    assert_eq!(
        (s.ttfb, s.first_token, s.max_gap),
        (Some(ms(120)), Some(ms(300)), ms(1000))
    );
    assert_eq!((s.input_tokens, s.output_tokens), (Some(9), Some(3)));
    assert_eq!((s.dialect, s.end_marker), (Dialect::OpenAiChat, true));
}

#[test]
fn chunk_delta_reports_what_one_chunk_added() {
    let t0 = Instant::now();
    let mut obs = StreamObserver::new(Framing::Sse, t0);
    let two = format!(
        "{}{}event: error\ndata: boom\n\n: ping\n\ndata: {{\"type\":",
        chat("ab"),
        chat("c\u{e9}")
    );
    let delta = obs.on_chunk(two.as_bytes(), t0);
    assert_eq!(
        delta,
        ChunkDelta {
            events: 3,
            output_chars: 4,
            errors: 1
        }
    );
    let delta = obs.on_chunk(b"\"chunk\",\"content\":\"xyz\"}\n\n", t0);
    assert_eq!(
        delta,
        ChunkDelta {
            events: 1,
            output_chars: 3,
            errors: 0
        }
    );
    assert_eq!(obs.on_chunk(b"", t0), ChunkDelta::default());
    assert_eq!(
        (
            obs.stats().events,
            obs.stats().output_chars,
            obs.stats().errors,
            obs.stats().chunks
        ),
        (4, 7, 1, 2)
    );
}

#[test]
fn end_marker_then_client_close_is_completed() {
    let hi = chat("hi");
    let (outcome, _) = run(
        Framing::Sse,
        &[(1, hi.as_str()), (2, DONE)],
        StreamEnd::ClientClosed,
        3,
    );
    assert_eq!(outcome, Outcome::Completed);
    let (outcome, _) = run(
        Framing::Sse,
        &[(1, hi.as_str()), (2, DONE)],
        StreamEnd::UpstreamError,
        3,
    );
    assert_eq!(outcome, Outcome::Completed);
}

#[test]
fn clean_end_without_marker_is_incomplete() {
    let hi = chat("hi");
    let (outcome, s) = run(
        Framing::Sse,
        &[(1, ROLE), (2, hi.as_str())],
        StreamEnd::Finished,
        3,
    );
    assert_eq!((outcome, s.end_marker), (Outcome::Incomplete, false));
    // A `[DONE]` cut in half never passed.
    let (outcome, _) = run(
        Framing::Sse,
        &[(1, hi.as_str()), (2, "data: [DO")],
        StreamEnd::Finished,
        3,
    );
    assert_eq!(outcome, Outcome::Incomplete);
}

#[test]
fn unknown_dialect_ending_cleanly_is_completed() {
    let (outcome, s) = run(
        Framing::Sse,
        &[(1, "data: hello\n\ndata: {\"x\":1}\n\n")],
        StreamEnd::Finished,
        2,
    );
    assert_eq!(
        (outcome, s.events, s.output_chars, s.dialect),
        (Outcome::Completed, 2, 0, Dialect::Unknown)
    );
    let (outcome, s) = run(Framing::Sse, &[], StreamEnd::Finished, 2);
    assert_eq!((outcome, s.ttfb, s.chunks), (Outcome::Completed, None, 0));
}

#[test]
fn other_ends_map_to_their_outcomes() {
    let hi = chat("hi");
    let chunks = [(5, hi.as_str())];
    assert_eq!(
        run(Framing::Sse, &chunks, StreamEnd::ClientClosed, 9).0,
        Outcome::ClientClosed
    );
    assert_eq!(
        run(Framing::Sse, &chunks, StreamEnd::UpstreamError, 9).0,
        Outcome::UpstreamError
    );
    assert_eq!(
        run(Framing::Sse, &chunks, StreamEnd::IdleTimeout, 9).0,
        Outcome::IdleTimeout
    );
}

#[test]
fn dialect_is_sticky() {
    let cmpl =
        "data: {\"object\":\"text_completion\",\"choices\":[{\"text\":\"Hi\",\"index\":0}]}\n\n";
    let (outcome, s) = run(
        Framing::Sse,
        &[(1, cmpl), (2, DONE)],
        StreamEnd::Finished,
        3,
    );
    assert_eq!(
        (outcome, s.dialect, s.output_chars),
        (Outcome::Completed, Dialect::OpenAiCompletions, 2)
    );
    // Unrecognised events before the first recognised one do not fix the dialect.
    let (_, s) = run(
        Framing::Sse,
        &[(1, "data: hi\n\n"), (2, ROLE)],
        StreamEnd::Finished,
        3,
    );
    assert_eq!(s.dialect, Dialect::OpenAiChat);
}

#[test]
fn anthropic_tokens_keep_the_last_report() {
    let body = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",",
        "\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n",
    );
    let (outcome, s) = run(Framing::Sse, &[(1, body)], StreamEnd::Finished, 2);
    assert_eq!(
        (outcome, s.input_tokens, s.output_tokens),
        (Outcome::Incomplete, Some(25), Some(15))
    );
    let stop = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let (outcome, s) = run(
        Framing::Sse,
        &[(1, body), (2, stop)],
        StreamEnd::Finished,
        3,
    );
    assert_eq!(
        (outcome, s.events, s.output_chars),
        (Outcome::Completed, 5, 2)
    );
}

#[test]
fn ollama_ndjson_last_line_counts_only_on_clean_end() {
    let lines = [
        (10, "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"The\"},\"done\":false}\n"),
        (20, "{\"model\":\"llama3.2\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"prompt_eval_count\":26,\"eval_count\":282}"),
    ];
    let (outcome, s) = run(Framing::Ndjson, &lines, StreamEnd::Finished, 30);
    assert_eq!(
        (outcome, s.events, s.output_chars),
        (Outcome::Completed, 2, 3)
    );
    assert_eq!((s.input_tokens, s.output_tokens), (Some(26), Some(282)));
    let (outcome, s) = run(Framing::Ndjson, &lines, StreamEnd::ClientClosed, 30);
    assert_eq!((outcome, s.events), (Outcome::ClientClosed, 1));
    let t0 = Instant::now();
    let mut obs = StreamObserver::new(Framing::Ndjson, t0);
    obs.on_chunk(lines[0].1.as_bytes(), t0);
    let last = "{\"model\":\"m\",\"response\":\"ok\",\"done\":false}";
    assert_eq!(obs.on_chunk(last.as_bytes(), t0), ChunkDelta::default());
    assert_eq!(obs.finish(StreamEnd::Finished, t0), Outcome::Incomplete);
    assert_eq!(
        obs.finish_delta(),
        ChunkDelta {
            events: 1,
            output_chars: 2,
            errors: 0
        }
    );
}

#[test]
fn first_token_waits_for_non_empty_text_and_last_event_is_tracked() {
    let t0 = Instant::now();
    let mut obs = StreamObserver::new(Framing::Sse, t0);
    obs.on_chunk(ROLE.as_bytes(), t0 + ms(50));
    obs.on_chunk(b": keep-alive\n\n", t0 + ms(70));
    assert_eq!(
        (obs.stats().ttfb, obs.stats().first_token),
        (Some(ms(50)), None)
    );
    assert_eq!(
        obs.stats().last_event_at,
        Some(t0 + ms(50)),
        "comments are not events"
    );
    obs.on_chunk(chat("x").as_bytes(), t0 + ms(900));
    assert_eq!(
        (obs.stats().first_token, obs.stats().max_gap),
        (Some(ms(900)), ms(830))
    );
    assert_eq!(obs.stats().last_event_at, Some(t0 + ms(900)));
}

#[test]
fn finish_is_final_and_boundary_follows_the_parser() {
    let t0 = Instant::now();
    let mut obs = StreamObserver::new(Framing::Sse, t0);
    assert!(obs.at_event_boundary());
    obs.on_chunk(b"data: {\"type\":\"chunk\",", t0);
    assert!(!obs.at_event_boundary());
    obs.on_chunk(b"\"content\":\"ok\"}\n\n", t0);
    assert!(obs.at_event_boundary());
    assert_eq!(obs.outcome(), None);
    assert_eq!(obs.finish(StreamEnd::IdleTimeout, t0), Outcome::IdleTimeout);
    assert_eq!(obs.finish(StreamEnd::Finished, t0), Outcome::IdleTimeout);
    assert_eq!(
        obs.on_chunk(b"data: {\"type\":\"done\"}\n\n", t0),
        ChunkDelta::default()
    );
    assert_eq!(
        (obs.stats().chunks, obs.outcome()),
        (2, Some(Outcome::IdleTimeout))
    );
}

#[test]
fn oversized_events_are_counted() {
    let t0 = Instant::now();
    let mut obs = StreamObserver::with_max_event_bytes(Framing::Sse, t0, 32);
    let big = format!("data: {}\n\n{}", "x".repeat(100), chat("a"));
    obs.on_chunk(big.as_bytes(), t0);
    assert_eq!(
        (obs.stats().oversized, obs.stats().events),
        (2, 0),
        "the chat chunk is over 32 bytes too"
    );
    obs.on_chunk(b"data: small\n\n", t0);
    assert_eq!((obs.stats().oversized, obs.stats().events), (2, 1));
}

#[test]
fn log_line_follows_the_contract() {
    let hi = chat("hi");
    let (outcome, s) = run(
        Framing::Sse,
        &[(12, ROLE), (40, hi.as_str()), (1040, USAGE), (1041, DONE)],
        StreamEnd::Finished,
        1050,
    );
    let line = log_line("/api/chat/stream/", 200, outcome, &s, ms(1050));
    let bytes = ROLE.len() + hi.len() + USAGE.len() + DONE.len();
    assert_eq!(
        line,
        format!(
            "stream end route=/api/chat/stream/ status=200 outcome=completed ttfb_ms=12 first_token_ms=40 \
             duration_ms=1050 max_gap_ms=1000 chunks=4 events=4 bytes={bytes} output_chars=2 tokens=9/3"
        )
    );
    let empty = log_line(
        "my route",
        502,
        Outcome::UpstreamError,
        &StreamStats::default(),
        ms(3),
    );
    assert_eq!(
        empty,
        "stream end route=\"my route\" status=502 outcome=upstream_error ttfb_ms=- first_token_ms=- duration_ms=3 \
         max_gap_ms=0 chunks=0 events=0 bytes=0 output_chars=0 tokens=-/-"
    );
}

#[test]
fn output_length_counts_characters_not_bytes() {
    // Plain ASCII, text past ASCII as it is and escaped, and a character outside the BMP.
    let body = [
        chat("Hi"),
        chat("h\u{e9}llo \u{65e5}\u{672c}"),
        chat("caf\\u00e9"),
        chat("\u{1f600}!"),
        DONE.to_string(),
    ]
    .concat();
    let (_, s) = run(Framing::Sse, &[(5, &body)], StreamEnd::Finished, 10);
    assert_eq!((s.events, s.output_chars), (5, 2 + 8 + 4 + 2));
}
