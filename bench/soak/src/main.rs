//! ssegate soak driver: runs a release ssegate between an in-process upstream and many
//! concurrent clients that open, complete, abort and break streams for a set time, and
//! samples the process's resident memory, open file descriptors and `ssegate_streams_active`.
//!
//!     soak --ssegate target/release/ssegate [--minutes 30] [--workers 48]
//!          [--sample-secs 10] [--warmup-secs N] [--csv FILE]
//!
//! Exit status 0 when: memory after warm-up stays within 5% of the warm-up peak, the gauge
//! is back to 0 once the clients stop, the descriptor count is back to where it was before
//! the first request, ssegate never died and logged no panic, and no client saw an answer
//! it should not have (every mix entry below says what it expects).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Res<T> = Result<T, String>;

struct Args {
    ssegate: PathBuf,
    minutes: f64,
    workers: usize,
    sample_secs: u64,
    warmup_secs: Option<u64>,
    csv: Option<PathBuf>,
}

fn args() -> Res<Args> {
    let mut a = Args {
        ssegate: PathBuf::new(),
        minutes: 30.0,
        workers: 48,
        sample_secs: 10,
        warmup_secs: None,
        csv: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--ssegate" => a.ssegate = PathBuf::from(v()?),
            "--minutes" => a.minutes = v()?.parse().map_err(|e| format!("--minutes: {e}"))?,
            "--workers" => a.workers = v()?.parse().map_err(|e| format!("--workers: {e}"))?,
            "--sample-secs" => {
                a.sample_secs = v()?.parse().map_err(|e| format!("--sample-secs: {e}"))?
            }
            "--warmup-secs" => {
                a.warmup_secs = Some(v()?.parse().map_err(|e| format!("--warmup-secs: {e}"))?)
            }
            "--csv" => a.csv = Some(PathBuf::from(v()?)),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.ssegate.as_os_str().is_empty() {
        return Err("--ssegate PATH is required".into());
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------
// The upstream: one listener, keep-alive, behaviour chosen by the request path.

fn chunk(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// Writes `payload` as one HTTP chunk; whether the write went through.
async fn write_chunk(sock: &mut TcpStream, payload: &[u8]) -> bool {
    let mut c = Vec::with_capacity(payload.len() + 16);
    chunk(&mut c, payload);
    sock.write_all(&c).await.is_ok()
}

/// Writes `data: [DONE]` and the last chunk; whether the write went through.
async fn write_done(sock: &mut TcpStream) -> bool {
    let mut c = Vec::new();
    chunk(&mut c, b"data: [DONE]\n\n");
    c.extend_from_slice(b"0\r\n\r\n");
    sock.write_all(&c).await.is_ok()
}

fn token_event(i: usize) -> Vec<u8> {
    format!(
        "data: {{\"object\":\"chat.completion.chunk\",\"choices\":[{{\"delta\":{{\"content\":\"tok{i} \"}}}}]}}\n\n"
    )
    .into_bytes()
}

const SSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

/// Serves one upstream connection; `false` means the connection must close.
async fn answer(sock: &mut TcpStream, path: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let num = |i: usize, d: usize| parts.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let sleep = |ms: u64| tokio::time::sleep(Duration::from_millis(ms));
    match parts.as_slice() {
        // /api/chat/stream/complete/N: N tokens 2 ms apart, [DONE], end.
        ["api", "chat", "stream", "complete", ..] | ["hb", ..] => {
            let (n, gap) = if parts[0] == "hb" {
                (5, 150)
            } else {
                (num(4, 20), 2)
            };
            if sock.write_all(SSE_HEAD).await.is_err() {
                return false;
            }
            for i in 0..n {
                sleep(gap).await;
                if !write_chunk(sock, &token_event(i)).await {
                    return false;
                }
            }
            write_done(sock).await
        }
        // /api/chat/stream/big/N: N events of 32 KiB, [DONE], end.
        ["api", "chat", "stream", "big", ..] => {
            if sock.write_all(SSE_HEAD).await.is_err() {
                return false;
            }
            let big = [b"data: ".as_slice(), &[b'b'; 32 << 10], b"\n\n"].concat();
            for _ in 0..num(4, 4) {
                if !write_chunk(sock, &big).await {
                    return false;
                }
            }
            write_done(sock).await
        }
        // /api/chat/stream/long: tokens every 10 ms until the proxy hangs up.
        ["api", "chat", "stream", "long"] => {
            if sock.write_all(SSE_HEAD).await.is_err() {
                return false;
            }
            for i in 0..100_000 {
                sleep(10).await;
                if !write_chunk(sock, &token_event(i)).await {
                    return false;
                }
            }
            false
        }
        // /api/chat/stream/crash/N: N tokens, then the upstream dies mid-event.
        ["api", "chat", "stream", "crash", ..] => {
            if sock.write_all(SSE_HEAD).await.is_err() {
                return false;
            }
            for i in 0..num(4, 5) {
                sleep(3).await;
                if !write_chunk(sock, &token_event(i)).await {
                    return false;
                }
            }
            let mut c = Vec::new();
            chunk(&mut c, b"data: {\"choices\":[{\"delta\":{\"content\":\"cut");
            let _ = sock.write_all(&c).await;
            false
        }
        // /idle/x: one token, then silence past the route's idle timeout.
        ["idle", ..] => {
            let mut c = SSE_HEAD.to_vec();
            chunk(&mut c, &token_event(0));
            if sock.write_all(&c).await.is_err() {
                return false;
            }
            sleep(3000).await;
            false
        }
        // Anything else: a small JSON answer with a length.
        _ => {
            let body = br#"{"ok":true,"items":[1,2,3]}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            sock.write_all(&[head.as_bytes(), body].concat())
                .await
                .is_ok()
        }
    }
}

async fn upstream_conn(mut sock: TcpStream) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut tmp = [0u8; 4096];
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&tmp[..k]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        if !answer(&mut sock, &path).await {
            return;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// The clients.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Complete,
    Big,
    Abort,
    Crash,
    Idle,
    Heartbeat,
    Plain,
    Dead,
}

impl Op {
    fn pick(r: u64) -> Op {
        match r % 100 {
            0..=34 => Op::Complete,
            35..=39 => Op::Big,
            40..=59 => Op::Abort,
            60..=71 => Op::Crash,
            72..=76 => Op::Idle,
            77..=81 => Op::Heartbeat,
            82..=96 => Op::Plain,
            _ => Op::Dead,
        }
    }
}

/// What a client got: status, body bytes, whether the body ended cleanly.
struct Got {
    status: u16,
    body: Vec<u8>,
    clean_end: bool,
}

/// Reads a response; `stop_after` body bytes (if given) and hangs up instead of finishing.
async fn read_response(s: &mut TcpStream, stop_after: Option<usize>) -> Res<Got> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let k = s.read(&mut tmp).await.map_err(|e| e.to_string())?;
        if k == 0 {
            return Err("closed before the response head".into());
        }
        buf.extend_from_slice(&tmp[..k]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let chunked = head.contains("transfer-encoding: chunked");
    let length: Option<usize> = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    let mut raw: Vec<u8> = buf.split_off(head_end);
    let mut body = Vec::new();
    loop {
        // Decode what is there.
        if chunked {
            while let Some(eol) = find(&raw, b"\r\n") {
                let size = std::str::from_utf8(&raw[..eol])
                    .ok()
                    .and_then(|t| usize::from_str_radix(t.trim(), 16).ok())
                    .ok_or("bad chunk size")?;
                if raw.len() < eol + 2 + size + 2 {
                    break;
                }
                if size == 0 {
                    return Ok(Got {
                        status,
                        body,
                        clean_end: true,
                    });
                }
                body.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
                raw.drain(..eol + 2 + size + 2);
            }
        } else {
            body.append(&mut raw);
            if length.is_some_and(|l| body.len() >= l) {
                return Ok(Got {
                    status,
                    body,
                    clean_end: true,
                });
            }
        }
        if stop_after.is_some_and(|n| body.len() >= n) {
            return Ok(Got {
                status,
                body,
                clean_end: false,
            });
        }
        match s.read(&mut tmp).await {
            Ok(0) | Err(_) => {
                return Ok(Got {
                    status,
                    body,
                    clean_end: false,
                })
            }
            Ok(k) => raw.extend_from_slice(&tmp[..k]),
        }
    }
}

async fn request(proxy: SocketAddr, path: &str, stop_after: Option<usize>) -> Res<Got> {
    let mut s = TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: soak\r\nAccept: text/event-stream\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    read_response(&mut s, stop_after).await
}

/// Runs one operation; `Err` names what was not as expected.
async fn run_op(proxy: SocketAddr, op: Op, r: u64) -> Res<()> {
    let done = |b: &[u8]| find(b, b"data: [DONE]").is_some();
    match op {
        Op::Complete => {
            let n = 10 + (r >> 8) as usize % 190;
            let g = request(proxy, &format!("/api/chat/stream/complete/{n}"), None).await?;
            let events = g.body.windows(6).filter(|w| w == b"data: ").count();
            if g.status != 200 || !g.clean_end || !done(&g.body) || events != n + 1 {
                return Err(format!(
                    "complete: {} clean {} events {events}/{}",
                    g.status,
                    g.clean_end,
                    n + 1
                ));
            }
        }
        Op::Big => {
            let g = request(proxy, "/api/chat/stream/big/8", None).await?;
            if g.status != 200 || !g.clean_end || g.body.len() != 8 * ((32 << 10) + 8) + 14 {
                return Err(format!("big: {} {} bytes", g.status, g.body.len()));
            }
        }
        Op::Abort => {
            let keep = 200 + (r >> 8) as usize % 8000;
            let g = request(proxy, "/api/chat/stream/long", Some(keep)).await?;
            if g.status != 200 || g.body.len() < keep {
                return Err(format!("abort: {} {} bytes", g.status, g.body.len()));
            }
        }
        Op::Crash => {
            let g = request(proxy, "/api/chat/stream/crash/5", None).await?;
            if g.status != 200 || g.clean_end {
                return Err(format!("crash: {} clean {}", g.status, g.clean_end));
            }
        }
        Op::Idle => {
            let g = request(proxy, "/idle/x", None).await?;
            if g.status != 200 || g.clean_end {
                return Err(format!("idle: {} clean {}", g.status, g.clean_end));
            }
        }
        Op::Heartbeat => {
            let g = request(proxy, "/hb/x", None).await?;
            if g.status != 200 || !g.clean_end || !done(&g.body) {
                return Err(format!("heartbeat: {} clean {}", g.status, g.clean_end));
            }
        }
        Op::Plain => {
            let g = request(proxy, "/plain", None).await?;
            if g.status != 200 || g.body != br#"{"ok":true,"items":[1,2,3]}"# {
                return Err(format!("plain: {}", g.status));
            }
        }
        Op::Dead => {
            let g = request(proxy, "/dead/x", None).await?;
            if g.status != 502 {
                return Err(format!("dead: {}", g.status));
            }
        }
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    ok: BTreeMap<Op, u64>,
    failed: BTreeMap<Op, u64>,
    samples_of_failures: Vec<String>,
}

async fn worker(
    proxy: SocketAddr,
    seed: u64,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    ops: Arc<AtomicU64>,
) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while !stop.load(Ordering::Relaxed) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let op = Op::pick(s);
        let res = tokio::time::timeout(Duration::from_secs(30), run_op(proxy, op, s >> 8))
            .await
            .unwrap_or_else(|_| Err(format!("{op:?}: no answer in 30 s")));
        ops.fetch_add(1, Ordering::Relaxed);
        let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
        match res {
            Ok(()) => *t.ok.entry(op).or_default() += 1,
            Err(e) => {
                *t.failed.entry(op).or_default() += 1;
                if t.samples_of_failures.len() < 20 {
                    t.samples_of_failures.push(e);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The process under test.

fn free_addr() -> Res<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())
}

fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

async fn http_get(addr: SocketAddr, path: &str) -> Res<String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let g = read_response(&mut s, None).await?;
    Ok(String::from_utf8_lossy(&g.body).into_owned())
}

/// Sum of `ssegate_streams_active` over routes.
async fn streams_active(admin: SocketAddr) -> Res<f64> {
    let m = http_get(admin, "/metrics").await?;
    Ok(m.lines()
        .filter(|l| l.starts_with("ssegate_streams_active{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

struct Sample {
    t: f64,
    rss_kib: u64,
    hwm_kib: u64,
    fds: usize,
    threads: u64,
    active: f64,
    ops: u64,
}

fn config(proxy: SocketAddr, admin: SocketAddr, up: SocketAddr, dead: SocketAddr) -> String {
    [
        "listen:".to_string(),
        format!("  - addr: {proxy}"),
        "admin:".into(),
        format!("  addr: {admin}"),
        "threads: 2".into(),
        "shutdown_grace: 1s".into(),
        "upstreams:".into(),
        "  app:".into(),
        format!("    servers: [\"{up}\"]"),
        "    connect_timeout: 1s".into(),
        "  dead:".into(),
        format!("    servers: [\"{dead}\"]"),
        "    connect_timeout: 1s".into(),
        "routes:".into(),
        "  - path: /api/chat/stream/".into(),
        "    name: chat".into(),
        "    upstream: app".into(),
        "    stream:".into(),
        "      idle_timeout: 30s".into(),
        "  - path: /hb/".into(),
        "    name: heartbeat".into(),
        "    upstream: app".into(),
        "    stream:".into(),
        "      idle_timeout: 30s".into(),
        "      heartbeat: 100ms".into(),
        "  - path: /idle/".into(),
        "    name: idle".into(),
        "    upstream: app".into(),
        "    stream:".into(),
        "      idle_timeout: 500ms".into(),
        "  - path: /dead/".into(),
        "    name: dead".into(),
        "    upstream: dead".into(),
        "  - path: /".into(),
        "    name: plain".into(),
        "    upstream: app".into(),
        "    read_timeout: 10s".into(),
    ]
    .join("\n")
        + "\n"
}

struct Ssegate {
    child: Child,
    log: PathBuf,
}

impl Drop for Ssegate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_ssegate(bin: &Path, dir: &Path, yaml: &str, admin: SocketAddr) -> Res<Ssegate> {
    let conf = dir.join("ssegate.yaml");
    std::fs::write(&conf, yaml).map_err(|e| e.to_string())?;
    let log = dir.join("ssegate.log");
    let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .args(["run", "-c"])
        .arg(&conf)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let mut s = Ssegate { child, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(st)) = s.child.try_wait() {
            return Err(format!("ssegate exited at start: {st}"));
        }
        if http_get(admin, "/healthz").await.is_ok_and(|b| b == "ok\n") {
            return Ok(s);
        }
        if Instant::now() > deadline {
            return Err("ssegate not ready in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    match soak().await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}

async fn soak() -> Res<bool> {
    let a = args()?;
    let run_for = Duration::from_secs_f64(a.minutes * 60.0);
    let warmup = Duration::from_secs(
        a.warmup_secs
            .unwrap_or_else(|| (run_for.as_secs() / 5).clamp(30, 180)),
    );
    let dir = std::env::temp_dir().join(format!("ssegate-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;

    let upstream = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let up_addr = upstream.local_addr().map_err(|e| e.to_string())?;
    let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
    let c2 = conns.clone();
    let up_task = tokio::spawn(async move {
        while let Ok((sock, _)) = upstream.accept().await {
            let h = tokio::spawn(upstream_conn(sock));
            let mut c = c2.lock().unwrap_or_else(|p| p.into_inner());
            c.retain(|h| !h.is_finished());
            c.push(h);
        }
    });
    let (proxy, admin, dead) = (free_addr()?, free_addr()?, free_addr()?);
    let mut ssegate = start_ssegate(
        &a.ssegate,
        &dir,
        &config(proxy, admin, up_addr, dead),
        admin,
    )
    .await?;
    let pid = ssegate.child.id();
    let fds_before = fds(pid);
    let rss_before = proc_status(pid, "VmRSS:");
    println!(
        "soak: ssegate pid {pid}, {} workers, {:.1} min, warm-up {} s; before: RSS {rss_before} KiB, {fds_before} fds",
        a.workers,
        a.minutes,
        warmup.as_secs()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let tally: Arc<Mutex<Tally>> = Arc::default();
    let ops = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..a.workers)
        .map(|i| {
            tokio::spawn(worker(
                proxy,
                i as u64 + 1,
                stop.clone(),
                tally.clone(),
                ops.clone(),
            ))
        })
        .collect();

    let mut csv = match &a.csv {
        Some(p) => Some(std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    if let Some(f) = csv.as_mut() {
        let _ = writeln!(f, "seconds,rss_kib,hwm_kib,fds,threads,streams_active,ops");
    }
    let t0 = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut died = None;
    println!("   t(s)   RSS(KiB)   HWM(KiB)  fds  thr  active      ops");
    while t0.elapsed() < run_for {
        tokio::time::sleep(
            Duration::from_secs(a.sample_secs)
                .min(run_for.saturating_sub(t0.elapsed()) + Duration::from_millis(1)),
        )
        .await;
        if let Ok(Some(st)) = ssegate.child.try_wait() {
            died = Some(st.to_string());
            break;
        }
        let s = Sample {
            t: t0.elapsed().as_secs_f64(),
            rss_kib: proc_status(pid, "VmRSS:"),
            hwm_kib: proc_status(pid, "VmHWM:"),
            fds: fds(pid),
            threads: proc_status(pid, "Threads:"),
            active: streams_active(admin).await.unwrap_or(f64::NAN),
            ops: ops.load(Ordering::Relaxed),
        };
        println!(
            "{:7.0} {:10} {:10} {:4} {:4} {:7.0} {:8}",
            s.t, s.rss_kib, s.hwm_kib, s.fds, s.threads, s.active, s.ops
        );
        if let Some(f) = csv.as_mut() {
            let _ = writeln!(
                f,
                "{:.1},{},{},{},{},{},{}",
                s.t, s.rss_kib, s.hwm_kib, s.fds, s.threads, s.active, s.ops
            );
        }
        samples.push(s);
    }

    // Stop the clients, let the streams in flight end, then close the upstream side too
    // (pooled upstream connections go with it).
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(40), w).await;
    }
    let mut active_end = f64::NAN;
    for _ in 0..300 {
        active_end = streams_active(admin).await.unwrap_or(f64::NAN);
        if active_end == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    up_task.abort();
    for h in conns.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        h.abort();
    }
    let mut fds_end = fds(pid);
    let settle = Instant::now();
    while fds_end > fds_before && settle.elapsed() < Duration::from_secs(90) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        fds_end = fds(pid);
    }
    let rss_end = proc_status(pid, "VmRSS:");
    let log = std::fs::read_to_string(&ssegate.log).unwrap_or_default();
    if died.is_none() {
        if let Ok(Some(st)) = ssegate.child.try_wait() {
            died = Some(st.to_string());
        }
    }

    // Verdicts.
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t > warmup.as_secs_f64())
        .collect();
    // The warm-up peak; a run too short to have a warm-up sample compares to its first one.
    let warm_peak = samples
        .iter()
        .filter(|s| s.t <= warmup.as_secs_f64())
        .map(|s| s.rss_kib)
        .max()
        .or_else(|| samples.first().map(|s| s.rss_kib))
        .unwrap_or(0);
    let after_peak = after.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let after_first = after.first().map_or(0, |s| s.rss_kib);
    let after_last = after.last().map_or(0, |s| s.rss_kib);
    let growth = if warm_peak > 0 {
        after_peak as f64 / warm_peak as f64 - 1.0
    } else {
        f64::NAN
    };
    let t = tally.lock().unwrap_or_else(|p| p.into_inner());
    let total_ok: u64 = t.ok.values().sum();
    let total_failed: u64 = t.failed.values().sum();
    let panics = log.matches("panicked").count();
    println!();
    println!("operations: {total_ok} as expected, {total_failed} not");
    for (op, n) in &t.ok {
        println!(
            "  {op:?}: {n} ok, {} not",
            t.failed.get(op).copied().unwrap_or(0)
        );
    }
    for f in &t.samples_of_failures {
        println!("  e.g. {f}");
    }
    println!(
        "memory: RSS before load {rss_before} KiB; warm-up peak {warm_peak} KiB; after warm-up first {after_first}, peak {after_peak}, last {after_last} KiB ({:+.1}% over the warm-up peak); after the load {rss_end} KiB",
        growth * 100.0
    );
    println!("streams_active after the load: {active_end}");
    println!("fds: {fds_before} before the first request, {fds_end} at the end");
    println!(
        "panics in the log: {panics}; process: {}",
        died.as_deref().unwrap_or("alive")
    );
    let checks = [
        ("memory within 5% after warm-up", growth <= 0.05),
        ("streams_active back to 0", active_end == 0.0),
        ("no descriptor leak", fds_end <= fds_before),
        ("process alive, no panic", died.is_none() && panics == 0),
        (
            "every client saw what it expected",
            total_failed == 0 && total_ok > 0,
        ),
    ];
    let mut pass = true;
    for (name, ok) in checks {
        println!("{} {name}", if ok { "PASS" } else { "FAIL" });
        pass &= ok;
    }
    drop(ssegate);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(pass)
}
