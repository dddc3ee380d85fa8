//! Hostile upstreams: whatever an upstream sends (or does not send), ssegate does not crash,
//! does not lose bytes, keeps its memory bounded, and other streams are not disturbed.
//!
//! Every test runs healthy streams on another route of the same process while the hostile
//! upstream does its worst, and checks that each of them completes byte-exact.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: u64 = 1 << 20;

/// Samples a process's RSS every 10 ms until stopped; returns the peak.
struct RssPeak {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssPeak {
    fn start(pid: u32) -> RssPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = rss(pid);
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss(pid));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak.max(rss(pid))
        });
        RssPeak { stop, task }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// The events of the healthy stream: 30 events 20 ms apart.
fn healthy_chunks() -> Vec<Vec<u8>> {
    (0..30)
        .map(|i| {
            format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"tok{i} \"}}}}]}}\n\n")
                .into_bytes()
        })
        .chain(std::iter::once(b"data: [DONE]\n\n".to_vec()))
        .collect()
}

async fn healthy_upstream() -> Upstream {
    let mut script = vec![sse_head("text/event-stream")];
    for c in healthy_chunks() {
        script.push(Step::Sleep(Duration::from_millis(20)));
        script.push(Step::Chunk(c));
    }
    script.push(Step::End);
    Upstream::scripted(script).await
}

/// Healthy streams run back to back beside a hostile one; each must be byte-exact.
struct Healthy {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<usize>,
}

impl Healthy {
    fn start(proxy: SocketAddr) -> Healthy {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let want = healthy_chunks().concat();
        let task = tokio::spawn(async move {
            let mut done = 0;
            while done == 0 || !flag.load(Ordering::Relaxed) {
                let resp = send(proxy, "GET", "/healthy/chat", &[], b"").await.unwrap();
                assert_eq!(resp.status, 200, "healthy stream status");
                let body = resp.collect().await.expect("healthy stream broke off");
                assert!(body == want, "healthy stream not byte-exact");
                done += 1;
            }
            done
        });
        Healthy { stop, task }
    }

    /// Stops after the stream in progress; returns how many completed.
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("healthy streams stuck")
            .expect("a healthy stream failed")
    }
}

/// `/hostile/` (stream route) and `/plain/` (ordinary route) on the hostile upstream,
/// `/healthy/` on the healthy one.
fn config(hostile: SocketAddr, healthy: SocketAddr) -> String {
    [
        "upstreams:".to_string(),
        "  hostile:".into(),
        format!("    servers: [\"{hostile}\"]"),
        "    connect_timeout: 2s".into(),
        "  healthy:".into(),
        format!("    servers: [\"{healthy}\"]"),
        "routes:".into(),
        "  - path: /hostile/".into(),
        "    name: hostile".into(),
        "    upstream: hostile".into(),
        "    read_timeout: 2s".into(),
        "    stream:".into(),
        "      idle_timeout: 30s".into(),
        "  - path: /plain/".into(),
        "    name: plain".into(),
        "    upstream: hostile".into(),
        "    read_timeout: 2s".into(),
        "  - path: /healthy/".into(),
        "    name: healthy".into(),
        "    upstream: healthy".into(),
        "    stream:".into(),
        "      idle_timeout: 30s".into(),
    ]
    .join("\n")
        + "\n"
}

async fn start(hostile: &Upstream) -> (Proxy, Upstream) {
    let healthy = healthy_upstream().await;
    let proxy = Proxy::start(&config(hostile.addr, healthy.addr)).await;
    // Warm up: the first streams allocate the runtime's buffers and pools.
    for _ in 0..2 {
        let r = send(proxy.addr, "GET", "/healthy/", &[], b"")
            .await
            .unwrap();
        r.collect().await.unwrap();
    }
    (proxy, healthy)
}

