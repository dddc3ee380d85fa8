//! Test fixtures: the real ssegate binary on loopback, scripted upstreams on real sockets,
//! and a real HTTP client.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A free loopback port (bound and released; the kernel does not hand it out again soon).
pub fn free_addr() -> SocketAddr {
    let [addr] = free_addrs();
    addr
}

/// `N` free loopback ports, all different: each is held until all are found (released one at
/// a time, the same port could come back twice, and a listener and an admin endpoint on one
/// address are a config error).
pub fn free_addrs<const N: usize>() -> [SocketAddr; N] {
    let held: Vec<_> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().expect("bound address"))
}

/// A field of `/proc/<pid>/<file>`: the first number after `key` (`unlimited`: `u64::MAX`).
pub fn proc_number(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    let line = text.lines().find(|l| l.starts_with(key)).unwrap();
    let value = line[key.len()..].split_whitespace().next().unwrap();
    if value == "unlimited" {
        return u64::MAX;
    }
    value.parse().unwrap()
}

/// Resident memory of a process, in bytes.
pub fn rss(pid: u32) -> u64 {
    proc_number(pid, "status", "VmRSS:") * 1024
}

/// A running ssegate process; killed on drop.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts ssegate with `body` (routes/upstreams YAML) after generated listen/admin keys.
    pub async fn start(body: &str) -> Proxy {
        let [addr, admin] = free_addrs();
        let yaml = format!(
            "listen:\n  - addr: {addr}\nadmin:\n  addr: {admin}\nthreads: 2\nshutdown_grace: 2s\n{body}"
        );
        Self::start_raw(&yaml, addr, admin).await
    }

    /// Starts ssegate with a complete config text whose listener and admin are given.
    pub async fn start_raw(yaml: &str, addr: SocketAddr, admin: SocketAddr) -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("ssegate.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let log = dir.path().join("ssegate.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ssegate"))
            .args(["run", "-c"])
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("SSEGATE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn ssegate");
        let mut p = Proxy {
            addr,
            admin,
            config,
            log,
            child,
            _dir: dir,
        };
        p.wait_ready().await;
        p
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("ssegate exited early ({status}):\n{}", self.log_text());
            }
            let admin_ok = matches!(get(self.admin, "/healthz").await, Ok((200, _)));
            if admin_ok && TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("ssegate not ready in time:\n{}", self.log_text());
    }

    /// The process id (for /proc/<pid>/status and /proc/<pid>/fd).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What ssegate logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The admin /metrics text.
    pub async fn metrics(&self) -> String {
        get(self.admin, "/metrics").await.expect("metrics").1
    }

    /// The value of one metric sample line (exact name and labels as printed), 0 if absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics().await, series)
    }

    /// Waits until `series` reaches `want` (metrics are recorded as requests end).
    pub async fn wait_metric(&self, series: &str, want: f64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.metric(series).await;
            if v == want || Instant::now() > deadline {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
    }

    /// Waits for the process to exit, up to `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Rewrites the config file (for reload tests).
    pub fn write_config(&self, yaml: &str) {
        let mut f = std::fs::File::create(&self.config).expect("config");
        f.write_all(yaml.as_bytes()).expect("write");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds `series value` in Prometheus text.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------
// Scripted upstream: raw HTTP/1.1 on a real socket, byte by byte as the test says.

/// A request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
    /// When the whole request had arrived.
    pub at: Instant,
}

impl Received {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One step of an upstream's answer.
#[derive(Clone, Debug)]
pub enum Step {
    /// Raw bytes as they are (status line and headers, or a body without framing).
    Raw(Vec<u8>),
    /// One chunk of a chunked body.
    Chunk(Vec<u8>),
    /// The end of a chunked body.
    End,
    /// A pause.
    Sleep(Duration),
    /// Read until the peer closes; report when.
    AwaitClose,
    /// Keep the connection open without a word for this long, then close it.
    Hang(Duration),
    /// Close the connection now (an upstream that crashes).
    Close,
}

/// A full answer.
pub type Script = Vec<Step>;

/// What an upstream reports to the test.
#[derive(Debug)]
pub enum Seen {
    /// A request arrived.
    Request(Received),
    /// The peer closed the connection at this instant.
    Closed(Instant),
    /// A write to the peer failed (the proxy had closed).
    WriteFailed(Instant),
    /// A chunk was written at this instant (index in the script's chunks).
    Sent(usize, Instant),
}

/// A scripted upstream server.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    pub requests: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Status line and headers of a chunked SSE answer.
pub fn sse_head(content_type: &str) -> Step {
    Step::Raw(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        .into_bytes(),
    )
}

/// A complete chunked SSE answer of the given chunks.
pub fn sse_script(chunks: &[&[u8]]) -> Script {
    let mut s = vec![sse_head("text/event-stream")];
    s.extend(chunks.iter().map(|c| Step::Chunk(c.to_vec())));
    s.push(Step::End);
    s
}

/// A small answer with a length.
pub fn plain(status: u16, content_type: &str, body: &str) -> Script {
    vec![Step::Raw(
        format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )]
}

impl Upstream {
    /// Serves every request with `handler`'s script.
    pub async fn start<F>(handler: F) -> Upstream
    where
        F: Fn(&Received) -> Script + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = mpsc::unbounded_channel();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let reqs = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, peer)) = listener.accept().await else {
                    return;
                };
                let (tx, handler, reqs) = (tx.clone(), handler.clone(), reqs.clone());
                tokio::spawn(async move {
                    serve_conn(sock, peer, tx, move |r| handler(r), reqs).await;
                });
            }
        });
        Upstream {
            addr,
            seen: rx,
            requests,
            task,
        }
    }

    /// An upstream that answers every request with the same script.
    pub async fn scripted(script: Script) -> Upstream {
        Upstream::start(move |_| script.clone()).await
    }

    /// Path and body of every request received so far, in order.
    pub fn paths_and_bodies(&self) -> Vec<(String, Vec<u8>)> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .map(|r| (r.path.clone(), r.body.clone()))
            .collect()
    }

    /// Waits for the next report matching `want`, up to `within`.
    pub async fn wait_for<T>(
        &mut self,
        within: Duration,
        mut want: impl FnMut(&Seen) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.seen.recv()).await {
                Ok(Some(s)) => {
                    if let Some(t) = want(&s) {
                        return Some(t);
                    }
                }
                _ => return None,
            }
        }
    }
}

