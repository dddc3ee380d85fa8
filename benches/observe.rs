//! Cost of stream observation per event on realistic streams (OpenAI chat, the bench load
//! tool's stamped chat chunks, Anthropic messages, Ollama NDJSON): the parser alone, the parser
//! plus dialect extraction (`StreamObserver::on_chunk`), and `dialect::inspect` alone against
//! the serde_json reference path `dialect::inspect_slow`.
//!
//! `cargo bench --bench observe` first prints a summary in ns/event and GB/s, the best of
//! `SUMMARY_RUNS` runs of each workload (the best run is the one least disturbed by other
//! processes on a busy machine), then runs the criterion benchmarks.
//!
//! Instructions per event, which a busy machine does not disturb: with `OBSERVE_ONCE=<name>`
//! the binary feeds that workload through a `StreamObserver` once and exits, and
//! `valgrind --tool=callgrind --toggle-collect='*StreamObserver::on_chunk*'` counts only
//! inside the observer (the total divided by the events it prints).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use ssegate::dialect::{self, Dialect};
use ssegate::observe::{Outcome, StreamEnd, StreamObserver};
use ssegate::sse::{Framing, Parser, DEFAULT_MAX_EVENT_BYTES};

const STREAM_BYTES: usize = 4 << 20;
const CHUNK_BYTES: usize = 8 << 10;
const SUMMARY_RUNS: usize = 15;

/// Output text pieces of a few characters, some with JSON escapes or non-ASCII characters.
const WORDS: [&str; 16] = [
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

/// Appends text deltas of one to three words until `body` holds `STREAM_BYTES`.
fn fill(body: &mut String, mut event: impl FnMut(&str) -> String) {
    let mut i = 0;
    while body.len() < STREAM_BYTES {
        let n = 1 + i % 3;
        let text: String = (i..i + n).map(|w| WORDS[w % WORDS.len()]).collect();
        body.push_str(&event(&text));
        i += n;
    }
}

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
    let mut body = chunk_event(
        r#"{"role":"assistant","content":"","refusal":null}"#,
        "null",
    );
    fill(&mut body, |text| {
        chunk_event(&format!("{{\"content\":\"{text}\"}}"), "null")
    });
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

/// A ~4 MiB stream of the bench's load tool: chat chunks stamped with their send time after
/// the text, so that each differs from the last on both sides of its text.
fn stamped_stream() -> Vec<u8> {
    let mut body = String::new();
    let mut sent = 63_556_518_358_299u64;
    fill(&mut body, |text| {
        sent += 21_381;
        format!(
            "data: {{\"id\":\"chatcmpl-x\",\"object\":\"chat.completion.chunk\",\"choices\":\
             [{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}],\"t\":{sent}}}\n\n"
        )
    });
    body.push_str("data: [DONE]\n\n");
    body.into_bytes()
}

/// A ~4 MiB Anthropic messages stream, as the API sends it (named events, compact JSON).
fn anthropic_stream() -> Vec<u8> {
    let mut body = String::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\
         \"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\
         \"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\
         \"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n\
         event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
         event: ping\ndata: {\"type\": \"ping\"}\n\n",
    );
    fill(&mut body, |text| {
        format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\
             \"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n"
        )
    });
    body.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
         event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\
         \"stop_sequence\":null},\"usage\":{\"output_tokens\":10000}}\n\n\
         event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    body.into_bytes()
}

/// A ~4 MiB Ollama `/api/chat` NDJSON body, with the final line's counts. Each line has a new
/// `created_at`, as Ollama sends them.
fn ollama_ndjson() -> Vec<u8> {
    let mut body = String::new();
    let mut line = 0u64;
    fill(&mut body, |text| {
        line += 1;
        format!(
            "{{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T08:52:19.{:09}-07:00\",\
             \"message\":{{\"role\":\"assistant\",\"content\":\"{text}\"}},\"done\":false}}\n",
            385_406_455 + line * 17_321
        )
    });
    body.push_str(
        "{\"model\":\"llama3.2\",\"created_at\":\"2023-08-04T19:22:45.499127Z\",\"message\":{\"role\":\"assistant\",\
         \"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":4883583458,\
         \"load_duration\":1334875,\"prompt_eval_count\":26,\"prompt_eval_duration\":342546000,\
         \"eval_count\":10000,\"eval_duration\":4535599000}\n",
    );
    body.into_bytes()
}

