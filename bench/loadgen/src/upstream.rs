//! The upstream: an HTTP/1.1 server that streams OpenAI-style SSE events, each stamped with
//! its send time and written as its own chunk, and answers a small plain response.
//!
//! `GET /stream?n=N&iv=US` sends N token events US microseconds apart (0: as fast as the
//! socket takes them), then `data: [DONE]` and the last chunk. `GET /stream-unobserved` sends
//! the same bytes labelled `application/json`, which ssegate passes on without observing: the
//! pair measures what observation costs. `GET /plain` answers 13 bytes.
//! Connections are kept alive, as a real app server does for a proxy's upstream pool.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, MissedTickBehavior};

use crate::clock::{now_ns, parse_duration};

/// Flags of `loadgen upstream`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:18000")]
    listen: SocketAddr,
    /// Worker threads (1 keeps the upstream's cost on one core, out of the proxy's way).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Exit after this long, so a forgotten upstream cannot run for ever.
    #[arg(long, default_value = "60m", value_parser = parse_duration)]
    max_time: Duration,
}

/// How long an idle keep-alive connection may wait for its next request.
const IDLE: Duration = Duration::from_secs(120);
/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Most requests served on one connection.
const MAX_REQUESTS_PER_CONN: u64 = 10_000_000;
/// Most events one stream may ask for.
const MAX_EVENTS: u64 = 100_000_000;

const STREAM_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
const UNOBSERVED_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
const PLAIN: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n";
const NOT_FOUND: &[u8] =
    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n";
const BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// `[DONE]` as its own chunk, then the last chunk.
const DONE_AND_END: &[u8] = b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";
const EVENT_PREFIX: &[u8] = br#"data: {"id":"chatcmpl-x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok"}}],"t":"#;
const EVENT_SUFFIX: &[u8] = b"}\n\n";

/// Runs the upstream until `max_time` passes.
pub fn main(args: Args) -> Result<(), String> {
    let rt = crate::runtime(args.threads)?;
    rt.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("listen on {}: {e}", args.listen))?;
        eprintln!("loadgen upstream: listening on {}", args.listen);
        let _ = timeout(args.max_time, accept_loop(listener)).await;
        eprintln!("loadgen upstream: max time reached, exiting");
        Ok(())
    })
}

async fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                tokio::spawn(async move {
                    // A failed connection only ends that connection.
                    let _ = serve_conn(sock).await;
                });
            }
            // Out of file descriptors or similar: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// What a request asked for.
enum Request {
    Stream {
        events: u64,
        interval: Duration,
        head: &'static [u8],
    },
    Plain,
    NotFound,
}

/// Serves the requests of one connection until it closes or goes idle.
async fn serve_conn(mut sock: TcpStream) -> std::io::Result<()> {
    // Events must leave as their own segments, the moment they are written.
    sock.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    for _ in 0..MAX_REQUESTS_PER_CONN {
        let (req, close) = match read_request(&mut sock, &mut buf).await? {
            Some(r) => r,
            None => return Ok(()),
        };
        match req {
            Ok(Request::Stream {
                events,
                interval,
                head,
            }) => {
                stream(&mut sock, head, events, interval).await?;
            }
            Ok(Request::Plain) => sock.write_all(PLAIN).await?,
            Ok(Request::NotFound) => sock.write_all(NOT_FOUND).await?,
            Err(()) => {
                sock.write_all(BAD).await?;
                return Ok(());
            }
        }
        if close {
            return Ok(());
        }
    }
    Ok(())
}

type Parsed = (Result<Request, ()>, bool);

