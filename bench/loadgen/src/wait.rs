//! `loadgen wait`: blocks until a target proxies requests, then warms it up, so a measurement
//! never includes a proxy's start-up or its first upstream connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::clock::parse_duration;
use crate::http::{parse_response_head, Chunked, Event, EventScanner, Framing};

/// Flags of `loadgen wait`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The proxy (or upstream) to wait for.
    #[arg(long)]
    target: SocketAddr,
    /// Give up after this long.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    timeout: Duration,
    /// Plain requests to send once it answers, over one kept-alive connection.
    #[arg(long, default_value_t = 200)]
    warm: u32,
    /// Short streams to run once it answers.
    #[arg(long, default_value_t = 4)]
    warm_streams: u32,
}

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits, warms up, and returns once the target works.
pub fn main(args: Args) -> Result<(), String> {
    let deadline = Instant::now() + args.timeout;
    // Bounded by the deadline.
    loop {
        match TcpStream::connect_timeout(&args.target, IO_TIMEOUT)
            .map_err(|e| e.to_string())
            .and_then(|mut s| request(&mut s, "/plain"))
        {
            Ok(_) => break,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "{} not ready after {:?}: {e}",
                    args.target, args.timeout
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let mut conn = TcpStream::connect_timeout(&args.target, IO_TIMEOUT)
        .map_err(|e| format!("connect: {e}"))?;
    for _ in 0..args.warm {
        request(&mut conn, "/plain")?;
    }
    for _ in 0..args.warm_streams {
        let mut s = TcpStream::connect_timeout(&args.target, IO_TIMEOUT)
            .map_err(|e| format!("connect: {e}"))?;
        let events = request(&mut s, "/stream?n=20&iv=1000")?;
        if events != 20 {
            return Err(format!("warm-up stream got {events} of 20 events"));
        }
    }
    Ok(())
}

/// Sends one GET and reads the whole 200 response; returns how many stamped events it had.
fn request(s: &mut TcpStream, path: &str) -> Result<u64, String> {
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0;
    let head = loop {
        let n = s.read(&mut buf[filled..]).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the response".into());
        }
        filled += n;
        if let Some(h) = parse_response_head(&buf[..filled])? {
            break h;
        }
        if filled == buf.len() {
            return Err("response head too large".into());
        }
    };
    if head.status != 200 {
        return Err(format!("status {}", head.status));
    }
    let mut scanner = EventScanner::default();
    let mut chunked = Chunked::default();
    let mut pending = buf[head.len..filled].to_vec();
    let mut got: u64 = 0;
    // Bounded: the body is small and every read has a timeout.
    loop {
        let done = match head.framing {
            Framing::Chunked => {
                chunked.decode(&pending, scanner.buf())?;
                chunked.is_done()
            }
            Framing::Length(n) => {
                got += pending.len() as u64;
                got >= n
            }
            Framing::Close => false,
        };
        if done {
            break;
        }
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            if head.framing == Framing::Close {
                break;
            }
            return Err("closed mid-body".into());
        }
        pending = buf[..n].to_vec();
    }
    let mut events = 0;
    scanner.drain(|e| events += matches!(e, Event::Stamped(_)) as u64);
    Ok(events)
}
