//! Pacing: every event reaches the client as it is sent. In a binary of its own so that no
//! other test in the same process competes with its timing.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

fn stream_route(upstream: std::net::SocketAddr) -> String {
    format!(
        "upstreams:\n  backend:\n    servers: [\"{upstream}\"]\n    connect_timeout: 2s\nroutes:\n  - path: /api/chat/stream/\n    name: chat\n    upstream: backend\n    stream:\n      idle_timeout: 600s\n  - path: /\n    name: other\n    upstream: backend\n    read_timeout: 5s\n"
    )
}

#[tokio::test]
async fn every_event_reaches_the_client_as_it_is_sent() {
    let mut script = vec![sse_head("text/event-stream")];
    for i in 0..10 {
        script.push(Step::Sleep(Duration::from_millis(200)));
        script.push(Step::Chunk(format!("data: {{\"i\":{i}}}\n\n").into_bytes()));
    }
    script.push(Step::End);
    let mut up = Upstream::scripted(script).await;
    let proxy = Proxy::start(&stream_route(up.addr)).await;
    for path in ["/api/chat/stream/x", "/plain-route-sse"] {
        let mut resp = send(proxy.addr, "GET", path, &[], b"").await.unwrap();
        assert_eq!(resp.status, 200);
        let mut arrivals = Vec::new();
        let mut text = Vec::new();
        while let Some(c) = resp.next_chunk().await {
            let (at, bytes) = c.unwrap();
            // one event can only be split, never merged with the next: they are 200 ms apart
            for _ in 0..bytes.iter().filter(|&&b| b == b'}').count() {
                arrivals.push(at);
            }
            text.extend_from_slice(&bytes);
        }
        let mut sent = Vec::new();
        while sent.len() < 10 {
            let s = up
                .wait_for(Duration::from_secs(5), |s| match s {
                    Seen::Sent(i, at) => Some((*i, *at)),
                    _ => None,
                })
                .await
                .expect("upstream sent");
            sent.push(s.1);
        }
        assert_eq!(
            arrivals.len(),
            10,
            "{path}: {}",
            String::from_utf8_lossy(&text)
        );
        for (i, (s, a)) in sent.iter().zip(&arrivals).enumerate() {
            let delay = a.saturating_duration_since(*s);
            assert!(
                delay < Duration::from_millis(100),
                "{path}: event {i} took {delay:?}"
            );
        }
    }
}