/// Reads one request head (and skips its body); `None` when the peer closed or went idle.
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Parsed>> {
    loop {
        if let Some((head_len, parsed, body_len)) = parse_request(buf) {
            let mut skip = head_len + body_len;
            let have = skip.min(buf.len());
            buf.drain(..have);
            skip -= have;
            // A body we do not need: read and drop it.
            let mut scratch = [0u8; 4096];
            while skip > 0 {
                let want = skip.min(scratch.len());
                let n = sock.read(&mut scratch[..want]).await?;
                if n == 0 {
                    return Ok(None);
                }
                skip -= n;
            }
            return Ok(Some(parsed));
        }
        if buf.len() > MAX_HEAD {
            return Ok(Some((Err(()), true)));
        }
        let mut chunk = [0u8; 4096];
        let n = match timeout(IDLE, sock.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => return Ok(None),
        };
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Parses a complete request head at the start of `buf`: (head length, request and whether
/// to close after it, body length). `None` if the head is not complete yet.
fn parse_request(buf: &[u8]) -> Option<(usize, Parsed, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some((buf.len(), (Err(()), true), 0)),
    };
    let mut close = req.version == Some(0);
    let mut body_len = 0usize;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            close = v.contains("close") || (close && !v.contains("keep-alive"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Some(n) => body_len = n,
                None => return Some((head_len, (Err(()), true), 0)),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked request bodies are never sent by the bench's clients.
            return Some((head_len, (Err(()), true), 0));
        }
    }
    let path = req.path.unwrap_or("/");
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let parsed = match route {
        "/stream" | "/stream-unobserved" => {
            let head = if route == "/stream" {
                STREAM_HEAD
            } else {
                UNOBSERVED_HEAD
            };
            parse_stream_query(query).map(|(events, interval)| Request::Stream {
                events,
                interval,
                head,
            })
        }
        "/plain" => Ok(Request::Plain),
        _ => Ok(Request::NotFound),
    };
    Some((head_len, (parsed, close), body_len))
}

/// `n=<events>&iv=<microseconds>`.
fn parse_stream_query(query: &str) -> Result<(u64, Duration), ()> {
    let (mut events, mut interval_us) = (10u64, 20_000u64);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or(())?;
        let v: u64 = v.parse().map_err(|_| ())?;
        match k {
            "n" => events = v.min(MAX_EVENTS),
            "iv" => interval_us = v.min(60_000_000),
            _ => {}
        }
    }
    Ok((events, Duration::from_micros(interval_us)))
}

/// Streams `events` stamped token events, then `[DONE]` and the last chunk.
async fn stream(
    sock: &mut TcpStream,
    head: &[u8],
    events: u64,
    interval: Duration,
) -> std::io::Result<()> {
    sock.write_all(head).await?;
    let mut chunk: Vec<u8> = Vec::with_capacity(256);
    let mut ticker = (!interval.is_zero()).then(|| {
        // The first event goes out at once (a timer would round it up to the next
        // millisecond), the next ones one interval apart.
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        // A late tick must not be followed by a burst: the pace stays one event per interval.
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        t
    });
    for i in 0..events {
        if let (Some(t), true) = (ticker.as_mut(), i > 0) {
            t.tick().await;
        }
        // Stamp as late as possible: the delay measured starts at this write.
        event_chunk(&mut chunk, now_ns());
        sock.write_all(&chunk).await?;
    }
    sock.write_all(DONE_AND_END).await
}

/// Writes one event, framed as one HTTP chunk, into `out`.
fn event_chunk(out: &mut Vec<u8>, t: u64) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut v = t;
    loop {
        digits[19 - n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let payload_len = EVENT_PREFIX.len() + n + EVENT_SUFFIX.len();
    out.clear();
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{payload_len:x}\r\n");
    out.extend_from_slice(EVENT_PREFIX);
    out.extend_from_slice(&digits[20 - n..]);
    out.extend_from_slice(EVENT_SUFFIX);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Chunked, Event, EventScanner};

    #[test]
    fn event_chunk_round_trips() {
        let mut out = Vec::new();
        event_chunk(&mut out, 1_234_567_890_123);
        let mut d = Chunked::default();
        let mut s = EventScanner::default();
        d.decode(&out, s.buf()).expect("valid chunk");
        let mut seen = Vec::new();
        s.drain(|e| seen.push(e));
        assert_eq!(seen, vec![Event::Stamped(1_234_567_890_123)]);
        assert!(out.starts_with(b"80\r\ndata: {\"id\":\"chatcmpl-x\""));
    }

    #[test]
    fn done_chunk_is_framed_right() {
        let mut d = Chunked::default();
        let mut out = Vec::new();
        d.decode(DONE_AND_END, &mut out).expect("valid");
        assert!(d.is_done());
        assert_eq!(out, b"data: [DONE]\n\n");
    }

    #[test]
    fn requests() {
        let (len, (req, close), body) =
            parse_request(b"GET /stream?n=5&iv=0 HTTP/1.1\r\nHost: x\r\n\r\n").expect("complete");
        assert_eq!((len, close, body), (42, false, 0));
        assert!(
            matches!(req, Ok(Request::Stream { events: 5, interval, .. }) if interval.is_zero())
        );
        let (_, (req, close), body) = parse_request(
            b"POST /plain HTTP/1.1\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
        )
        .expect("complete");
        assert!(matches!(req, Ok(Request::Plain)) && close && body == 3);
        assert!(parse_request(b"GET /plain HTTP/1.1\r\n").is_none());
    }
}
