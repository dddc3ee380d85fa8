//! Plain proxying through the real binary: errors, limits, balancing, headers, WebSocket.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};

fn one_route(servers: &str, route_extra: &str) -> String {
    format!(
        "upstreams:\n  backend:\n    servers: [{servers}]\n    connect_timeout: 1s\n\
routes:\n  - path: /api/\n    name: api\n    upstream: backend\n{route_extra}"
    )
}

#[tokio::test]
async fn unknown_path_is_404_refused_upstream_is_502_silent_upstream_is_504() {
    let silent = Upstream::scripted(vec![Step::Hang(Duration::from_secs(30))]).await;
    let dead = free_addr();
    let cfg = format!(
        "upstreams:\n  dead:\n    servers: [\"{dead}\"]\n  silent:\n    servers: [\"{}\"]\n\
routes:\n  - path: /dead/\n    upstream: dead\n  - path: /silent/\n    upstream: silent\n    read_timeout: 1s
  - path: /silent-stream/\n    upstream: silent\n    read_timeout: 1s\n    stream:\n      idle_timeout: 60s\n",
        silent.addr
    );
    let proxy = Proxy::start(&cfg).await;
    let (status, body) = get(proxy.addr, "/nowhere").await.unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("Not Found"), "{body}");
    for path in ["/dead/x", "/dead/"] {
        let (status, body) = get(proxy.addr, path).await.unwrap();
        assert_eq!(status, 502, "{path}: {body}");
        assert!(body.starts_with("502 "), "{body}");
    }
    for path in ["/silent/x", "/silent-stream/x"] {
        let t0 = Instant::now();
        let (status, body) = get(proxy.addr, path).await.unwrap();
        assert_eq!(status, 504, "{path}: {body}");
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(6),
            "{path}: {took:?}"
        );
    }
    assert_eq!(
        proxy
            .wait_metric(
                "ssegate_requests_total{route=\"/dead/\",status=\"502\"}",
                2.0
            )
            .await,
        2.0
    );
    assert_eq!(
        proxy
            .wait_metric(
                "ssegate_requests_total{route=\"unmatched\",status=\"404\"}",
                1.0
            )
            .await,
        1.0
    );
    let log = proxy.log_text();
    assert!(
        log.contains("502") || log.contains("Connect"),
        "failures are logged:\n{log}"
    );
}

#[tokio::test]
async fn refused_server_is_retried_on_the_next() {
    let up = Upstream::scripted(plain(200, "text/plain", "alive")).await;
    let dead = free_addr();
    for route_extra in ["", "    stream:\n      idle_timeout: 10s\n"] {
        let cfg = one_route(&format!("\"{dead}\", \"{}\"", up.addr), route_extra)
            .replace("servers:", "balance: round_robin\n    servers:");
        let proxy = Proxy::start(&cfg).await;
        for _ in 0..4 {
            let (status, body) = get(proxy.addr, "/api/x").await.unwrap();
            assert_eq!(
                (status, body.as_str()),
                (200, "alive"),
                "route extra: {route_extra:?}"
            );
        }
    }
}

#[tokio::test]
async fn limits_answer_429_with_retry_after() {
    let up = Upstream::scripted(vec![
        sse_head("text/event-stream"),
        Step::Chunk(b"data: x\n\n".to_vec()),
        Step::Hang(Duration::from_secs(30)),
    ])
    .await;
    let cfg = format!(
        "upstreams:\n  backend:\n    servers: [\"{}\"]\nroutes:
  - path: /total/\n    upstream: backend\n    max_streams: 2\n    stream:\n      idle_timeout: 60s
  - path: /each/\n    upstream: backend\n    max_streams_per_client: 1\n    stream:\n      idle_timeout: 60s\n",
        up.addr
    );
    let proxy = Proxy::start(&cfg).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut r = send(proxy.addr, "GET", "/total/", &[], b"").await.unwrap();
        assert_eq!(r.status, 200);
        r.next_chunk().await.unwrap().unwrap();
        open.push(r);
    }
    let refused = send(proxy.addr, "GET", "/total/", &[], b"").await.unwrap();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("1"));
    let mut mine = send(proxy.addr, "GET", "/each/", &[], b"").await.unwrap();
    mine.next_chunk().await.unwrap().unwrap();
    let second = send(proxy.addr, "GET", "/each/", &[], b"").await.unwrap();
    assert_eq!(second.status, 429);
    let m = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "ssegate_rejected_total{reason=\"max_streams\",route=\"/total/\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &m,
            "ssegate_rejected_total{reason=\"max_streams_per_client\",route=\"/each/\"}"
        ),
        1.0
    );
    drop(open);
    drop(mine);
    // slots come back once the streams end
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = send(proxy.addr, "GET", "/total/", &[], b"").await.unwrap();
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn least_streams_spreads_long_streams() {
    let hold = vec![
        sse_head("text/event-stream"),
        Step::Chunk(b"data: x\n\n".to_vec()),
        Step::Hang(Duration::from_secs(30)),
    ];
    let a = Upstream::scripted(hold.clone()).await;
    let b = Upstream::scripted(hold).await;
    let cfg = one_route(
        &format!("\"{}\", \"{}\"", a.addr, b.addr),
        "    stream:\n      idle_timeout: 60s\n",
    );
    let proxy = Proxy::start(&cfg).await;
    let mut open = Vec::new();
    for _ in 0..6 {
        let mut r = send(proxy.addr, "GET", "/api/s", &[], b"").await.unwrap();
        r.next_chunk().await.unwrap().unwrap();
        open.push(r);
    }
    let (na, nb) = (
        a.requests.lock().unwrap().len(),
        b.requests.lock().unwrap().len(),
    );
    assert_eq!((na, nb), (3, 3), "six open streams split evenly");
    let streams = get(proxy.admin, "/streams").await.unwrap().1;
    let rows: serde_json::Value = serde_json::from_str(&streams).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 6, "{streams}");
}

