#![allow(clippy::unwrap_used)]
//! `ssegate probe` against real servers on loopback: a paced stream, a buffering upstream, a
//! gzipping one, one cut short, a JSON answer, a buffering relay for `--compare`, TLS through
//! ssegate itself, and every error class. The real binary runs; timing bounds are generous.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use pingora::protocols::http::compression::Algorithm;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const BODY: &str = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

/// A test-only CA and a `localhost` certificate it signed (P-256, valid 2000-2100): fixed
/// files, so that the test needs no certificate tooling.
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBcjCCARmgAwIBAgIBATAKBggqhkjOPQQDAjAgMR4wHAYDVQQDDBVzc2VnYXRl
IHByb2JlIHRlc3QgQ0EwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBa
MCAxHjAcBgNVBAMMFXNzZWdhdGUgcHJvYmUgdGVzdCBDQTBZMBMGByqGSM49AgEG
CCqGSM49AwEHA0IABG7h1T8Sm21cTDgUi+QniFEPsM7Q1LBvO3SOrN6H2cULYah6
A8cq7YIKeBzWWsLIIgEolpsz4PmgLzker04A8L2jQjBAMA8GA1UdEwEB/wQFMAMB
Af8wDgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBRFgyg/IATDoNsi9xNjxopsMCpU
mzAKBggqhkjOPQQDAgNHADBEAiARYRrxj75p7aiNnjXQou3F2dmahmoGDpFaV12g
FwddlAIgDI6oOh9q9E5emV7zQdZtzDslWDAbb8edlW/iCd3PPNs=
-----END CERTIFICATE-----
";
const SERVER_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBrzCCAVWgAwIBAgIBAjAKBggqhkjOPQQDAjAgMR4wHAYDVQQDDBVzc2VnYXRl
IHByb2JlIHRlc3QgQ0EwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBa
MBQxEjAQBgNVBAMMCWxvY2FsaG9zdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IA
BABcyPL0N4CE/WyZqk9XbKPT10z7CMi95kkFIZuI7nfoxd20GzNXBmDShV1rTS5n
xbwHN450atxSQJsPVkAE4sWjgYkwgYYwCQYDVR0TBAIwADAOBgNVHQ8BAf8EBAMC
B4AwEwYDVR0lBAwwCgYIKwYBBQUHAwEwFAYDVR0RBA0wC4IJbG9jYWxob3N0MB8G
A1UdIwQYMBaAFEWDKD8gBMOg2yL3E2PGimwwKlSbMB0GA1UdDgQWBBSa0ADRUnB6
VZbeyP+/kZc4SnU5wjAKBggqhkjOPQQDAgNIADBFAiBjZTq68JOnUfqls8u1CVX2
ZMkPz+OfiEpp+NKtlSPhlgIhAPq3YXuZerH3b8wWUf9nluhrHWWHLORjecGkWBoJ
1ta2
-----END CERTIFICATE-----
";
const SERVER_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg8ZtYEXyPEw1Ikcbl
/2xAfWt8Zwm3Kc7hIaYimuxWxYWhRANCAAQAXMjy9DeAhP1smapPV2yj09dM+wjI
veZJBSGbiO536MXdtBszVwZg0oVda00uZ8W8BzeOdGrcUkCbD1ZABOLF
-----END PRIVATE KEY-----
";

