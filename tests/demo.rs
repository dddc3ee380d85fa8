//! `ssegate demo`, the README's first command: tokens stream through with nothing else running.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_streams_a_chat_completion_and_measures_it() {
    let [listen, admin] = free_addrs();
    let child = Command::new(env!("CARGO_BIN_EXE_ssegate"))
        .args([
            "demo",
            "--listen",
            &listen.to_string(),
            "--admin",
            &admin.to_string(),
        ])
        .args(["--token-interval", "30ms", "--load-delay", "1300ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _demo = Demo(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(get(admin, "/healthz").await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "demo did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = br#"{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let t0 = Instant::now();
    let mut r = send(
        listen,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        body,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let mut text = String::new();
    let mut arrivals = Vec::new();
    while let Some(c) = r.next_chunk().await {
        let (at, b) = c.unwrap();
        arrivals.push(at);
        text.push_str(&String::from_utf8_lossy(&b));
    }
    assert!(
        text.contains(": keep-alive\n\n"),
        "heartbeats while the model loads:\n{text}"
    );
    assert!(text.contains("\"content\":\"Hello \""), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let spread = arrivals.last().unwrap().duration_since(arrivals[1]);
    assert!(
        spread > Duration::from_millis(500),
        "tokens arrive over time, not at once ({spread:?})"
    );
    assert!(
        t0.elapsed() > Duration::from_millis(1300),
        "the first request waits for the model to load"
    );

    let (status, json) = {
        let r = send(
            listen,
            "POST",
            "/v1/chat/completions",
            &[],
            br#"{"stream":false,"max_tokens":3}"#,
        )
        .await
        .unwrap();
        let ct = r.header("content-type").map(str::to_string);
        assert_eq!(
            ct.as_deref(),
            Some("application/json"),
            "plain JSON is left alone on the stream route"
        );
        (r.status, r.collect().await.unwrap())
    };
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from ssegate! "
    );

    let completed = "ssegate_streams_total{outcome=\"completed\",route=\"chat\"}";
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let m = get(admin, "/metrics").await.unwrap().1;
        if metric_value(&m, completed) == 1.0 || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(metric_value(&metrics, completed), 1.0);
    assert!(
        metric_value(
            &metrics,
            "ssegate_stream_output_chars_total{route=\"chat\"}"
        ) > 100.0
    );
    assert!(
        metric_value(
            &metrics,
            "ssegate_stream_tokens_total{route=\"chat\",type=\"output\"}"
        ) > 10.0
    );
    assert!(metric_value(&metrics, "ssegate_heartbeats_total{route=\"chat\"}") >= 1.0);
}
