//! Throughput of stream observation on a realistic OpenAI chat stream: the parser alone, and
//! the parser plus dialect extraction (`StreamObserver::on_chunk`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ssegate::dialect::Dialect;
use ssegate::observe::{Outcome, StreamEnd, StreamObserver};
use ssegate::sse::{Framing, Parser, DEFAULT_MAX_EVENT_BYTES};

const STREAM_BYTES: usize = 4 << 20;
const CHUNK_BYTES: usize = 8 << 10;

/// One `data:` event of a gpt-4o chat completion chunk, with the given delta.
fn chunk_event(delta: &str, finish: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\
         \"created\":1741569952,\"model\":\"gpt-4o-2024-08-06\",\"service_tier\":\"default\",\
         \"system_fingerprint\":\"fp_eb9dce56a8\",\"choices\":[{{\"index\":0,\"delta\":{delta},\
         \"logprobs\":null,\"finish_reason\":{finish}}}],\"usage\":null}}\n\n"
    )
}

/// A ~4 MiB stream as `stream_options.include_usage` sends it: role delta, content deltas of a
/// few words (some escaped), finish chunk, usage chunk, `[DONE]`.
fn openai_stream() -> Vec<u8> {
    let words = [
        "The",
        " quick",
        " brown",
        " fox",
        " jumps",
        " over",
        " the",
        " lazy",
        " dog",
        ".",
        "\\n",
        " Caf\\u00e9",
        " na\u{ef}ve",
        " \\\"quoted\\\"",
        " tokens",
        ",",
    ];
    let mut body = chunk_event(
        r#"{"role":"assistant","content":"","refusal":null}"#,
        "null",
    );
    let mut i = 0;
    while body.len() < STREAM_BYTES {
        let n = 1 + i % 3;
        let text: String = (i..i + n).map(|w| words[w % words.len()]).collect();
        body.push_str(&chunk_event(&format!("{{\"content\":\"{text}\"}}"), "null"));
        i += n;
    }
    body.push_str(&chunk_event("{}", "\"stop\""));
    body.push_str(
        "data: {\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":\"chat.completion.chunk\",\
         \"created\":1741569952,\"model\":\"gpt-4o-2024-08-06\",\"service_tier\":\"default\",\
         \"system_fingerprint\":\"fp_eb9dce56a8\",\"choices\":[],\"usage\":{\"prompt_tokens\":19,\
         \"completion_tokens\":10000,\"total_tokens\":10019,\"prompt_tokens_details\":\
         {\"cached_tokens\":0,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\
         \"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n",
    );
    body.push_str("data: [DONE]\n\n");
    body.into_bytes()
}

fn parse(body: &[u8]) -> u64 {
    let mut parser = Parser::new(Framing::Sse, DEFAULT_MAX_EVENT_BYTES);
    let mut events = 0;
    let mut sink = |e: &ssegate::sse::Event<'_>| {
        black_box(e);
        events += 1;
    };
    for chunk in body.chunks(CHUNK_BYTES) {
        parser.feed(black_box(chunk), &mut sink);
    }
    parser.finish(&mut sink);
    events
}

fn observe(body: &[u8], t0: Instant) -> StreamObserver {
    let mut obs = StreamObserver::new(Framing::Sse, t0);
    let mut now = t0;
    for chunk in body.chunks(CHUNK_BYTES) {
        now += Duration::from_millis(20);
        obs.on_chunk(black_box(chunk), now);
    }
    obs.finish(StreamEnd::Finished, now);
    obs
}

fn bench(c: &mut Criterion) {
    let body = openai_stream();
    let t0 = Instant::now();
    // The workload must be what it claims before it is timed.
    let events = parse(&body);
    let obs = observe(&body, t0);
    let stats = obs.stats();
    assert_eq!(stats.events, events);
    assert_eq!(obs.outcome(), Some(Outcome::Completed));
    assert_eq!(stats.dialect, Dialect::OpenAiChat);
    assert_eq!(
        (stats.input_tokens, stats.output_tokens),
        (Some(19), Some(10_000))
    );
    assert!(stats.output_chars > 0 && stats.first_token.is_some());
    println!(
        "stream: {} bytes, {} events ({} bytes/event), {} output chars, {}-byte chunks",
        body.len(),
        events,
        body.len() as u64 / events,
        stats.output_chars,
        CHUNK_BYTES
    );

    let mut group = c.benchmark_group("openai_chat_stream");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parser", |b| b.iter(|| parse(black_box(&body))));
    group.bench_function("observer", |b| b.iter(|| observe(black_box(&body), t0)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
