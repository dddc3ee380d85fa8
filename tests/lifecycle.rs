//! The command line and the process: `check`, admin isolation, graceful shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

const GOOD: &str = "listen:\n  - addr: 127.0.0.1:18080\nupstreams:\n  backend:\n    servers: [\"127.0.0.1:8000\"]\nroutes:\n  - path: /\n    upstream: backend\n";

fn check(yaml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, yaml).unwrap();
    ssegate(&["check", "-c", path.to_str().unwrap()])
}

#[test]
fn check_prints_a_summary_of_a_good_config() {
    let (code, out, err) = check(GOOD);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("127.0.0.1:18080"), "{out}");
    assert!(out.contains("backend"), "{out}");
    let (code, out, _) = ssegate(&["check", "-c", "conf/ssegate.yaml"]);
    assert_eq!(code, 0, "the shipped example config is valid");
    let stream = out.find("/api/chat/stream/").unwrap();
    let api = out
        .find("/api/ ")
        .or_else(|| out.find("/api/\n"))
        .unwrap_or(usize::MAX);
    assert!(stream < api, "routes in match order:\n{out}");
}

#[test]
fn every_config_error_names_file_line_and_key() {
    // (yaml, line, key or value that the message must name)
    let cases: &[(&str, &str, &str)] = &[
        ("routes:\n  - path: /\n    upstream: nope\n", ":3:", "unknown upstream \"nope\""),
        ("routes:\n  - path: /\n    upstream: backend\n  - path: /\n    upstream: backend\n", ":4:", "routes[1]"),
        ("routes:\n  - path: /\n    upstream: backend\n    read_timeout: 5x\n", ":4:", "5x"),
        ("routes:\n  - path: /\n    upstream: backend\n    colour: blue\n", ":4:", "colour"),
        ("routes:\n  - path: /\n    upstream: backend\n    stream:\n      idle_timeout: forever\n", ":5:", "forever"),
    ];
    let head = "listen:\n  - addr: 127.0.0.1:18080\nupstreams:\n  backend:\n    servers: [\"127.0.0.1:8000\"]\n";
    let offset = head.lines().count();
    for (tail, line, needle) in cases {
        let (code, out, err) = check(&format!("{head}{tail}"));
        assert_eq!(code, 1, "{tail}: {out}");
        let want_line = format!(
            ":{}:",
            line.trim_matches(':').parse::<usize>().unwrap() + offset
        );
        assert!(err.contains("bad.yaml"), "names the file: {err}");
        assert!(err.contains(&want_line), "names line {want_line}: {err}");
        assert!(err.contains(needle), "names {needle}: {err}");
        assert_eq!(err.lines().count(), 1, "one message: {err}");
    }
    let whole: &[(&str, &str)] = &[
        ("listen:\n  - addr: 127.0.0.1:99999\nupstreams: {}\nroutes: []\n", "127.0.0.1:99999"),
        ("listen:\n  - addr: 127.0.0.1:18080\nupstreams:\n  b:\n    servers: []\nroutes:\n  - path: /\n    upstream: b\n", "servers"),
        ("listen:\n  - addr: 127.0.0.1:18080\nupstreams:\n  b:\n    servers: [\"nohostport\"]\nroutes:\n  - path: /\n    upstream: b\n", "nohostport"),
        ("listen: [\n", "YAML"),
    ];
    for (yaml, needle) in whole {
        let (code, _, err) = check(yaml);
        assert_eq!(code, 1, "{yaml}");
        assert!(err.contains("bad.yaml:"), "{err}");
        assert!(err.contains(needle), "names {needle}: {err}");
    }
    let (code, _, err) = ssegate(&["check", "-c", "/nonexistent/ssegate.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/ssegate.yaml"), "{err}");
}

