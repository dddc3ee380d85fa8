//! Streams through the real binary: pacing, headers, timeouts, byte exactness, hang-ups.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

fn stream_route(upstream: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "upstreams:\n  backend:\n    servers: [\"{upstream}\"]\n    connect_timeout: 2s\n\
routes:\n  - path: /api/chat/stream/\n    name: chat\n    upstream: backend\n{extra}    stream:\n      idle_timeout: 600s
  - path: /\n    name: other\n    upstream: backend\n    read_timeout: 5s\n"
    )
}

#[tokio::test]
async fn stream_route_fixes_headers() {
    let mut script = vec![Step::Raw(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: 12\r\n\r\n"
            .to_vec(),
    )];
    script.push(Step::Raw(b"data: hi\n\n\n\n".to_vec()));
    let up = Upstream::scripted(script).await;
    let proxy = Proxy::start(&stream_route(up.addr, "")).await;
    let resp = send(proxy.addr, "GET", "/api/chat/stream/", &[], b"")
        .await
        .unwrap();
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert_eq!(resp.header("cache-control"), Some("no-cache"));
    assert_eq!(resp.header("x-accel-buffering"), Some("no"));
    assert_eq!(resp.header("content-length"), None);
    assert_eq!(resp.collect().await.unwrap(), b"data: hi\n\n\n\n");
}

#[tokio::test]
async fn silence_outlives_read_timeout_and_is_cut_at_idle_timeout() {
    let up = Upstream::scripted(vec![
        sse_head("text/event-stream"),
        Step::Chunk(b"data: first\n\n".to_vec()),
        Step::Hang(Duration::from_secs(30)),
    ])
    .await;
    let cfg = format!(
        "upstreams:\n  backend:\n    servers: [\"{}\"]\nroutes:\n  - path: /\n    name: chat\n    upstream: backend\n    read_timeout: 1s\n    stream:\n      idle_timeout: 3s\n",
        up.addr
    );
    let proxy = Proxy::start(&cfg).await;
    let t0 = Instant::now();
    let mut resp = send(proxy.addr, "POST", "/chat", &[], b"{}").await.unwrap();
    let first = resp.next_chunk().await.unwrap().unwrap();
    assert_eq!(&first.1[..], b"data: first\n\n");
    let end = resp.next_chunk().await;
    let cut = t0.elapsed();
    assert!(
        !matches!(end, Some(Ok(_))),
        "no more data expected: {end:?}"
    );
    assert!(
        cut >= Duration::from_millis(2800),
        "cut too early, at {cut:?} (read_timeout is 1s)"
    );
    assert!(cut < Duration::from_secs(8), "cut too late, at {cut:?}");
    let series = "ssegate_streams_total{outcome=\"idle_timeout\",route=\"chat\"}";
    assert_eq!(proxy.wait_metric(series, 1.0).await, 1.0);
}

/// A deterministic xorshift, so a failure can be replayed.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[tokio::test]
async fn multi_megabyte_body_passes_byte_for_byte() {
    let mut body = Vec::new();
    let mut i = 0;
    while body.len() < 3 << 20 {
        body.extend_from_slice(
            format!("id: {i}\r\nevent: token\r\ndata: {{\"content\":\"héllo wörld — 日本語 🎉 {i}\"}}\r\n\r\n").as_bytes(),
        );
        i += 1;
    }
    let mut chunks = Vec::new();
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut at = 0;
    while at < body.len() {
        let n = (1 + rng(&mut seed) % 9000) as usize;
        let end = (at + n).min(body.len());
        chunks.push(body[at..end].to_vec());
        at = end;
    }
    assert!(
        chunks.iter().any(|c| c.last() == Some(&b'\r')),
        "some chunk must end between CR and LF"
    );
    assert!(
        chunks.iter().any(|c| std::str::from_utf8(c).is_err()),
        "some chunk must split a UTF-8 character"
    );
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let up = Upstream::scripted(sse_script(&refs)).await;
    let proxy = Proxy::start(&stream_route(up.addr, "")).await;
    for path in ["/api/chat/stream/big", "/big"] {
        let got = send(proxy.addr, "GET", path, &[], b"")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(got.len(), body.len(), "{path}");
        assert_eq!(Sha256::digest(&got), Sha256::digest(&body), "{path}");
    }
}

#[tokio::test]
async fn client_hang_up_closes_the_upstream_within_a_second() {
    let mut up = Upstream::scripted(vec![
        sse_head("text/event-stream"),
        Step::Chunk(b"data: thinking\n\n".to_vec()),
        Step::AwaitClose,
    ])
    .await;
    let proxy = Proxy::start(&stream_route(up.addr, "")).await;
    for path in ["/api/chat/stream/", "/plain"] {
        let mut resp = send(
            proxy.addr,
            "POST",
            path,
            &[("content-type", "application/json")],
            b"{}",
        )
        .await
        .unwrap();
        resp.next_chunk().await.unwrap().unwrap();
        let hung_up = Instant::now();
        drop(resp);
        let closed = up
            .wait_for(Duration::from_secs(5), |s| match s {
                Seen::Closed(at) => Some(*at),
                _ => None,
            })
            .await
            .expect("upstream saw the close");
        let after = closed.saturating_duration_since(hung_up);
        assert!(
            after < Duration::from_secs(1),
            "{path}: upstream closed {after:?} after the client"
        );
    }
    let closed = "ssegate_streams_total{outcome=\"client_closed\",route=\"chat\"}";
    assert_eq!(proxy.wait_metric(closed, 1.0).await, 1.0);
    assert_eq!(
        proxy
            .wait_metric("ssegate_streams_active{route=\"chat\"}", 0.0)
            .await,
        0.0
    );
    assert_eq!(
        proxy
            .wait_metric("ssegate_streams_active{route=\"other\"}", 0.0)
            .await,
        0.0
    );
}
