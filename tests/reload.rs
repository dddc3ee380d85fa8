//! SIGHUP: a route changed under load, open streams undisturbed, a bad config refused.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

fn slow_stream(tag: &str) -> Script {
    let mut s = vec![sse_head("text/event-stream")];
    for i in 0..8 {
        s.push(Step::Chunk(
            format!("data: {{\"type\":\"chunk\",\"content\":\"{tag}{i}\"}}\n\n").into_bytes(),
        ));
        s.push(Step::Sleep(Duration::from_millis(150)));
    }
    s.push(Step::Chunk(b"data: {\"type\":\"done\"}\n\n".to_vec()));
    s.push(Step::End);
    s
}

fn config(
    addr: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    up: std::net::SocketAddr,
) -> String {
    format!(
        "listen:\n  - addr: {addr}\nadmin:\n  addr: {admin}\nthreads: 2\nupstreams:\n  app:\n    servers: [\"{up}\"]\nroutes:\n  - path: /chat\n    name: chat\n    upstream: app\n    stream:\n      idle_timeout: 10s\n  - path: /ping\n    upstream: app\n"
    )
}

#[tokio::test]
async fn reload_changes_routes_and_open_streams_finish_undisturbed() {
    let old = Upstream::start(|r| {
        if r.path == "/ping" {
            plain(200, "text/plain", "old")
        } else {
            slow_stream("old")
        }
    })
    .await;
    let new = Upstream::start(|r| {
        if r.path == "/ping" {
            plain(200, "text/plain", "new")
        } else {
            slow_stream("new")
        }
    })
    .await;
    let [addr, admin] = free_addrs();
    let proxy = Proxy::start_raw(&config(addr, admin, old.addr), addr, admin).await;

    let mut open = Vec::new();
    for _ in 0..5 {
        let mut r = send(addr, "GET", "/chat", &[], b"").await.unwrap();
        let first = r.next_chunk().await.unwrap().unwrap().1;
        assert!(String::from_utf8_lossy(&first).contains("old0"));
        open.push(tokio::spawn(async move { r.collect().await }));
    }
    // Plain requests keep flowing while the config changes.
    let load = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..40 {
            let (status, body) = get(addr, "/ping").await.unwrap();
            assert_eq!(status, 200, "no request fails during the reload");
            seen.push(body);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.write_config(&config(addr, admin, new.addr));
    proxy.signal("HUP");

    for h in open {
        let rest = String::from_utf8(h.await.unwrap().expect("open stream finished")).unwrap();
        assert!(
            rest.contains("old7") && rest.ends_with("data: {\"type\":\"done\"}\n\n"),
            "{rest}"
        );
        assert!(
            !rest.contains("new"),
            "an open stream stays on its upstream"
        );
    }
    let seen = load.await.unwrap();
    assert_eq!(seen.first().map(String::as_str), Some("old"));
    assert_eq!(
        seen.last().map(String::as_str),
        Some("new"),
        "new requests follow the new config"
    );
    // The last stream is counted just after its client has read the end.
    let completed = proxy
        .wait_metric(
            "ssegate_streams_total{outcome=\"completed\",route=\"chat\"}",
            5.0,
        )
        .await;
    assert_eq!(completed, 5.0);
    let after = send(addr, "GET", "/chat", &[], b"")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&after).contains("new0"));

    // A config that does not validate is refused; the running one stays.
    proxy.write_config("listen: [\nthis is not yaml");
    proxy.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !proxy.log_text().contains("config refused") {
        assert!(
            std::time::Instant::now() < deadline,
            "refusal not logged:\n{}",
            proxy.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(addr, "/ping").await.unwrap(), (200, "new".to_string()));
    assert!(proxy.log_text().contains("SIGHUP: reloaded"));
}