#[tokio::test]
async fn a_data_line_that_never_ends_keeps_memory_bounded() {
    const PIECE: usize = 64 << 10;
    const PIECES: usize = 1024; // 64 MiB of one `data:` line
    let up = Upstream::start(|_| {
        let mut s = vec![
            sse_head("text/event-stream"),
            Step::Chunk(b"data: ".to_vec()),
        ];
        s.extend((0..PIECES).map(|_| Step::Chunk(vec![b'x'; PIECE])));
        s.push(Step::End);
        s
    })
    .await;
    let (proxy, _healthy) = start(&up).await;
    let pid = proxy.pid();
    let before = rss(pid);
    let peak = RssPeak::start(pid);
    let healthy = Healthy::start(proxy.addr);

    let t0 = Instant::now();
    let mut resp = send(proxy.addr, "GET", "/hostile/endless", &[], b"")
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    let (mut got, mut prefix, mut all_x) = (0u64, Vec::new(), true);
    while let Some(c) = resp.next_chunk().await {
        let bytes = c.expect("the long line broke off").1;
        for &b in bytes.iter() {
            if prefix.len() < 6 {
                prefix.push(b);
            } else {
                all_x &= b == b'x';
            }
        }
        got += bytes.len() as u64;
    }
    let took = t0.elapsed();
    let peak = peak.finish().await;
    let after = rss(pid);
    let completed = healthy.finish().await;
    let total = 6 + (PIECE * PIECES) as u64;
    assert_eq!(got, total, "every byte of the line arrives");
    assert_eq!(prefix, b"data: ");
    assert!(all_x, "bytes changed on the way");
    let growth = peak.saturating_sub(before);
    eprintln!(
        "endless line: {} MiB in {took:?}; RSS before {:.1} MiB, peak {:.1} MiB (+{:.1} MiB), \
after {:.1} MiB; {completed} healthy streams beside it",
        total / MIB,
        before as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        growth as f64 / MIB as f64,
        after as f64 / MIB as f64,
    );
    // The parser keeps at most one event (1 MiB) before it skips it; Pingora's read and
    // write buffers are 64 KiB. 64 MiB passed through: anything buffered would show.
    assert!(
        growth < 8 * MIB,
        "RSS grew by {} KiB while 64 MiB of one line passed",
        growth / 1024
    );
    assert_eq!(
        proxy
            .wait_metric(
                "ssegate_stream_bytes_total{route=\"hostile\"}",
                total as f64
            )
            .await,
        total as f64
    );
    assert_eq!(
        proxy
            .metric("ssegate_stream_events_total{route=\"hostile\"}")
            .await,
        0.0,
        "an unterminated line is no event"
    );
}

#[tokio::test]
async fn invalid_utf8_and_broken_json_pass_through_byte_exact_and_count_as_events() {
    let chunks: Vec<&[u8]> = vec![
        b"data: \xff\xfe\x80 not utf-8\n\n",
        b"event: \xc3\x28\ndata: {\"choices\":[{\"delta\":{\"content\":\"cut\n\n",
        b"data: {\"choices\": [}]}\n\n",
        b"data: {\"choices\":[{\"delta\":{\"content\":\"\xff\xfe\"}}]}\n\n",
        b"id: \x00\xff\ndata: \x00\x01\x02\r\n\r\n",
        b"data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\n",
        b"data: {\"choices\":[{\"delta\":{\"content\":\"\\ud800\"}}]}\n\n",
        b"data: [DONE]\n\n",
    ];
    let want = chunks.concat();
    let up = Upstream::scripted(sse_script(&chunks)).await;
    let (proxy, _healthy) = start(&up).await;
    let healthy = Healthy::start(proxy.addr);
    for path in ["/hostile/x", "/plain/x"] {
        let resp = send(proxy.addr, "GET", path, &[], b"").await.unwrap();
        assert_eq!(resp.status, 200);
        let body = resp.collect().await.unwrap();
        assert!(body == want, "{path}: bytes changed on the way");
    }
    assert!(healthy.finish().await >= 1);
    for route in ["hostile", "plain"] {
        let series = |m: &str| format!("{m}{{route=\"{route}\"}}");
        assert_eq!(
            proxy
                .wait_metric(
                    &format!("ssegate_streams_total{{outcome=\"completed\",route=\"{route}\"}}"),
                    1.0
                )
                .await,
            1.0,
            "{route}: the [DONE] marker still counts"
        );
        let events = proxy.metric(&series("ssegate_stream_events_total")).await;
        assert_eq!(events, 8.0, "{route}: every event counts, parseable or not");
        let chars = proxy
            .metric(&series("ssegate_stream_output_chars_total"))
            .await;
        assert_eq!(chars, 2.0, "{route}: only \"ok\" is model text");
    }
}