#[tokio::test]
async fn forwarded_headers_from_untrusted_and_trusted_peers() {
    let up = Upstream::scripted(plain(200, "text/plain", "ok")).await;
    for (trusted, want_xff, want_real) in [
        ("[]", "127.0.0.1", "127.0.0.1"),
        ("[127.0.0.0/8]", "203.0.113.5, 127.0.0.1", "203.0.113.5"),
    ] {
        let cfg = format!(
            "trusted_proxies: {trusted}\n{}",
            one_route(&format!("\"{}\"", up.addr), "")
        )
            + "  - path: /s/\n    upstream: backend\n    stream:\n      idle_timeout: 10s\n";
        let proxy = Proxy::start(&cfg).await;
        for path in ["/api/h", "/s/h"] {
            up.requests.lock().unwrap().clear();
            let hs = [
                ("x-forwarded-for", "203.0.113.5"),
                ("connection", "keep-alive, x-drop"),
                ("x-drop", "1"),
                ("accept-encoding", "gzip, br"),
            ];
            let r = send(proxy.addr, "GET", path, &hs, b"").await.unwrap();
            assert_eq!(r.status, 200);
            r.collect().await.unwrap();
            let got = up.requests.lock().unwrap()[0].clone();
            assert_eq!(
                got.header("x-forwarded-for"),
                Some(want_xff),
                "{trusted} {path}"
            );
            assert_eq!(got.header("x-real-ip"), Some(want_real), "{trusted} {path}");
            assert_eq!(got.header("x-forwarded-proto"), Some("http"));
            assert_eq!(got.header("host"), Some("localhost"), "Host passes through");
            assert_eq!(
                got.header("x-drop"),
                None,
                "Connection-listed header is hop-by-hop"
            );
            // Only a stream goes uncompressed: a plain route's page may still be gzipped.
            let encoding = (path == "/api/h").then_some("gzip, br");
            assert_eq!(got.header("accept-encoding"), encoding, "{path}");
        }
    }
}

/// Sends `request` as raw bytes and reads the response head (up to its empty line), raw.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    sock.write_all(request).await.expect("sends");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf))
            .await
            .expect("a response head in time")
            .expect("reads");
        assert!(
            n > 0,
            "closed before the head: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn header_lines_keep_their_order_and_case_both_ways() {
    let up = Upstream::scripted(vec![Step::Raw(
        b"HTTP/1.1 200 Fine\r\nX-Up-Case: 1\r\ncontent-type: text/plain\r\n\
          x-up-case: 2\r\ncontent-length: 2\r\n\r\nok"
            .to_vec(),
    )])
    .await;
    let cfg = one_route(&format!("\"{}\"", up.addr), "")
        + "  - path: /s/\n    upstream: backend\n    stream:\n      idle_timeout: 10s\n";
    let proxy = Proxy::start(&cfg).await;
    for path in ["/api/h", "/s/h"] {
        up.requests.lock().unwrap().clear();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: app\r\nX-Two: a\r\nAccept: */*\r\nx-two: b\r\n\
             X-MiXeD: c\r\nConnection: close\r\n\r\n"
        );
        let head = raw_exchange(proxy.addr, request.as_bytes()).await;
        // The upstream's lines in their order and case; ssegate's own after them.
        let at = |line: &str| {
            head.find(line)
                .unwrap_or_else(|| panic!("{line:?} in {head}"))
        };
        assert!(head.starts_with("HTTP/1.1 200 Fine\r\n"), "{head}");
        assert!(at("X-Up-Case: 1\r\n") < at("x-up-case: 2\r\n"), "{head}");
        let got = up.requests.lock().unwrap()[0].clone();
        let names: Vec<&str> = got.headers.iter().map(|(k, _)| k.as_str()).collect();
        let end_to_end: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !n.starts_with("x-forwarded") && *n != "x-real-ip")
            .collect();
        assert_eq!(
            end_to_end,
            ["Host", "X-Two", "Accept", "x-two", "X-MiXeD"],
            "{path}: the client's lines as sent, less Connection"
        );
    }
}

#[tokio::test]
async fn websocket_echo_passes_both_ways() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(sock).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let cfg = format!(
        "upstreams:\n  ws:\n    servers: [\"{ws_addr}\"]\nroutes:\n  - path: /ws\n    upstream: ws\n    read_timeout: 5s
  - path: /stream-ws\n    upstream: ws\n    stream:\n      idle_timeout: 10s\n      heartbeat: 1s\n"
    );
    let proxy = Proxy::start(&cfg).await;
    for path in ["/ws", "/stream-ws"] {
        let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}{path}", proxy.addr))
            .await
            .unwrap();
        assert_eq!(resp.status(), 101);
        for i in 0..3 {
            ws.send(format!("hello {i}").into()).await.unwrap();
            let back = match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(m))) => m,
                other => panic!("{path} message {i}: {other:?}\n{}", proxy.log_text()),
            };
            assert_eq!(back.into_text().unwrap().as_str(), format!("hello {i}"));
        }
        ws.close(None).await.unwrap();
    }
}
