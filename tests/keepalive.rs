//! Heartbeats and early headers through the real binary.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

const HB: &[u8] = b": keep-alive\n\n";

fn route(up: std::net::SocketAddr, stream: &str) -> String {
    format!("upstreams:\n  llm:\n    servers: [\"{up}\"]\n    connect_timeout: 1s\nroutes:\n  - path: /\n    name: chat\n    upstream: llm\n    stream:\n{stream}")
}

/// Reads the whole body, noting when each heartbeat and each other piece arrived.
async fn timeline(mut r: Streaming) -> (Vec<(Instant, Vec<u8>)>, Result<(), String>) {
    let mut pieces = Vec::new();
    loop {
        match r.next_chunk().await {
            None => return (pieces, Ok(())),
            Some(Err(e)) => return (pieces, Err(e)),
            Some(Ok((at, b))) => pieces.push((at, b.to_vec())),
        }
    }
}

fn without_heartbeats(pieces: &[(Instant, Vec<u8>)]) -> Vec<u8> {
    let all: Vec<u8> = pieces.iter().flat_map(|(_, b)| b.clone()).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < all.len() {
        if all[i..].starts_with(HB) {
            i += HB.len();
        } else {
            out.push(all[i]);
            i += 1;
        }
    }
    out
}

fn heartbeat_times(pieces: &[(Instant, Vec<u8>)]) -> Vec<Instant> {
    pieces
        .iter()
        .filter(|(_, b)| b == HB)
        .map(|(t, _)| *t)
        .collect()
}

#[tokio::test]
async fn heartbeats_before_the_first_token_and_between_tokens() {
    let up = Upstream::scripted(vec![
        sse_head("text/event-stream"),
        Step::Sleep(Duration::from_millis(1100)), // the model is thinking
        Step::Chunk(b"data: {\"type\":\"chunk\",\"content\":\"a\"}\n\n".to_vec()),
        Step::Sleep(Duration::from_millis(1100)),
        Step::Chunk(b"data: {\"type\":\"chunk\",\"content\":\"b\"}\n\n".to_vec()),
        Step::Chunk(b"data: {\"type\":\"done\"}\n\n".to_vec()),
        Step::End,
    ])
    .await;
    let proxy = Proxy::start(&route(
        up.addr,
        "      idle_timeout: 10s\n      heartbeat: 300ms\n",
    ))
    .await;
    let t0 = Instant::now();
    let r = send(proxy.addr, "GET", "/", &[], b"").await.unwrap();
    let (pieces, end) = timeline(r).await;
    end.unwrap();
    let hbs = heartbeat_times(&pieces);
    let first_event = pieces.iter().find(|(_, b)| b != HB).unwrap().0;
    let before: Vec<_> = hbs.iter().filter(|t| **t < first_event).collect();
    let between = hbs.len() - before.len();
    assert!(
        (2..=4).contains(&before.len()),
        "{} heartbeats before the first token",
        before.len()
    );
    assert!(
        (2..=4).contains(&between),
        "{between} heartbeats between tokens"
    );
    let first = before[0].duration_since(t0);
    assert!(
        first >= Duration::from_millis(250) && first < Duration::from_millis(900),
        "first heartbeat at {first:?}"
    );
    for w in hbs.windows(2) {
        let gap = w[1].duration_since(w[0]);
        if gap < Duration::from_millis(900) {
            assert!(
                gap >= Duration::from_millis(250),
                "heartbeats {gap:?} apart"
            );
        }
    }
    // A heartbeat comes a period after the last bytes of any kind: a token restarts the clock.
    for w in pieces.windows(2) {
        if w[1].1 == HB {
            let gap = w[1].0.duration_since(w[0].0);
            assert!(
                gap >= Duration::from_millis(250),
                "heartbeat {gap:?} after the last write"
            );
        }
    }
    assert_eq!(
        without_heartbeats(&pieces),
        b"data: {\"type\":\"chunk\",\"content\":\"a\"}\n\ndata: {\"type\":\"chunk\",\"content\":\"b\"}\n\ndata: {\"type\":\"done\"}\n\n"
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric_value(&m, "ssegate_heartbeats_total{route=\"chat\"}"),
        hbs.len() as f64
    );
    assert_eq!(
        metric_value(&m, "ssegate_stream_events_total{route=\"chat\"}"),
        3.0,
        "heartbeats are not events"
    );
    assert_eq!(
        metric_value(&m, "ssegate_stream_chunks_total{route=\"chat\"}"),
        3.0,
        "nor chunks"
    );
    let bytes = metric_value(&m, "ssegate_stream_bytes_total{route=\"chat\"}");
    assert_eq!(bytes, without_heartbeats(&pieces).len() as f64, "nor bytes");
}

