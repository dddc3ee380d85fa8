//! The stream client: opens many SSE streams through a target, measures for every event the
//! delay between the upstream's send stamp and its arrival here, plus each stream's TTFB, and
//! samples the target's CPU and memory from /proc while it runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{timeout, Instant};

use crate::clock::{now_ns, parse_duration};
use crate::http::{parse_response_head, Chunked, Event, EventScanner, Framing};
use crate::procfs::{self, Sampler};
use crate::stats::{percentile_us, round1};

/// What a run measures (it only changes the defaults and the label).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Paced events on a moderate number of streams: per-event delay and TTFB.
    Latency,
    /// Many slow streams at once: memory per open stream.
    Fanout,
    /// Few streams, events as fast as possible: throughput and CPU per event.
    Raw,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Latency => "latency",
            Mode::Fanout => "fanout",
            Mode::Raw => "raw",
        }
    }
}

/// Flags of `loadgen client`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to open streams: the proxy, or the upstream itself for the direct baseline.
    #[arg(long)]
    target: SocketAddr,
    /// Request path; the events and interval are added as the query.
    #[arg(long, default_value = "/stream")]
    path: String,
    /// What the run measures.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Concurrent streams.
    #[arg(long)]
    streams: usize,
    /// Token events per stream.
    #[arg(long)]
    events: u64,
    /// Pause between events of a stream (0: as fast as the upstream can send).
    #[arg(long, value_parser = parse_duration)]
    interval: Duration,
    /// Spread the stream starts evenly over this long (default: one interval, so paced
    /// streams do not tick in lockstep; 5s for fanout).
    #[arg(long, value_parser = parse_duration)]
    ramp: Option<Duration>,
    /// Connection attempts in flight at once (a listen backlog is finite).
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Client worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Root PIDs of the proxy under test (comma-separated); their descendants are included.
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    /// PID of the loadgen upstream, to report the tool's own CPU.
    #[arg(long)]
    upstream_pid: Option<u32>,
    /// How often memory is sampled.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    sample_every: Duration,
    /// Name of the target in the results (direct, nginx, haproxy, ssegate).
    #[arg(long)]
    label: String,
    /// Round number, carried into the results.
    #[arg(long, default_value_t = 1)]
    round: u32,
}

/// What one stream saw.
#[derive(Debug, Default)]
struct StreamResult {
    /// Send-to-receive delay of every stamped event, in ns.
    delays: Vec<u64>,
    ttfb_ns: Option<u64>,
    events: u64,
    completed: bool,
    error: Option<String>,
    requested_ns: u64,
    ended_ns: u64,
}