/// Runs `ssegate probe ARGS` with extra environment; (exit code, stdout, stderr, elapsed).
async fn probe_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String, Duration) {
    let started = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ssegate"))
        .arg("probe")
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

async fn probe(args: &[&str]) -> (i32, String, String) {
    let (code, out, err, _) = probe_env(args, &[]).await;
    (code, out, err)
}

fn event(text: &str) -> Vec<u8> {
    format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n").into_bytes()
}

const DONE: &[u8] = b"data: [DONE]\n\n";

/// An OpenAI-style stream: `n` tokens `pace` apart, then `[DONE]` if `done`. Streams the
/// tests expect not to be judged `buffered` have 8 tokens 100 ms apart: only a stall of the
/// probe of ~600 ms could bunch 80% of them into one read, which is what a buffer looks like.
fn paced(n: usize, pace: Duration, done: bool) -> Script {
    let mut s = vec![sse_head("text/event-stream")];
    for i in 0..n {
        s.push(Step::Sleep(pace));
        s.push(Step::Chunk(event(&format!("w{i} "))));
    }
    if done {
        s.push(Step::Chunk(DONE.to_vec()));
    }
    s.push(Step::End);
    s
}

/// The same answer held back and sent in one piece after `hold`.
fn held(n: usize, hold: Duration) -> Script {
    let mut all = Vec::new();
    for i in 0..n {
        all.extend(event(&format!("w{i} ")));
    }
    all.extend_from_slice(DONE);
    vec![
        sse_head("text/event-stream"),
        Step::Sleep(hold),
        Step::Chunk(all),
        Step::End,
    ]
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn one_line(stderr: &str) -> &str {
    let t = stderr.trim();
    assert_eq!(t.lines().count(), 1, "not one line: {stderr}");
    t
}

#[tokio::test]
async fn a_paced_stream_is_streamed() {
    let up = Upstream::scripted(paced(8, Duration::from_millis(100), true)).await;
    let (code, out, err) = probe(&[&url(up.addr, "/v1/chat/completions"), "-d", BODY]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("verdict: streamed — 8 text events spread"),
        "{out}"
    );
    assert!(out.contains("\"w3 \""), "event preview: {out}");
    assert!(out.contains("[DONE]  <- end marker"), "{out}");
    for row in [
        "Content-Type       text/event-stream",
        "end marker         seen",
    ] {
        assert!(out.contains(row), "{row}: {out}");
    }
    // The upstream saw what a browser or SDK sends.
    let req = up.requests.lock().unwrap()[0].clone();
    assert_eq!(req.method, "POST");
    assert_eq!(req.header("accept"), Some("text/event-stream"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.body, BODY.as_bytes());
}

#[tokio::test]
async fn json_output_is_one_document_with_the_timeline() {
    let up = Upstream::scripted(paced(8, Duration::from_millis(100), true)).await;
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, BODY).unwrap();
    let at_body = format!("@{}", body.display());
    let (code, out, err) = probe(&[
        &url(up.addr, "/s"),
        "-d",
        &at_body,
        "-H",
        "X-Team: probe",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let v = json_of(&out);
    assert_eq!(v["verdict"], "streamed");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["status"], 200);
    assert_eq!(v["events"], 9);
    assert_eq!(v["output_chars"], 24);
    assert_eq!(v["dialect"], "openai_chat");
    assert_eq!(v["end_marker"], true);
    assert_eq!(v["end"], "finished");
    assert!(v["error"].is_null());
    let log = v["event_log"].as_array().unwrap();
    assert_eq!(log.len(), 9);
    let at: Vec<f64> = log.iter().map(|e| e["at_ms"].as_f64().unwrap()).collect();
    // Eight tokens 100 ms apart: the first after ~100 ms, the last ~700 ms after it.
    assert!(at[0] >= 90.0 && at[7] - at[0] >= 600.0, "{at:?}");
    assert_eq!(v["timing_ms"]["first_event"].as_f64(), Some(at[0]));
    let ct = &v["headers"][0];
    assert_eq!(
        (&ct["name"], &ct["value"]),
        (&"Content-Type".into(), &"text/event-stream".into())
    );
    let req = up.requests.lock().unwrap()[0].clone();
    assert_eq!(req.header("x-team"), Some("probe"));
    assert_eq!(req.body, BODY.as_bytes());
}

#[tokio::test]
async fn a_held_back_answer_is_buffered() {
    let up = Upstream::scripted(held(12, Duration::from_millis(800))).await;
    let (code, out, err) = probe(&[&url(up.addr, "/s"), "-d", BODY]).await;
    assert_eq!(code, 10, "{out}{err}");
    assert!(
        out.contains("verdict: buffered — 12 of 12 text events arrived within"),
        "{out}"
    );
    assert!(out.contains("of silence: a hop held the stream"), "{out}");
}

#[tokio::test]
async fn a_gzipped_stream_is_compressed_and_still_decoded() {
    // A gzip middleware without flushes: what it emits per event, paced, then the rest.
    let mut gz = Algorithm::Gzip.compressor(6).unwrap();
    let mut script = vec![Step::Raw(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n\
transfer-encoding: chunked\r\n\r\n"
            .to_vec(),
    )];
    for i in 0..6 {
        let out = gz.encode(&event(&format!("w{i} ")), false).unwrap();
        script.push(Step::Sleep(Duration::from_millis(60)));
        if !out.is_empty() {
            script.push(Step::Chunk(out.to_vec()));
        }
    }
    script.push(Step::Chunk(gz.encode(DONE, true).unwrap().to_vec()));
    script.push(Step::End);
    let up = Upstream::scripted(script).await;
    let (code, out, err) = probe(&[&url(up.addr, "/s"), "--json"]).await;
    assert_eq!(code, 11, "{out}{err}");
    let v = json_of(&out);
    assert_eq!(v["verdict"], "compressed");
    assert_eq!(v["events"], 7, "decoded: {out}");
    assert!(v["decode_error"].is_null());
    assert!(v["evidence"]
        .as_str()
        .unwrap()
        .contains("Content-Encoding: gzip"));
    // The probe offers gzip like a browser does: that is what a compressing hop answers.
    let asked = up.requests.lock().unwrap()[0].clone();
    assert!(asked.header("accept-encoding").unwrap().contains("gzip"));

    let up = Upstream::scripted(vec![
        Step::Raw(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n\
transfer-encoding: chunked\r\n\r\n"
                .to_vec(),
        ),
        Step::Chunk(b"not gzip at all".to_vec()),
        Step::End,
    ])
    .await;
    let (code, out, err) = probe(&[&url(up.addr, "/s"), "--json"]).await;
    assert_eq!(code, 11, "{out}{err}");
    let v = json_of(&out);
    assert!(v["decode_error"].is_string(), "{out}");
}

#[tokio::test]
async fn a_stream_without_its_end_marker_is_incomplete() {
    let up = Upstream::scripted(paced(8, Duration::from_millis(100), false)).await;
    let (code, out, err) = probe(&[&url(up.addr, "/s")]).await;
    assert_eq!(code, 12, "{out}{err}");
    assert!(
        out.contains("verdict: incomplete — the openai_chat stream ended without its end marker (data: [DONE])"),
        "{out}"
    );
    // A connection that breaks mid-stream (no terminating chunk) is incomplete.
    let mut cut = paced(8, Duration::from_millis(100), false);
    // Replace the terminating chunk by closing the connection.
    cut.pop();
    cut.push(Step::Hang(Duration::ZERO));
    let up = Upstream::scripted(cut).await;
    let (code, out, err) = probe(&[&url(up.addr, "/s")]).await;
    assert_eq!(code, 12, "{out}{err}");
    assert!(
        out.contains("verdict: incomplete — the connection broke after 8 event(s)"),
        "{out}"
    );
    // A stream still running when --timeout ends is incomplete too, with what arrived.
    let up = Upstream::scripted(paced(40, Duration::from_millis(100), true)).await;
    let (code, out, err, took) = probe_env(&[&url(up.addr, "/s"), "--timeout", "1s"], &[]).await;
    assert_eq!(code, 12, "{out}{err}");
    assert!(out.contains("--timeout 1.00 s ran out after"), "{out}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn a_json_answer_is_not_a_stream() {
    let answer = r#"{"choices":[{"message":{"content":"hello"}}]}"#;
    let up = Upstream::scripted(plain(200, "application/json", answer)).await;
    let (code, out, err) = probe(&[&url(up.addr, "/s"), "-d", BODY]).await;
    assert_eq!(code, 13, "{out}{err}");
    assert!(
        out.contains("verdict: not a stream — Content-Type application/json is not a stream type"),
        "{out}"
    );
    assert!(out.contains("! not a stream type"), "{out}");
}

/// A relay that reads the upstream's whole (chunked) answer before it sends any of it.
async fn buffering_relay(upstream: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let request = read_request_bytes(&mut client).await;
                let mut up = tokio::net::TcpStream::connect(upstream).await.unwrap();
                up.write_all(&request).await.unwrap();
                let mut answer = Vec::new();
                let mut buf = [0u8; 8192];
                while !answer.ends_with(b"0\r\n\r\n") {
                    match up.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = client.write_all(&answer).await;
                let _ = client.shutdown().await;
            });
        }
    });
    (addr, task)
}

