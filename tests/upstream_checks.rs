//! Keep-warm requests and health checks against real servers.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const BODY: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":1}"#;

#[tokio::test]
async fn keep_warm_reaches_each_server_at_the_interval() {
    let answer = plain(200, "application/json", "{\"choices\":[]}");
    let a = Upstream::scripted(answer.clone()).await;
    let b = Upstream::scripted(answer).await;
    let dead = free_addr();
    let cfg = format!(
        "upstreams:\n  llm:\n    servers: [\"{}\", \"{}\"]\n    keep_warm:\n      method: POST\n      path: /v1/chat/completions\n      body: '{BODY}'\n      interval: 300ms\n  cold:\n    servers: [\"{dead}\"]\n    connect_timeout: 200ms\n    keep_warm:\n      path: /warm\n      interval: 200ms\nroutes:\n  - path: /\n    upstream: llm\n",
        a.addr, b.addr
    );
    let proxy = Proxy::start(&cfg).await;
    tokio::time::sleep(Duration::from_millis(1700)).await;
    for up in [&a, &b] {
        let reqs = up.requests.lock().unwrap().clone();
        assert!(
            (4..=8).contains(&reqs.len()),
            "{} keep-warm requests in 1.7 s",
            reqs.len()
        );
        for r in &reqs {
            assert_eq!(
                (r.method.as_str(), r.path.as_str()),
                ("POST", "/v1/chat/completions")
            );
            assert_eq!(r.body, BODY.as_bytes());
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
        for w in reqs.windows(2) {
            let gap = w[1].at.duration_since(w[0].at);
            assert!(
                gap >= Duration::from_millis(250) && gap < Duration::from_millis(900),
                "{gap:?} between keep-warms"
            );
        }
    }
    let m = proxy.metrics().await;
    for up in [&a, &b] {
        let series = format!(
            "ssegate_keep_warm_seconds{{server=\"{}\",upstream=\"llm\"}}",
            up.addr
        );
        assert!(m.contains(&series), "{series}");
        assert_eq!(
            metric_value(
                &m,
                &format!(
                    "ssegate_keep_warm_failures_total{{server=\"{}\",upstream=\"llm\"}}",
                    up.addr
                )
            ),
            0.0
        );
    }
    let failures = metric_value(
        &m,
        &format!("ssegate_keep_warm_failures_total{{server=\"{dead}\",upstream=\"cold\"}}"),
    );
    assert!(failures >= 3.0, "{failures} failures counted");
    let log = proxy.log_text();
    let lines = log
        .lines()
        .filter(|l| l.contains("keep-warm of cold") && l.contains("failing"))
        .count();
    assert_eq!(
        lines, 1,
        "a failure is logged once per change of state:\n{log}"
    );
}

#[tokio::test]
async fn unhealthy_server_is_skipped_and_readmitted() {
    let sick = Arc::new(AtomicBool::new(true));
    let healthy = Upstream::start(|_| plain(200, "text/plain", "a")).await;
    let flag = sick.clone();
    let flaky = Upstream::start(move |r| {
        if r.path == "/healthz" && flag.load(Ordering::Relaxed) {
            plain(503, "text/plain", "loading")
        } else {
            plain(200, "text/plain", "b")
        }
    })
    .await;
    let cfg = format!(
        "upstreams:\n  app:\n    servers: [\"{}\", \"{}\"]\n    health_check: {{ path: /healthz, interval: 200ms }}\nroutes:\n  - path: /\n    upstream: app\n",
        healthy.addr, flaky.addr
    );
    let proxy = Proxy::start(&cfg).await;
    let gauge = format!(
        "ssegate_upstream_healthy{{server=\"{}\",upstream=\"app\"}}",
        flaky.addr
    );
    assert_eq!(proxy.wait_metric(&gauge, 0.0).await, 0.0);
    let mut answers = String::new();
    for _ in 0..8 {
        answers += &get(proxy.addr, "/x").await.unwrap().1;
    }
    assert_eq!(answers, "aaaaaaaa", "no requests to the failing server");
    sick.store(false, Ordering::Relaxed);
    assert_eq!(proxy.wait_metric(&gauge, 1.0).await, 1.0);
    let mut answers = String::new();
    for _ in 0..8 {
        answers += &get(proxy.addr, "/x").await.unwrap().1;
    }
    assert!(answers.contains('b'), "readmitted: {answers}");
    let log = proxy.log_text();
    assert!(
        log.contains("unhealthy") && log.contains("healthy: new requests go to it again"),
        "{log}"
    );
}

#[tokio::test]
async fn when_every_server_fails_its_check_requests_still_go_somewhere() {
    let up = Upstream::start(|r| {
        if r.path == "/healthz" {
            plain(500, "text/plain", "no")
        } else {
            plain(200, "text/plain", "served")
        }
    })
    .await;
    let cfg = format!(
        "upstreams:\n  app:\n    servers: [\"{}\"]\n    health_check: {{ path: /healthz, interval: 200ms }}\nroutes:\n  - path: /\n    upstream: app\n",
        up.addr
    );
    let proxy = Proxy::start(&cfg).await;
    let gauge = format!(
        "ssegate_upstream_healthy{{server=\"{}\",upstream=\"app\"}}",
        up.addr
    );
    assert_eq!(proxy.wait_metric(&gauge, 0.0).await, 0.0);
    let t0 = Instant::now();
    assert_eq!(
        get(proxy.addr, "/x").await.unwrap(),
        (200, "served".to_string())
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
}