/// Everything a stream task needs, shared by all of them.
struct StreamSpec {
    target: SocketAddr,
    request: Vec<u8>,
    events: u64,
    read_buf: usize,
    deadline: Duration,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEAD: usize = 16 * 1024;

/// Runs the client and prints one JSON line of results.
pub fn main(args: Args) -> Result<(), String> {
    if args.streams == 0 || args.events == 0 {
        return Err("--streams and --events must be at least 1".into());
    }
    let ramp = args.ramp.unwrap_or(match args.mode {
        Mode::Fanout => Duration::from_secs(5),
        _ => args.interval,
    });
    // Generous, but finite: a stalled proxy ends the run instead of hanging it.
    let pace = args
        .interval
        .saturating_mul(args.events.min(u32::MAX as u64) as u32);
    let deadline = pace
        + Duration::from_secs(60)
        + if args.interval.is_zero() {
            Duration::from_secs(240)
        } else {
            Duration::ZERO
        };
    let spec = Arc::new(StreamSpec {
        target: args.target,
        request: format!(
            "GET {}?n={}&iv={} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
            args.path,
            args.events,
            args.interval.as_micros()
        )
        .into_bytes(),
        events: args.events,
        // Fast streams read big batches; thousands of slow ones would waste big buffers.
        read_buf: if args.interval.is_zero() {
            64 * 1024
        } else {
            4096
        },
        deadline,
    });

    let loadavg = procfs::loadavg_1m();
    let proxy = Sampler::start(&args.pids, args.sample_every);
    let upstream = Sampler::start(
        &args.upstream_pid.into_iter().collect::<Vec<_>>(),
        Duration::from_secs(1),
    );
    let cpu0 = procfs::self_cpu_s();
    let started = std::time::Instant::now();

    let rt = crate::runtime(args.threads)?;
    let results = rt.block_on(run_streams(
        spec,
        args.streams,
        ramp,
        args.connect_concurrency,
    ));
    drop(rt);

    let wall = started.elapsed().as_secs_f64();
    let client_cpu = procfs::self_cpu_s() - cpu0;
    let proxy = proxy.finish();
    let upstream = upstream.finish();

    let mut delays: Vec<u64> = Vec::new();
    let mut ttfbs: Vec<u64> = Vec::new();
    let (mut events, mut completed) = (0u64, 0usize);
    let mut errors: std::collections::BTreeMap<String, usize> = Default::default();
    let (mut first_req, mut last_end) = (u64::MAX, 0u64);
    for r in &results {
        delays.extend_from_slice(&r.delays);
        ttfbs.extend(r.ttfb_ns);
        events += r.events;
        completed += r.completed as usize;
        if let Some(e) = &r.error {
            *errors.entry(e.clone()).or_default() += 1;
        }
        if r.requested_ns > 0 {
            first_req = first_req.min(r.requested_ns);
        }
        last_end = last_end.max(r.ended_ns);
    }
    delays.sort_unstable();
    ttfbs.sort_unstable();
    let span_s = if last_end > first_req {
        (last_end - first_req) as f64 / 1e9
    } else {
        0.0
    };
    let out = json!({
        "scenario": args.mode.name(),
        "target": args.label,
        "round": args.round,
        "streams": args.streams,
        "events_per_stream": args.events,
        "interval_us": args.interval.as_micros() as u64,
        "ramp_ms": ramp.as_millis() as u64,
        "streams_completed": completed,
        "events_received": events,
        "events_expected": args.events * args.streams as u64,
        "errors": errors,
        "delay_p50_us": percentile_us(&delays, 50.0),
        "delay_p90_us": percentile_us(&delays, 90.0),
        "delay_p99_us": percentile_us(&delays, 99.0),
        "delay_p999_us": percentile_us(&delays, 99.9),
        "delay_max_us": percentile_us(&delays, 100.0),
        "ttfb_p50_us": percentile_us(&ttfbs, 50.0),
        "ttfb_p99_us": percentile_us(&ttfbs, 99.0),
        "span_s": round1(span_s * 1000.0) / 1000.0,
        "events_per_s": if span_s > 0.0 { (events as f64 / span_s).round() } else { 0.0 },
        "proxy_procs": proxy.procs,
        "proxy_cpu_s": proxy.cpu_s,
        "proxy_rss_start_kib": proxy.rss_start_kib,
        "proxy_rss_peak_kib": proxy.rss_peak_kib,
        "proxy_rss_end_kib": proxy.rss_end_kib,
        "client_cpu_s": round1(client_cpu * 1000.0) / 1000.0,
        "upstream_cpu_s": upstream.cpu_s,
        "wall_s": round1(wall * 1000.0) / 1000.0,
        "client_threads": args.threads,
        "loadavg_1m": loadavg,
    });
    println!("{out}");
    // The tool must not be what limits the result: say so when it ran out of CPU.
    if client_cpu > 0.9 * wall * args.threads as f64 {
        eprintln!(
            "loadgen client: warning: the client used {client_cpu:.1} CPU s in {wall:.1} s on {} thread(s); it may be the bottleneck",
            args.threads
        );
    }
    Ok(())
}

/// Opens `streams` streams, their starts spread over `ramp`, and waits for all of them.
async fn run_streams(
    spec: Arc<StreamSpec>,
    streams: usize,
    ramp: Duration,
    connect_concurrency: usize,
) -> Vec<StreamResult> {
    let connects = Arc::new(Semaphore::new(connect_concurrency.max(1)));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(streams);
    for i in 0..streams {
        let start = t0 + ramp.mul_f64(i as f64 / streams as f64);
        let (spec, connects) = (spec.clone(), connects.clone());
        tasks.push(tokio::spawn(async move {
            one_stream(&spec, start, &connects).await
        }));
    }
    let mut out = Vec::with_capacity(streams);
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| StreamResult {
            error: Some(format!("task: {e}")),
            ..Default::default()
        }));
    }
    out
}