#[tokio::test]
async fn admin_paths_are_never_served_on_a_public_listener() {
    let up = Upstream::scripted(plain(200, "text/plain", "from the app")).await;
    let cfg = format!(
        "upstreams:\n  app:\n    servers: [\"{}\"]\nroutes:\n  - path: /api/\n    upstream: app\n",
        up.addr
    );
    let proxy = Proxy::start(&cfg).await;
    for path in ["/metrics", "/healthz", "/streams"] {
        let (status, body) = get(proxy.addr, path).await.unwrap();
        assert_eq!(status, 404, "{path} on the public listener: {body}");
        let (status, _) = get(proxy.admin, path).await.unwrap();
        assert_eq!(status, 200, "{path} on the admin listener");
    }
    let (status, body) = get(proxy.admin, "/api/x").await.unwrap();
    assert_eq!(status, 404, "the admin listener proxies nothing: {body}");
    assert_eq!(get(proxy.admin, "/healthz").await.unwrap().1, "ok\n");
}

#[tokio::test]
async fn the_descriptor_table_is_sized_before_the_first_client() {
    // Grown on demand, each doubling of the table stops every thread of the process for an
    // RCU grace period (15-23 ms measured): a burst of new streams would wait for it.
    let up = Upstream::scripted(plain(200, "text/plain", "ok")).await;
    let cfg = format!(
        "upstreams:\n  app:\n    servers: [\"{}\"]\nroutes:\n  - path: /\n    upstream: app\n",
        up.addr
    );
    let proxy = Proxy::start(&cfg).await;
    let limit = proc_number(proxy.pid(), "limits", "Max open files");
    let want = limit.min(ssegate::fds::MAX_RESERVED);
    let table = proc_number(proxy.pid(), "status", "FDSize:");
    assert!(table >= want, "table {table} < {want} (limit {limit})");
}

#[tokio::test]
async fn sigterm_lets_open_streams_finish_then_exits() {
    let mut script = vec![sse_head("text/event-stream")];
    for i in 0..6 {
        script.push(Step::Chunk(format!("data: {i}\n\n").into_bytes()));
        script.push(Step::Sleep(Duration::from_millis(150)));
    }
    script.push(Step::Chunk(b"data: [DONE]\n\n".to_vec()));
    script.push(Step::End);
    let up = Upstream::scripted(script).await;
    let cfg = format!(
        "upstreams:\n  b:\n    servers: [\"{}\"]\nroutes:\n  - path: /\n    upstream: b\n    stream:\n      idle_timeout: 10s\n",
        up.addr
    );
    let mut proxy = Proxy::start(&cfg).await;
    let mut resp = send(proxy.addr, "GET", "/", &[], b"").await.unwrap();
    resp.next_chunk().await.unwrap().unwrap();
    proxy.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(proxy.addr).await.is_err(),
        "no new connections once shutting down"
    );
    let rest = resp
        .collect()
        .await
        .expect("the open stream runs to its end");
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"));
    let t0 = Instant::now();
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("exits once drained");
    assert!(status.success(), "{status}");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "does not sleep out the grace period"
    );
}

#[tokio::test]
async fn sigint_with_a_stuck_stream_exits_after_the_grace_period() {
    let up = Upstream::scripted(vec![
        sse_head("text/event-stream"),
        Step::Chunk(b"data: x\n\n".to_vec()),
        Step::Hang(Duration::from_secs(60)),
    ])
    .await;
    let cfg = format!(
        "upstreams:\n  b:\n    servers: [\"{}\"]\nroutes:\n  - path: /\n    upstream: b\n    stream:\n      idle_timeout: 60s\n",
        up.addr
    );
    let mut proxy = Proxy::start(&cfg).await; // shutdown_grace: 2s
    let mut resp = send(proxy.addr, "GET", "/", &[], b"").await.unwrap();
    resp.next_chunk().await.unwrap().unwrap();
    let t0 = Instant::now();
    proxy.signal("INT");
    let status = proxy.wait_exit(Duration::from_secs(10)).expect("exits");
    let took = t0.elapsed();
    assert!(status.success());
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(6),
        "{took:?}"
    );
}