#[tokio::test]
async fn a_hundred_thousand_tiny_chunks_per_second() {
    const BATCHES: usize = 200;
    const PER_BATCH: usize = 1000; // every 10 ms: 100,000 chunks per second offered
    let mut body = Vec::new();
    let mut script = vec![sse_head("text/event-stream")];
    for b in 0..BATCHES {
        let mut wire = Vec::new();
        for i in 0..PER_BATCH {
            let event = format!("data: {}\n\n", b * PER_BATCH + i);
            wire.extend_from_slice(format!("{:x}\r\n", event.len()).as_bytes());
            wire.extend_from_slice(event.as_bytes());
            wire.extend_from_slice(b"\r\n");
            body.extend_from_slice(event.as_bytes());
        }
        script.push(Step::Raw(wire));
        script.push(Step::Sleep(Duration::from_millis(10)));
    }
    script.push(Step::End);
    let up = Upstream::scripted(script).await;
    let (proxy, _healthy) = start(&up).await;
    let healthy = Healthy::start(proxy.addr);
    let t0 = Instant::now();
    let resp = send(proxy.addr, "GET", "/hostile/tiny", &[], b"")
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(120), resp.collect())
        .await
        .expect("the stream completes")
        .expect("the stream is whole");
    let took = t0.elapsed();
    assert_eq!(got.len(), body.len());
    assert!(got == body, "bytes changed on the way");
    assert!(healthy.finish().await >= 1);
    let n = (BATCHES * PER_BATCH) as f64;
    assert_eq!(
        proxy
            .wait_metric("ssegate_stream_events_total{route=\"hostile\"}", n)
            .await,
        n,
        "every event counted"
    );
    let chunks = proxy
        .metric("ssegate_stream_chunks_total{route=\"hostile\"}")
        .await;
    eprintln!(
        "tiny chunks: {n} chunks ({} bytes) in {took:?}; ssegate counted {chunks} chunks",
        body.len()
    );
    // One count per upstream body read: an HTTP chunk that straddles two socket reads is
    // passed on (and counted) as two pieces.
    assert!(
        chunks >= n && chunks < n * 1.1,
        "{chunks} chunks counted for {n}"
    );
    assert_eq!(
        proxy
            .metric("ssegate_stream_bytes_total{route=\"hostile\"}")
            .await,
        body.len() as f64
    );
}

#[tokio::test]
async fn response_headers_over_the_limit_get_a_clear_502() {
    let up = Upstream::start(|r| {
        let head = if r.path.ends_with("/big") {
            // Pingora's limit on a response head is 1 MiB (MAX_HEADER_SIZE).
            let mut h = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-big: ".to_vec();
            h.extend(std::iter::repeat_n(b'a', 2 << 20));
            h.extend_from_slice(b"\r\ncontent-length: 0\r\n\r\n");
            h
        } else {
            // More header lines than Pingora parses (MAX_HEADERS = 256).
            let mut h = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n".to_vec();
            for i in 0..300 {
                h.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
            }
            h.extend_from_slice(b"content-length: 0\r\n\r\n");
            h
        };
        vec![Step::Raw(head), Step::Hang(Duration::from_secs(5))]
    })
    .await;
    let (proxy, _healthy) = start(&up).await;
    let healthy = Healthy::start(proxy.addr);
    for path in ["/hostile/big", "/plain/big", "/hostile/many", "/plain/many"] {
        let t0 = Instant::now();
        let (status, body) = get(proxy.addr, path).await.unwrap();
        eprintln!("{path}: {status} {body:?} after {:?}", t0.elapsed());
        assert_eq!(status, 502, "{path}: {body}");
        assert!(body.starts_with("502 Bad Gateway"), "{path}: {body}");
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "{path}: answered at once"
        );
    }
    assert!(healthy.finish().await >= 1);
    for route in ["hostile", "plain"] {
        assert_eq!(
            proxy
                .wait_metric(
                    &format!("ssegate_requests_total{{route=\"{route}\",status=\"502\"}}"),
                    2.0
                )
                .await,
            2.0
        );
    }
}