/// One request's bytes: the head and a Content-Length body.
async fn read_request_bytes(sock: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = req.parse(&buf) {
            let len: usize = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map_or(0, |h| {
                    std::str::from_utf8(h.value).unwrap().parse().unwrap()
                });
            if buf.len() >= head + len {
                return buf;
            }
        }
        let n = sock.read(&mut tmp).await.unwrap();
        assert!(n > 0, "client closed mid-request");
        buf.extend_from_slice(&tmp[..n]);
    }
}

#[tokio::test]
async fn compare_names_the_hop_that_buffers() {
    let up = Upstream::scripted(paced(8, Duration::from_millis(100), true)).await;
    let (relay, _task) = buffering_relay(up.addr).await;
    let direct = url(up.addr, "/v1/chat/completions");
    let via = url(relay, "/v1/chat/completions");
    let (code, out, err) = probe(&[&direct, "--compare", &via, "-d", BODY]).await;
    assert_eq!(code, 10, "{out}{err}");
    let want = format!(
        "{direct}: streamed; {via}: buffered — streaming is lost in the hop(s) that {via} adds \
         in front of {direct}: they buffer the stream"
    );
    assert!(out.contains(&want), "{want}\n{out}");
    assert!(
        out.contains("1: verdict: streamed") && out.contains("2: verdict: buffered"),
        "{out}"
    );
    // Both were probed at once with the same request.
    assert_eq!(up.requests.lock().unwrap().len(), 2);

    let (code, out, err) = probe(&[&direct, "--compare", &via, "-d", BODY, "--json"]).await;
    assert_eq!(code, 10, "{out}{err}");
    let v = json_of(&out);
    assert_eq!(v["lost_at"], via.as_str());
    assert_eq!(v["probes"][0]["verdict"], "streamed");
    assert_eq!(v["probes"][1]["verdict"], "buffered");
    assert_eq!(v["exit_code"], 10);
}