/// One stream, from connect to the last chunk, bounded by the spec's deadline.
async fn one_stream(spec: &StreamSpec, start: Instant, connects: &Semaphore) -> StreamResult {
    tokio::time::sleep_until(start).await;
    let mut r = StreamResult::default();
    let sock = {
        let Ok(_permit) = connects.acquire().await else {
            r.error = Some("connect semaphore closed".into());
            return r;
        };
        match timeout(CONNECT_TIMEOUT, TcpStream::connect(spec.target)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                r.error = Some(format!("connect: {}", e.kind()));
                return r;
            }
            Err(_) => {
                r.error = Some("connect: timeout".into());
                return r;
            }
        }
    };
    match timeout(spec.deadline, drive(sock, spec, &mut r)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => r.error = Some(e),
        Err(_) => r.error = Some("deadline".into()),
    }
    r.ended_ns = now_ns();
    r
}

/// Sends the request and reads the response, recording every stamped event.
async fn drive(mut sock: TcpStream, spec: &StreamSpec, r: &mut StreamResult) -> Result<(), String> {
    sock.set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    r.requested_ns = now_ns();
    sock.write_all(&spec.request)
        .await
        .map_err(|e| format!("write: {}", e.kind()))?;
    let mut buf = vec![0u8; spec.read_buf.max(1)];
    let mut filled = 0;
    let head = loop {
        if filled == buf.len() {
            if buf.len() >= MAX_HEAD {
                return Err("response head too large".into());
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = sock
            .read(&mut buf[filled..])
            .await
            .map_err(|e| format!("read: {}", e.kind()))?;
        if n == 0 {
            return Err("closed before the response head".into());
        }
        filled += n;
        if let Some(h) = parse_response_head(&buf[..filled])? {
            break h;
        }
    };
    if head.status != 200 {
        return Err(format!("status {}", head.status));
    }
    let mut body = Body::new(head.framing);
    let recv = now_ns();
    let mut ended = body.feed(&buf[head.len..filled], recv, r)?;
    while !ended {
        let n = sock
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {}", e.kind()))?;
        // Stamp the arrival once per read: every event in it arrived at this moment.
        let recv = now_ns();
        if n == 0 {
            if body.framing != Framing::Close {
                return Err("closed mid-body".into());
            }
            break;
        }
        ended = body.feed(&buf[..n], recv, r)?;
    }
    r.completed = r.events == spec.events && body.saw_done;
    if !r.completed {
        return Err(format!(
            "ended after {} of {} events",
            r.events, spec.events
        ));
    }
    Ok(())
}

/// Decodes a response body and turns its events into measurements.
struct Body {
    framing: Framing,
    chunked: Chunked,
    left: u64,
    events: EventScanner,
    saw_done: bool,
}

impl Body {
    fn new(framing: Framing) -> Body {
        Body {
            framing,
            chunked: Chunked::default(),
            left: match framing {
                Framing::Length(n) => n,
                _ => u64::MAX,
            },
            events: EventScanner::default(),
            saw_done: false,
        }
    }

    /// Feeds bytes that arrived at `recv`; `Ok(true)` once the body is complete.
    fn feed(&mut self, bytes: &[u8], recv: u64, r: &mut StreamResult) -> Result<bool, String> {
        let ended = match self.framing {
            Framing::Chunked => {
                self.chunked.decode(bytes, self.events.buf())?;
                self.chunked.is_done()
            }
            Framing::Length(_) | Framing::Close => {
                let take = (bytes.len() as u64).min(self.left) as usize;
                self.events.buf().extend_from_slice(&bytes[..take]);
                self.left -= take as u64;
                self.left == 0
            }
        };
        let saw_done = &mut self.saw_done;
        self.events.drain(|e| match e {
            Event::Stamped(t) => {
                if r.ttfb_ns.is_none() {
                    r.ttfb_ns = Some(recv.saturating_sub(r.requested_ns));
                }
                r.delays.push(recv.saturating_sub(t));
                r.events += 1;
            }
            Event::Done => *saw_done = true,
            Event::Other => {}
        });
        Ok(ended)
    }
}