/// One stream and what observing it must report.
struct Workload {
    name: &'static str,
    framing: Framing,
    body: Vec<u8>,
    dialect: Dialect,
    tokens: (Option<u64>, Option<u64>),
    /// (event type, data) of every event, for timing `inspect` alone.
    events: Vec<(String, Vec<u8>)>,
}

impl Workload {
    fn new(
        name: &'static str,
        framing: Framing,
        body: Vec<u8>,
        dialect: Dialect,
        tokens: (Option<u64>, Option<u64>),
    ) -> Self {
        let mut events = Vec::new();
        let mut parser = Parser::new(framing, DEFAULT_MAX_EVENT_BYTES);
        let mut sink = |e: &ssegate::sse::Event<'_>| {
            events.push((e.event_type.to_owned(), e.data.to_vec()));
        };
        for chunk in body.chunks(CHUNK_BYTES) {
            parser.feed(chunk, &mut sink);
        }
        parser.finish(&mut sink);
        Workload {
            name,
            framing,
            body,
            dialect,
            tokens,
            events,
        }
    }

    /// The workload must be what it claims before it is timed.
    fn check(&self) {
        let events = parse(self);
        let obs = observe(self, Instant::now());
        let stats = obs.stats();
        assert_eq!(stats.events, events, "{}", self.name);
        assert_eq!(events, self.events.len() as u64, "{}", self.name);
        assert_eq!(obs.outcome(), Some(Outcome::Completed), "{}", self.name);
        assert_eq!(stats.dialect, self.dialect, "{}", self.name);
        assert_eq!(
            (stats.input_tokens, stats.output_tokens),
            self.tokens,
            "{}",
            self.name
        );
        assert!(stats.output_chars > 0 && stats.first_token.is_some());
        // The fast path and the reference path agree on every event of the workload.
        assert_eq!(inspect_all(self, dialect::inspect), stats.output_chars);
        for (ty, data) in &self.events {
            assert_eq!(
                dialect::inspect(ty, data),
                dialect::inspect_slow(ty, data),
                "{}",
                String::from_utf8_lossy(data)
            );
        }
    }
}

fn parse(w: &Workload) -> u64 {
    let mut parser = Parser::new(w.framing, DEFAULT_MAX_EVENT_BYTES);
    let mut events = 0;
    let mut sink = |e: &ssegate::sse::Event<'_>| {
        black_box(e);
        events += 1;
    };
    for chunk in w.body.chunks(CHUNK_BYTES) {
        parser.feed(black_box(chunk), &mut sink);
    }
    parser.finish(&mut sink);
    events
}

fn observe(w: &Workload, t0: Instant) -> StreamObserver {
    let mut obs = StreamObserver::new(w.framing, t0);
    let mut now = t0;
    for chunk in w.body.chunks(CHUNK_BYTES) {
        now += Duration::from_millis(20);
        obs.on_chunk(black_box(chunk), now);
    }
    obs.finish(StreamEnd::Finished, now);
    obs
}

/// `inspect` or `inspect_slow`.
type Inspect = for<'a> fn(&str, &'a [u8]) -> dialect::Payload<'a>;

/// Output characters of all events as `inspect` reads them (as the observer counts them).
fn inspect_all(w: &Workload, inspect: Inspect) -> u64 {
    let mut chars = 0;
    for (ty, data) in &w.events {
        let p = inspect(ty, black_box(data));
        chars += p.text.map_or(0, |t| t.chars().count() as u64);
    }
    chars
}