#[tokio::test]
async fn failures_are_one_line_with_their_own_exit_code() {
    // Refused: a port nobody listens on.
    let (code, out, err) = probe(&[&url(free_addr(), "/")]).await;
    assert_eq!(code, 21, "{out}{err}");
    assert!(
        one_line(&err).contains("connection refused by 127.0.0.1:"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");

    // DNS: a name that can't exist.
    let (code, out, err) = probe(&["http://name.invalid/", "--timeout", "30s"]).await;
    assert_eq!(code, 20, "{out}{err}");
    assert!(
        one_line(&err).contains("DNS: cannot resolve name.invalid"),
        "{err}"
    );

    // Timeout: accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            open.push(sock);
        }
    });
    let (code, out, err, took) = probe_env(&[&url(silent, "/"), "--timeout", "1s"], &[]).await;
    assert_eq!(code, 23, "{out}{err}");
    assert!(
        one_line(&err)
            .contains("timeout: --timeout 1.00 s ran out waiting for the response header"),
        "{err}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");

    // Closed without a word.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closing = listener.local_addr().unwrap();
    let _closing = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
        }
    });
    let (code, out, err) = probe(&[&url(closing, "/")]).await;
    assert_eq!(code, 25, "{out}{err}");
    assert!(
        one_line(&err).contains("the server closed the connection without answering"),
        "{err}"
    );

    // A 500 with its body.
    let up = Upstream::scripted(plain(500, "text/plain", "model exploded\nat layer 3")).await;
    let (code, out, err) = probe(&[&url(up.addr, "/"), "-d", BODY]).await;
    assert_eq!(code, 24, "{out}{err}");
    assert!(
        one_line(&err).contains("HTTP 500 Internal Server Error: model exploded at layer 3"),
        "{err}"
    );

    // --json reports the error too.
    let (code, out, _) = probe(&[&url(up.addr, "/"), "--json"]).await;
    assert_eq!(code, 24);
    let v = json_of(&out);
    assert_eq!(v["error"]["class"], "status");
    assert_eq!(v["status"], 500);

    // Bad input.
    let (code, _, err) = probe(&["ftp://x/"]).await;
    assert_eq!(code, 1);
    assert!(one_line(&err).contains("not http or https"), "{err}");
}