#[tokio::test]
async fn no_heartbeat_inside_an_event_and_bytes_stay_exact() {
    let up = Upstream::scripted(vec![
        sse_head("text/event-stream"),
        Step::Chunk(b"event: token\r\ndata: hel".to_vec()),
        Step::Sleep(Duration::from_millis(800)), // silent mid-line
        Step::Chunk(b"lo\r\n".to_vec()),
        Step::Sleep(Duration::from_millis(800)), // silent between two lines of one event
        Step::Chunk(b"data: world\r\n\r\n".to_vec()),
        Step::Sleep(Duration::from_millis(800)), // silent at a boundary: heartbeats allowed
        Step::Chunk(b"data: [DONE]\r".to_vec()),
        Step::Sleep(Duration::from_millis(800)), // silent after a CR whose LF may follow
        Step::Chunk(b"\n\r\n".to_vec()),
        Step::End,
    ])
    .await;
    let proxy = Proxy::start(&route(
        up.addr,
        "      idle_timeout: 10s\n      heartbeat: 200ms\n",
    ))
    .await;
    let r = send(proxy.addr, "GET", "/", &[], b"").await.unwrap();
    let (pieces, end) = timeline(r).await;
    end.unwrap();
    let all: Vec<u8> = pieces.iter().flat_map(|(_, b)| b.clone()).collect();
    let text = String::from_utf8_lossy(&all);
    let upstream = b"event: token\r\ndata: hello\r\ndata: world\r\n\r\ndata: [DONE]\r\n\r\n";
    assert_eq!(without_heartbeats(&pieces), upstream, "{text}");
    let boundary = text.find("world\r\n\r\n").unwrap() + "world\r\n\r\n".len();
    let hb_at: Vec<usize> = text
        .match_indices(": keep-alive\n\n")
        .map(|(i, _)| i)
        .collect();
    assert!(!hb_at.is_empty(), "heartbeats at the boundary: {text:?}");
    assert!(
        hb_at.iter().all(|&i| i >= boundary),
        "a heartbeat inside an event: {text:?}"
    );
    let done = text.find("[DONE]\r").unwrap();
    assert!(
        hb_at.iter().all(|&i| i < done),
        "none after the lone CR: {text:?}"
    );
}

#[tokio::test]
async fn heartbeats_do_not_extend_the_idle_timeout() {
    let up = Upstream::scripted(vec![
        sse_head("text/event-stream"),
        Step::Chunk(b"data: x\n\n".to_vec()),
        Step::Hang(Duration::from_secs(30)),
    ])
    .await;
    let proxy = Proxy::start(&route(
        up.addr,
        "      idle_timeout: 1500ms\n      heartbeat: 200ms\n",
    ))
    .await;
    let t0 = Instant::now();
    let r = send(proxy.addr, "GET", "/", &[], b"").await.unwrap();
    let (pieces, end) = timeline(r).await;
    let took = t0.elapsed();
    assert!(end.is_err(), "the stream is cut, not ended cleanly");
    assert!(heartbeat_times(&pieces).len() >= 4, "heartbeats were sent");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
        "cut at {took:?}"
    );
    let idle = "ssegate_streams_total{outcome=\"idle_timeout\",route=\"chat\"}";
    assert_eq!(proxy.wait_metric(idle, 1.0).await, 1.0);
}

