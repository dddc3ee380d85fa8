//! TLS listeners: SSE over HTTP/1.1 and HTTP/2, unbuffered, with a self-signed certificate.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};

/// Connects with TLS offering `alpn`, trusting only `cert`.
async fn tls_connect(
    addr: std::net::SocketAddr,
    cert: &CertificateDer<'static>,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn sse_streams_unbuffered_over_https_h1_and_h2() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.crt"), ck.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("server.key"),
        ck.signing_key.serialize_pem(),
    )
    .unwrap();
    let cert_der = ck.cert.der().clone();

    let mut script = vec![sse_head("text/event-stream")];
    for i in 0..5 {
        script.push(Step::Sleep(Duration::from_millis(200)));
        script.push(Step::Chunk(format!("data: {{\"n\":{i}}}\n\n").into_bytes()));
    }
    script.push(Step::End);
    let mut up = Upstream::scripted(script).await;

    let [addr, admin] = free_addrs();
    let crt = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    let yaml = format!(
        "listen:\n  - addr: {addr}\n    tls: {{ cert: {}, key: {} }}\nadmin:\n  addr: {admin}\nthreads: 2\nshutdown_grace: 1s\n\
upstreams:\n  b:\n    servers: [\"{}\"]\nroutes:\n  - path: /\n    upstream: b\n    stream:\n      idle_timeout: 10s\n",
        crt.display(),
        key.display(),
        up.addr
    );
    let proxy = Proxy::start_raw(&yaml, addr, admin).await;

    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let tls = tls_connect(proxy.addr, &cert_der, alpn).await;
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(alpn),
            "negotiated protocol"
        );
        let io = TokioIo::new(tls);
        let req = hyper::Request::builder()
            .uri("https://localhost/chat")
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = if alpn == b"h2" {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        };
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut body = resp.into_body();
        let mut arrivals = Vec::new();
        let mut all = Vec::new();
        while let Some(frame) = body.frame().await {
            // HTTP/2 may end the stream with an empty DATA frame.
            if let Some(data) = frame.unwrap().into_data().ok().filter(|d| !d.is_empty()) {
                arrivals.push(Instant::now());
                all.extend_from_slice(&data);
            }
        }
        assert_eq!(
            String::from_utf8(all).unwrap(),
            (0..5)
                .map(|i| format!("data: {{\"n\":{i}}}\n\n"))
                .collect::<String>()
        );
        let mut sent = Vec::new();
        while sent.len() < 5 {
            let at = up
                .wait_for(Duration::from_secs(5), |s| match s {
                    Seen::Sent(_, at) => Some(*at),
                    _ => None,
                })
                .await
                .unwrap();
            sent.push(at);
        }
        assert_eq!(arrivals.len(), 5, "{alpn:?}: one frame per event");
        for (s, a) in sent.iter().zip(&arrivals) {
            let d = a.saturating_duration_since(*s);
            assert!(
                d < Duration::from_millis(100),
                "{alpn:?}: event delayed {d:?}"
            );
        }
    }
}