#[tokio::test]
async fn a_stream_that_closes_mid_event_is_an_upstream_error() {
    let part: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"hel";
    let up = Upstream::scripted(vec![
        sse_head("text/event-stream"),
        Step::Chunk(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n".to_vec()),
        Step::Chunk(part.to_vec()),
        Step::Sleep(Duration::from_millis(100)),
        Step::Close,
    ])
    .await;
    let (proxy, _healthy) = start(&up).await;
    let healthy = Healthy::start(proxy.addr);
    for (path, route) in [("/hostile/x", "hostile"), ("/plain/x", "plain")] {
        let mut resp = send(proxy.addr, "GET", path, &[], b"").await.unwrap();
        assert_eq!(resp.status, 200);
        let mut got = Vec::new();
        let mut broke = None;
        while let Some(c) = resp.next_chunk().await {
            match c {
                Ok((_, b)) => got.extend_from_slice(&b),
                Err(e) => {
                    broke = Some(e);
                    break;
                }
            }
        }
        assert!(
            broke.is_some(),
            "{path}: the client must see a broken stream, not a clean end"
        );
        assert!(got.ends_with(part), "{path}: bytes before the break arrive");
        assert_eq!(
            proxy
                .wait_metric(
                    &format!(
                        "ssegate_streams_total{{outcome=\"upstream_error\",route=\"{route}\"}}"
                    ),
                    1.0
                )
                .await,
            1.0,
            "{path}"
        );
        assert_eq!(
            proxy
                .wait_metric(&format!("ssegate_streams_active{{route=\"{route}\"}}"), 0.0)
                .await,
            0.0
        );
    }
    assert!(healthy.finish().await >= 1);
}

/// Sends a GET on a raw connection and reads until the response head and `n` body bytes.
async fn raw_get(addr: SocketAddr, path: &str, n: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let k = s.read(&mut buf).await.unwrap();
        assert!(k > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..k]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
            if got.len() >= i + 4 + n {
                return s;
            }
        }
    }
}

#[tokio::test]
async fn an_upstream_that_keeps_sending_after_the_client_left_is_closed_at_once() {
    let up = Upstream::start(|_| {
        let mut s = vec![sse_head("text/event-stream")];
        for _ in 0..20_000 {
            s.push(Step::Chunk(
                [b"data: ".as_slice(), &[b'y'; 16 << 10], b"\n\n"].concat(),
            ));
            s.push(Step::Sleep(Duration::from_millis(1)));
        }
        s.push(Step::End);
        s
    })
    .await;
    let mut up = up;
    let (proxy, _healthy) = start(&up).await;
    let pid = proxy.pid();
    let before = rss(pid);
    let healthy = Healthy::start(proxy.addr);
    for round in 0..3 {
        let client = raw_get(proxy.addr, "/hostile/x", 256 << 10).await;
        assert_eq!(
            proxy
                .metric("ssegate_streams_active{route=\"hostile\"}")
                .await,
            1.0
        );
        drop(client);
        let left = Instant::now();
        let closed = up
            .wait_for(Duration::from_secs(10), |s| match s {
                Seen::WriteFailed(at) | Seen::Closed(at) => Some(*at),
                _ => None,
            })
            .await
            .expect("the upstream connection is closed");
        let after = closed.saturating_duration_since(left);
        eprintln!("round {round}: the upstream saw the close {after:?} after the client left");
        assert!(
            after < Duration::from_secs(1),
            "upstream closed after {after:?}"
        );
        assert_eq!(
            proxy
                .wait_metric("ssegate_streams_active{route=\"hostile\"}", 0.0)
                .await,
            0.0
        );
    }
    assert!(healthy.finish().await >= 1);
    assert_eq!(
        proxy
            .wait_metric(
                "ssegate_streams_total{outcome=\"client_closed\",route=\"hostile\"}",
                3.0
            )
            .await,
        3.0
    );
    let (_, streams) = get(proxy.admin, "/streams").await.unwrap();
    assert!(
        !streams.contains("hostile"),
        "no stream left open: {streams}"
    );
    let after = rss(pid);
    eprintln!(
        "RSS before {:.1} MiB, after {:.1} MiB",
        before as f64 / MIB as f64,
        after as f64 / MIB as f64
    );
    assert!(
        after < before + 4 * MIB,
        "memory did not return: {before} -> {after}"
    );
}

#[tokio::test]
async fn an_upstream_that_accepts_and_never_answers_is_a_504_after_read_timeout() {
    let up = Upstream::scripted(vec![Step::Hang(Duration::from_secs(30))]).await;
    let (proxy, _healthy) = start(&up).await;
    let healthy = Healthy::start(proxy.addr);
    let mut waits = Vec::new();
    for path in ["/hostile/x", "/plain/x"] {
        let t0 = Instant::now();
        let (status, body) = get(proxy.addr, path).await.unwrap();
        let took = t0.elapsed();
        waits.push((path, took));
        assert_eq!(status, 504, "{path}: {body}");
        assert!(body.starts_with("504 Gateway Timeout"), "{path}: {body}");
        // read_timeout is 2s on both routes.
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
            "{path}: answered after {took:?}"
        );
    }
    eprintln!("504 after {waits:?}");
    assert!(healthy.finish().await >= 1);
    for route in ["hostile", "plain"] {
        assert_eq!(
            proxy
                .wait_metric(
                    &format!("ssegate_requests_total{{route=\"{route}\",status=\"504\"}}"),
                    1.0
                )
                .await,
            1.0
        );
    }
}