#[tokio::test]
async fn early_headers_answer_at_once_and_heartbeat_while_the_model_loads() {
    let up = Upstream::scripted({
        let mut s = vec![Step::Sleep(Duration::from_millis(1200))]; // loading, no headers yet
        s.extend(sse_script(&[
            b"data: {\"type\":\"chunk\",\"content\":\"ready\"}\n\n",
            b"data: {\"type\":\"done\"}\n\n",
        ]));
        s
    })
    .await;
    let proxy = Proxy::start(&route(
        up.addr,
        "      idle_timeout: 10s\n      heartbeat: 300ms\n      early_headers: true\n",
    ))
    .await;
    let t0 = Instant::now();
    let r = send(proxy.addr, "POST", "/", &[], b"{}").await.unwrap();
    let head = t0.elapsed();
    assert!(head < Duration::from_millis(500), "headers after {head:?}");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("x-accel-buffering"), Some("no"));
    let (pieces, end) = timeline(r).await;
    end.unwrap();
    assert!(
        heartbeat_times(&pieces).len() >= 2,
        "heartbeats while loading"
    );
    assert_eq!(
        without_heartbeats(&pieces),
        b"data: {\"type\":\"chunk\",\"content\":\"ready\"}\n\ndata: {\"type\":\"done\"}\n\n"
    );
    let done = "ssegate_streams_total{outcome=\"completed\",route=\"chat\"}";
    assert_eq!(proxy.wait_metric(done, 1.0).await, 1.0);
}

#[tokio::test]
async fn early_headers_report_upstream_failures_in_band() {
    let failing = Upstream::scripted(plain(
        500,
        "application/json",
        "{\"detail\":\"model crashed\"}",
    ))
    .await;
    let silent = Upstream::scripted(vec![Step::Hang(Duration::from_secs(30))]).await;
    let dead = free_addr();
    let cfg = format!(
        "upstreams:\n  failing:\n    servers: [\"{}\"]\n  silent:\n    servers: [\"{}\"]\n  dead:\n    servers: [\"{dead}\"]\n    connect_timeout: 1s\nroutes:\n",
        failing.addr, silent.addr
    ) + &["failing", "silent", "dead"]
        .map(|u| format!("  - path: /{u}\n    name: {u}\n    upstream: {u}\n    read_timeout: 1s\n    stream:\n      idle_timeout: 10s\n      heartbeat: 200ms\n      early_headers: true\n"))
        .concat();
    let proxy = Proxy::start(&cfg).await;
    for (path, status, outcome) in [
        ("/failing", 500, "upstream_error"),
        ("/silent", 504, "idle_timeout"),
        ("/dead", 502, "upstream_error"),
    ] {
        let r = send(proxy.addr, "POST", path, &[], b"{}").await.unwrap();
        assert_eq!(r.status, 200, "{path}");
        let (pieces, end) = timeline(r).await;
        end.expect("the stream ends cleanly after the error event");
        let body = String::from_utf8(without_heartbeats(&pieces)).unwrap();
        let data = body
            .strip_prefix("event: error\ndata: ")
            .and_then(|b| b.strip_suffix("\n\n"))
            .unwrap_or_else(|| panic!("{path}: {body:?}"));
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"], "error", "{path}");
        assert_eq!(v["status"], status, "{path}: {v}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{path}: {v}"
        );
        let series = format!(
            "ssegate_streams_total{{outcome=\"{outcome}\",route=\"{}\"}}",
            &path[1..]
        );
        assert_eq!(proxy.wait_metric(&series, 1.0).await, 1.0, "{path}");
    }
}
