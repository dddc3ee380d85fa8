//! What ssegate measures of each stream, through the real binary and its /metrics.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

const WORDS: &[&str] = &["Bonjour", ", ", "le ", "café ", "est ", "prêt", " 🎉"];

fn openai_chunk(content: &str) -> Vec<u8> {
    let v = serde_json::json!({"id":"c1","object":"chat.completion.chunk","model":"m",
        "choices":[{"index":0,"delta":{"content":content},"finish_reason":null}]});
    format!("data: {v}\n\n").into_bytes()
}

/// An OpenAI chat stream: role chunk after 200 ms, first word after 400 ms, then a word
/// every 20 ms, usage, [DONE].
fn openai_script(done: bool) -> Script {
    let mut s = vec![
        sse_head("text/event-stream"),
        Step::Sleep(Duration::from_millis(200)),
    ];
    s.push(Step::Chunk(
        b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n".to_vec(),
    ));
    s.push(Step::Sleep(Duration::from_millis(200)));
    for w in WORDS {
        s.push(Step::Chunk(openai_chunk(w)));
        s.push(Step::Sleep(Duration::from_millis(20)));
    }
    s.push(Step::Chunk(
        b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}\n\n".to_vec(),
    ));
    if done {
        s.push(Step::Chunk(b"data: [DONE]\n\n".to_vec()));
    }
    s.push(Step::End);
    s
}

fn config(up: std::net::SocketAddr) -> String {
    format!(
        "upstreams:\n  llm:\n    servers: [\"{up}\"]\nroutes:\n  - path: /chat/\n    name: chat\n    upstream: llm\n    stream:\n      idle_timeout: 2s\n  - path: /\n    name: plain\n    upstream: llm\n    read_timeout: 2s\n"
    )
}

#[tokio::test]
async fn k_streams_are_counted_exactly() {
    const K: usize = 5;
    let up = Upstream::scripted(openai_script(true)).await;
    let proxy = Proxy::start(&config(up.addr)).await;
    let chars: usize = WORDS.iter().map(|w| w.chars().count()).sum();
    let events_per_stream = 1 + WORDS.len() + 2;
    for route in ["chat", "plain"] {
        let path = if route == "chat" { "/chat/x" } else { "/x" };
        let mut handles = Vec::new();
        for _ in 0..K {
            let addr = proxy.addr;
            handles.push(tokio::spawn(async move {
                send(addr, "POST", path, &[], b"{}")
                    .await
                    .unwrap()
                    .collect()
                    .await
                    .unwrap()
            }));
        }
        for h in handles {
            let body = h.await.unwrap();
            assert!(body.ends_with(b"data: [DONE]\n\n"));
        }
        let completed = format!("ssegate_streams_total{{outcome=\"completed\",route=\"{route}\"}}");
        assert_eq!(
            proxy.wait_metric(&completed, K as f64).await,
            K as f64,
            "{route}"
        );
        let m = proxy.metrics().await;
        let v = |name: &str| metric_value(&m, &format!("{name}{{route=\"{route}\"}}"));
        assert_eq!(
            v("ssegate_stream_events_total"),
            (K * events_per_stream) as f64,
            "{route}"
        );
        assert_eq!(
            v("ssegate_stream_output_chars_total"),
            (K * chars) as f64,
            "{route}"
        );
        assert_eq!(v("ssegate_streams_active"), 0.0, "{route}");
        assert!(
            v("ssegate_stream_chunks_total") >= (K * events_per_stream) as f64,
            "{route}"
        );
        let tok = |t: &str| {
            metric_value(
                &m,
                &format!("ssegate_stream_tokens_total{{route=\"{route}\",type=\"{t}\"}}"),
            )
        };
        assert_eq!(
            (tok("input"), tok("output")),
            ((K * 11) as f64, (K * 7) as f64),
            "{route}"
        );
        // First byte after ~200 ms, first token after ~400 ms (generous bounds for a busy machine).
        let ttfb = v("ssegate_stream_ttfb_seconds_sum") / v("ssegate_stream_ttfb_seconds_count");
        let first = v("ssegate_stream_first_token_seconds_sum")
            / v("ssegate_stream_first_token_seconds_count");
        assert_eq!(v("ssegate_stream_ttfb_seconds_count"), K as f64);
        assert!((0.19..0.6).contains(&ttfb), "{route}: mean ttfb {ttfb}");
        assert!(
            (0.39..0.9).contains(&first),
            "{route}: mean first token {first}"
        );
        let le = |b: &str| {
            metric_value(
                &m,
                &format!(
                    "ssegate_stream_first_token_seconds_bucket{{route=\"{route}\",le=\"{b}\"}}"
                ),
            )
        };
        assert_eq!(le("0.25"), 0.0, "{route}: no first token before 250 ms");
        assert_eq!(le("120"), K as f64);
        let gap = v("ssegate_stream_max_gap_seconds_sum") / K as f64;
        assert!(
            (0.19..0.6).contains(&gap),
            "{route}: mean max gap {gap} (the 200 ms pause)"
        );
    }
    let log = proxy.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("stream end") && l.contains("route=chat"))
        .unwrap();
    let chars_field = format!("output_chars={chars}");
    for field in [
        "status=200",
        "outcome=completed",
        "ttfb_ms=",
        "first_token_ms=",
        "duration_ms=",
        "max_gap_ms=",
        "chunks=",
        "events=10",
        "bytes=",
        &chars_field,
        "tokens=11/7",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
}