#[tokio::test]
async fn https_is_verified_against_the_trusted_cas() {
    let up = Upstream::scripted(paced(8, Duration::from_millis(100), true)).await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("server.pem"),
        dir.path().join("server.key"),
    );
    std::fs::write(&ca, CA_PEM).unwrap();
    std::fs::write(&cert, SERVER_PEM).unwrap();
    std::fs::write(&key, SERVER_KEY).unwrap();
    let [addr, admin] = free_addrs();
    let yaml = format!(
        "listen:\n  - addr: {addr}\n    tls: {{ cert: {}, key: {} }}\nadmin:\n  addr: {admin}\n\
threads: 1\nupstreams:\n  app:\n    servers: [\"{}\"]\nroutes:\n  - path: /\n    upstream: app\n",
        cert.display(),
        key.display(),
        up.addr
    );
    let _gate = Proxy::start_raw(&yaml, addr, admin).await;
    let port = addr.port();
    let by_name = format!("https://localhost:{port}/s");
    let by_ip = format!("https://127.0.0.1:{port}/s");
    let trust = [("SSL_CERT_FILE", ca.to_str().unwrap())];

    // Not signed by a CA this machine trusts.
    let (code, out, err, _) = probe_env(&[&by_name], &[]).await;
    assert_eq!(code, 22, "{out}{err}");
    assert!(one_line(&err).contains("UnknownIssuer"), "{err}");
    // Trusted CA, right name: verified and probed.
    let (code, out, err, _) = probe_env(&[&by_name], &trust).await;
    assert_eq!(code, 0, "{out}{err}");
    // Trusted CA, wrong name.
    let (code, out, err, _) = probe_env(&[&by_ip], &trust).await;
    assert_eq!(code, 22, "{out}{err}");
    assert!(one_line(&err).contains("not valid for name"), "{err}");
    // --insecure skips the check.
    let (code, out, err, _) = probe_env(&[&by_ip, "--insecure"], &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    // TLS to a port that speaks plain HTTP (ssegate's admin listener answers it 400).
    let plain_http = format!("https://{admin}/healthz");
    let (code, out, err, _) = probe_env(&[&plain_http, "--timeout", "20s"], &[]).await;
    assert_eq!(code, 22, "{out}{err}");
    assert!(one_line(&err).contains("speak TLS on this port"), "{err}");
    // Same for a plain server that answers the ClientHello with an HTTP error.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain = listener.local_addr().unwrap();
    let _plain = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let (code, out, err, _) =
        probe_env(&[&format!("https://{plain}/"), "--timeout", "20s"], &[]).await;
    assert_eq!(code, 22, "{out}{err}");
    assert!(one_line(&err).contains("speak TLS on this port"), "{err}");
}