async fn serve_conn<F>(
    mut sock: TcpStream,
    peer: SocketAddr,
    tx: mpsc::UnboundedSender<Seen>,
    handler: F,
    reqs: Arc<Mutex<Vec<Received>>>,
) where
    F: Fn(&Received) -> Script,
{
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(&mut sock, &mut buf, peer).await else {
            return;
        };
        reqs.lock().unwrap().push(req.clone());
        let _ = tx.send(Seen::Request(req.clone()));
        let script = handler(&req);
        let mut chunk_index = 0;
        for step in script {
            let wrote = match step {
                Step::Raw(b) => sock.write_all(&b).await,
                Step::Chunk(b) => {
                    let mut framed = format!("{:x}\r\n", b.len()).into_bytes();
                    framed.extend_from_slice(&b);
                    framed.extend_from_slice(b"\r\n");
                    let r = sock.write_all(&framed).await;
                    let _ = tx.send(Seen::Sent(chunk_index, Instant::now()));
                    chunk_index += 1;
                    r
                }
                Step::End => sock.write_all(b"0\r\n\r\n").await,
                Step::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    Ok(())
                }
                Step::Hang(d) => {
                    tokio::time::sleep(d).await;
                    return;
                }
                Step::Close => return,
                Step::AwaitClose => {
                    let mut scratch = [0u8; 1024];
                    loop {
                        match sock.read(&mut scratch).await {
                            Ok(0) | Err(_) => {
                                let _ = tx.send(Seen::Closed(Instant::now()));
                                return;
                            }
                            Ok(_) => {}
                        }
                    }
                }
            };
            if wrote.is_err() {
                let _ = tx.send(Seen::WriteFailed(Instant::now()));
                return;
            }
        }
    }
}

/// Reads one request (head and a Content-Length or chunked body) from `sock`.
async fn read_request(
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
) -> Option<Received> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = req.parse(buf) {
            let hs: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let method = req.method.unwrap_or("").to_string();
            let path = req.path.unwrap_or("").to_string();
            let chunked = hs.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("transfer-encoding")
                    && v.to_ascii_lowercase().ends_with("chunked")
            });
            buf.drain(..n);
            let body = if chunked {
                read_chunked(sock, buf).await?
            } else {
                let len: usize = hs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < len {
                    fill_from(sock, buf).await?;
                }
                buf.drain(..len).collect()
            };
            return Some(Received {
                method,
                path,
                headers: hs,
                body,
                peer,
                at: Instant::now(),
            });
        }
        fill_from(sock, buf).await?;
    }
}

// ---------------------------------------------------------------------------------------
// Client: hyper over a real connection.

/// A response whose body is read as it arrives.
pub struct Streaming {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    body: Incoming,
    _conn: tokio::task::JoinHandle<()>,
}

impl Streaming {
    /// The next body chunk and when it arrived; `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<(Instant, Bytes), String>> {
        loop {
            match self.body.frame().await? {
                Ok(f) => {
                    if let Ok(data) = f.into_data() {
                        return Some(Ok((Instant::now(), data)));
                    }
                }
                Err(e) => return Some(Err(e.to_string())),
            }
        }
    }

    /// Reads the whole body; `Err` if it broke off.
    pub async fn collect(mut self) -> Result<Vec<u8>, String> {
        let mut all = Vec::new();
        while let Some(c) = self.next_chunk().await {
            all.extend_from_slice(&c?.1);
        }
        Ok(all)
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends a request and returns as soon as the response head arrives.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Streaming, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    Ok(Streaming {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
        _conn: conn,
    })
}

/// A GET whose whole body is returned as text.
pub async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let r = send(addr, "GET", path, &[], b"").await?;
    let status = r.status;
    let body = r.collect().await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Runs `ssegate` with arguments and returns (exit code, stdout, stderr).
pub fn ssegate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ssegate"))
        .args(args)
        .output()
        .expect("run ssegate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads a chunked body off the front of `buf` (refilled from `sock`), trailers skipped.
async fn read_chunked(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            fill_from(sock, buf).await?;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    let empty = i == 0;
                    buf.drain(..i + 2);
                    if empty {
                        return Some(body);
                    }
                } else {
                    fill_from(sock, buf).await?;
                }
            }
        }
        while buf.len() < size + 2 {
            fill_from(sock, buf).await?;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

async fn fill_from(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut tmp = [0u8; 8192];
    match sock.read(&mut tmp).await {
        Ok(0) | Err(_) => None,
        Ok(k) => {
            buf.extend_from_slice(&tmp[..k]);
            Some(())
        }
    }
}
