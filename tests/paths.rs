//! One client connection, both paths: requests that ssegate's lean path serves and requests
//! it hands to Pingora (HEAD, chunked uploads) follow each other on the same connection, each
//! answered in order and whole.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const EVENTS: &[&[u8]] = &[
    b"data: {\"type\":\"chunk\",\"content\":\"hi\"}\n\n",
    b"data: [DONE]\n\n",
];

fn config(up: std::net::SocketAddr) -> String {
    format!(
        "upstreams:\n  app:\n    servers: [\"{up}\"]\nroutes:\n  - path: /chat\n    upstream: app\n    stream:\n      idle_timeout: 5s\n  - path: /\n    upstream: app\n"
    )
}

async fn upstream() -> Upstream {
    Upstream::start(|r| {
        if r.path.starts_with("/chat/slow") {
            let mut s = vec![
                sse_head("text/event-stream"),
                Step::Chunk(EVENTS[0].to_vec()),
            ];
            s.push(Step::Sleep(std::time::Duration::from_millis(500)));
            s.extend([Step::Chunk(EVENTS[1].to_vec()), Step::End]);
            s
        } else if r.path.starts_with("/chat") {
            sse_script(EVENTS)
        } else {
            let body = format!(
                "{} {} {}",
                r.method,
                r.path,
                String::from_utf8_lossy(&r.body)
            );
            plain(200, "text/plain", &body)
        }
    })
    .await
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

fn sized(body: &'static [u8]) -> Body {
    Full::new(Bytes::from_static(body)).boxed()
}

/// A body of unknown length: hyper sends it chunked.
fn chunked(pieces: &[&'static [u8]]) -> Body {
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = pieces
        .iter()
        .map(|p| Ok(Frame::data(Bytes::from_static(p))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

#[tokio::test]
async fn lean_and_pingora_requests_share_one_keepalive_connection() {
    let up = upstream().await;
    let proxy = Proxy::start(&config(up.addr)).await;
    // From 127.0.0.2 (loopback too), so that the client's address is told from a default.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let tcp = socket.connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);

    // (method, path, body, expected status, expected body); one connection throughout.
    let sse = EVENTS.concat();
    let steps: Vec<(&str, &str, Body, Vec<u8>)> = vec![
        ("GET", "/a", sized(b""), b"GET /a ".to_vec()),
        ("HEAD", "/b", sized(b""), Vec::new()),
        (
            "POST",
            "/c",
            chunked(&[b"up", b"load"]),
            b"POST /c upload".to_vec(),
        ),
        ("GET", "/chat/1", sized(b""), sse.clone()),
        (
            "POST",
            "/chat/2",
            chunked(&[b"{\"q\":", b"1}"]),
            sse.clone(),
        ),
        ("POST", "/d", sized(b"sized"), b"POST /d sized".to_vec()),
        ("GET", "/chat/3", sized(b""), sse.clone()),
    ];
    for (method, path, body, want) in steps {
        let (status, got) = exchange(&mut sender, method, path, body).await;
        assert_eq!(status, 200, "{method} {path}");
        assert_eq!(got, String::from_utf8_lossy(&want), "{method} {path}");
    }
    assert!(!conn.is_finished(), "the connection was kept throughout");
    let seen: Vec<(String, Vec<u8>)> = up.paths_and_bodies();
    let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["/a", "/b", "/c", "/chat/1", "/chat/2", "/d", "/chat/3"]
    );
    assert_eq!(seen[4].1, b"{\"q\":1}");
    // Both paths name the client to the upstream, whichever served the connection before.
    let forwarded: Vec<Option<String>> = up
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.header("x-forwarded-for").map(str::to_owned))
        .collect();
    assert!(
        forwarded.iter().all(|f| f.as_deref() == Some("127.0.0.2")),
        "{forwarded:?}"
    );
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let up = upstream().await;
    let proxy = Proxy::start(&config(up.addr)).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    // Three requests in one write: a stream, a plain one, and one that closes.
    tcp.write_all(
        b"GET /chat/p HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
          GET /q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let text = rest_of(&mut tcp).await;
    let stream_at = text.find("data: [DONE]").expect(&text);
    let plain_at = text.find("POST /p abc").expect(&text);
    let last_at = text.find("GET /q ").expect(&text);
    assert!(stream_at < plain_at && plain_at < last_at, "{text}");
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");

    // A request sent while a stream is still running waits for it, and is not taken for a
    // hang-up.
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(b"GET /chat/slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 64];
    let n = tcp.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    tcp.write_all(b"GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = rest_of(&mut tcp).await;
    let done_at = text.find("data: [DONE]").expect(&text);
    let r_at = text.find("GET /r ").expect(&text);
    assert!(done_at < r_at, "{text}");
}

/// Everything the proxy sends until it closes the connection (within 10 s).
async fn rest_of(tcp: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut all),
    );
    read.await
        .expect("the proxy closes after the last")
        .unwrap();
    String::from_utf8_lossy(&all).into_owned()
}

/// Sends `method path` with `body` on an open connection; status and body text.
async fn exchange(
    sender: &mut hyper::client::conn::http1::SendRequest<Body>,
    method: &str,
    path: &str,
    body: Body,
) -> (u16, String) {
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(body)
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let got = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_dropped_is_retried_once_on_a_new_one() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let count = Arc::new(AtomicUsize::new(0));
    let n = count.clone();
    // The second request arrives on the connection kept from the first, and the upstream
    // drops that connection instead of answering, as a server closing an idle one does.
    let up = Upstream::start(move |r| {
        if n.fetch_add(1, Ordering::SeqCst) == 1 {
            vec![Step::Close]
        } else {
            let body = format!("{} {}", r.path, String::from_utf8_lossy(&r.body));
            plain(200, "text/plain", &body)
        }
    })
    .await;
    let proxy = Proxy::start(&config(up.addr)).await;
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(
        exchange(&mut sender, "GET", "/one", sized(b"")).await,
        (200, "/one ".into())
    );
    assert_eq!(
        exchange(&mut sender, "POST", "/two", sized(b"again")).await,
        (200, "/two again".into()),
        "retried on a new connection, body and all"
    );
    let seen = up.paths_and_bodies();
    let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["/one", "/two", "/two"]);
    assert_eq!(seen[2].1, b"again");

    // A new connection that fails is not a stale one: no second try.
    let fresh = Upstream::scripted(vec![Step::Close]).await;
    let proxy = Proxy::start(&config(fresh.addr)).await;
    let (status, _) = get(proxy.addr, "/three").await.unwrap();
    assert_eq!(status, 502);
    assert_eq!(fresh.paths_and_bodies().len(), 1);
}