#[tokio::test]
async fn each_way_of_ending_lands_in_its_own_outcome() {
    let crash = {
        let mut s = openai_script(true);
        s.truncate(5); // head, sleep, role chunk, sleep, first word
        s.push(Step::Close);
        s
    };
    let scripts = [
        ("/incomplete", openai_script(false)),
        ("/crash", crash),
        (
            "/abort",
            vec![
                sse_head("text/event-stream"),
                Step::Chunk(openai_chunk("hi")),
                Step::AwaitClose,
            ],
        ),
        (
            "/idle",
            vec![
                sse_head("text/event-stream"),
                Step::Chunk(openai_chunk("hi")),
                Step::Hang(Duration::from_secs(30)),
            ],
        ),
        (
            "/done-then-hangup",
            vec![
                sse_head("text/event-stream"),
                Step::Chunk(openai_chunk("hi")),
                Step::Chunk(b"data: [DONE]\n\n".to_vec()),
                Step::AwaitClose,
            ],
        ),
    ];
    let up = Upstream::start(move |r| {
        scripts
            .iter()
            .find(|(p, _)| r.path.ends_with(p))
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    })
    .await;
    let proxy = Proxy::start(&config(up.addr)).await;
    let body = send(proxy.addr, "GET", "/chat/incomplete", &[], b"")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(!body.ends_with(b"[DONE]\n\n"));
    let broken = send(proxy.addr, "GET", "/chat/crash", &[], b"")
        .await
        .unwrap()
        .collect()
        .await;
    assert!(
        broken.is_err(),
        "a crashed upstream is a broken stream for the client too"
    );
    let mut r = send(proxy.addr, "GET", "/chat/abort", &[], b"")
        .await
        .unwrap();
    r.next_chunk().await.unwrap().unwrap();
    drop(r);
    let idle = send(proxy.addr, "GET", "/chat/idle", &[], b"")
        .await
        .unwrap()
        .collect()
        .await;
    assert!(idle.is_err(), "cut at idle_timeout");
    let mut r = send(proxy.addr, "GET", "/chat/done-then-hangup", &[], b"")
        .await
        .unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"[DONE]\n\n") {
        got.extend_from_slice(&r.next_chunk().await.unwrap().unwrap().1);
    }
    drop(r); // like openai-python, hang up right after [DONE]
    for (outcome, n) in [
        ("incomplete", 1.0),
        ("upstream_error", 1.0),
        ("client_closed", 1.0),
        ("idle_timeout", 1.0),
        ("completed", 1.0),
    ] {
        let series = format!("ssegate_streams_total{{outcome=\"{outcome}\",route=\"chat\"}}");
        assert_eq!(proxy.wait_metric(&series, n).await, n, "{outcome}");
    }
    assert_eq!(
        proxy.metric("ssegate_streams_active{route=\"chat\"}").await,
        0.0
    );
}

#[tokio::test]
async fn streams_lists_an_open_stream_while_it_runs() {
    let up = Upstream::scripted(vec![
        sse_head("text/event-stream"),
        Step::Chunk(openai_chunk("one ")),
        Step::Chunk(openai_chunk("two")),
        Step::Hang(Duration::from_secs(30)),
    ])
    .await;
    let proxy =
        Proxy::start(&config(up.addr).replace("idle_timeout: 2s", "idle_timeout: 30s")).await;
    let mut r = send(proxy.addr, "GET", "/chat/live", &[], b"")
        .await
        .unwrap();
    let mut got = 0;
    while got < 2 {
        let (_, b) = r.next_chunk().await.unwrap().unwrap();
        got += b.windows(6).filter(|w| w == b"data: ").count();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, text) = get(proxy.admin, "/streams").await.unwrap();
    assert_eq!(status, 200);
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    let row = &rows[0];
    assert_eq!(rows.as_array().unwrap().len(), 1, "{text}");
    assert_eq!(row["route"], "chat");
    assert_eq!(row["client"], "127.0.0.1");
    assert_eq!(row["upstream"], up.addr.to_string());
    assert_eq!(row["events"], 2);
    assert_eq!(row["output_chars"], 7);
    assert!(row["bytes"].as_u64().unwrap() > 0);
    assert!(row["age_ms"].as_u64().unwrap() >= 100, "{text}");
    assert!(row["last_event_age_ms"].as_u64().is_some(), "{text}");
    assert!(row["id"].as_u64().is_some());
    drop(r);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while get(proxy.admin, "/streams").await.unwrap().1 != "[]" {
        assert!(std::time::Instant::now() < deadline, "stream not removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