/// The best of `SUMMARY_RUNS` runs of `f`.
fn best(mut f: impl FnMut()) -> Duration {
    (0..SUMMARY_RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn summary(workloads: &[Workload]) {
    println!(
        "best of {SUMMARY_RUNS} runs; {CHUNK_BYTES}-byte chunks; dialect = parser+dialect - parser"
    );
    for w in workloads {
        let n = w.events.len() as f64;
        let line = |what: &str, d: Duration| {
            let ns = d.as_nanos() as f64;
            println!(
                "  {:<26} {:>8.1} ns/event {:>6.2} GB/s",
                what,
                ns / n,
                w.body.len() as f64 / ns
            );
        };
        println!(
            "{}: {} bytes, {} events ({} bytes/event)",
            w.name,
            w.body.len(),
            w.events.len(),
            w.body.len() / w.events.len().max(1)
        );
        let t0 = Instant::now();
        let parser = best(|| {
            black_box(parse(w));
        });
        let observer = best(|| {
            black_box(observe(w, t0));
        });
        line("parser", parser);
        line("parser+dialect (observer)", observer);
        line("dialect", observer.saturating_sub(parser));
        line(
            "inspect alone",
            best(|| {
                black_box(inspect_all(w, dialect::inspect));
            }),
        );
        line(
            "inspect_slow (serde) alone",
            best(|| {
                black_box(inspect_all(w, dialect::inspect_slow));
            }),
        );
    }
}

fn workloads() -> [Workload; 4] {
    [
        Workload::new(
            "openai_chat_stream",
            Framing::Sse,
            openai_stream(),
            Dialect::OpenAiChat,
            (Some(19), Some(10_000)),
        ),
        Workload::new(
            "stamped_chat_stream",
            Framing::Sse,
            stamped_stream(),
            Dialect::OpenAiChat,
            (None, None),
        ),
        Workload::new(
            "anthropic_stream",
            Framing::Sse,
            anthropic_stream(),
            Dialect::Anthropic,
            (Some(25), Some(10_000)),
        ),
        Workload::new(
            "ollama_ndjson",
            Framing::Ndjson,
            ollama_ndjson(),
            Dialect::Ollama,
            (Some(26), Some(10_000)),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let workloads = workloads();
    for w in &workloads {
        w.check();
    }
    // Only a real benchmark run prints the summary, not `cargo test --benches`.
    if std::env::args().any(|a| a == "--bench") {
        summary(&workloads);
    }

    for w in &workloads {
        let mut group = c.benchmark_group(w.name);
        group.throughput(Throughput::Bytes(w.body.len() as u64));
        group.measurement_time(Duration::from_secs(3));
        group.sample_size(20);
        group.bench_function("parser", |b| b.iter(|| parse(black_box(w))));
        let t0 = Instant::now();
        group.bench_function("observer", |b| b.iter(|| observe(black_box(w), t0)));
        group.bench_function("inspect", |b| {
            b.iter(|| inspect_all(black_box(w), dialect::inspect))
        });
        group.bench_function("inspect_slow", |b| {
            b.iter(|| inspect_all(black_box(w), dialect::inspect_slow))
        });
        group.finish();
    }
}

/// Feeds one workload through a `StreamObserver` once, for an instruction count (see the
/// module's doc).
fn once(name: &str) {
    let all = workloads();
    let Some(w) = all.iter().find(|w| w.name == name) else {
        let names: Vec<_> = all.iter().map(|w| w.name).collect();
        panic!("OBSERVE_ONCE={name}: not one of {names:?}");
    };
    black_box(observe(w, Instant::now()));
    println!("{}: {} events", w.name, w.events.len());
}

criterion_group!(benches, bench);

fn main() {
    match std::env::var("OBSERVE_ONCE") {
        Ok(name) => once(&name),
        Err(_) => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
