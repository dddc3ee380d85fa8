//! Runs `wrk` against a target while sampling the target's CPU, and turns wrk's report into
//! one JSON line like the client's.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::clock::parse_duration;
use crate::procfs::{self, Sampler};

/// Flags of `loadgen wrk`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Root PIDs of the proxy under test (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    /// PID of the loadgen upstream, to report the tool's own CPU.
    #[arg(long)]
    upstream_pid: Option<u32>,
    /// How often memory is sampled.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    sample_every: Duration,
    /// Name of the target in the results.
    #[arg(long)]
    label: String,
    /// Round number, carried into the results.
    #[arg(long, default_value_t = 1)]
    round: u32,
    /// The wrk command line (after `--`); it must include `--latency`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// What wrk reported.
#[derive(Debug, Default, PartialEq)]
struct WrkReport {
    requests: u64,
    seconds: f64,
    rps: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    non_2xx: u64,
    socket_errors: u64,
}

/// Runs wrk under the sampler and prints one JSON line.
pub fn main(args: Args) -> Result<(), String> {
    let (program, rest) = args
        .command
        .split_first()
        .ok_or("no wrk command given after --")?;
    let loadavg = procfs::loadavg_1m();
    let proxy = Sampler::start(&args.pids, args.sample_every);
    let upstream = Sampler::start(
        &args.upstream_pid.into_iter().collect::<Vec<_>>(),
        Duration::from_secs(1),
    );
    let children0 = procfs::children_cpu_s();
    let started = std::time::Instant::now();
    let output = Command::new(program)
        .args(rest)
        .output()
        .map_err(|e| format!("running {program}: {e}"))?;
    let wall = started.elapsed().as_secs_f64();
    let wrk_cpu = procfs::children_cpu_s() - children0;
    let proxy = proxy.finish();
    let upstream = upstream.finish();
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{program} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let report = parse(&text).ok_or_else(|| format!("cannot read wrk's report:\n{text}"))?;
    let per_req_us = if report.requests > 0 {
        Some((proxy.cpu_s / report.requests as f64 * 1e7).round() / 10.0)
    } else {
        None
    };
    let out = json!({
        "scenario": "plain",
        "target": args.label,
        "round": args.round,
        "requests": report.requests,
        "wrk_seconds": report.seconds,
        "rps": report.rps,
        "p50_us": report.p50_us,
        "p99_us": report.p99_us,
        "non_2xx": report.non_2xx,
        "socket_errors": report.socket_errors,
        "proxy_procs": proxy.procs,
        "proxy_cpu_s": proxy.cpu_s,
        "proxy_cpu_us_per_req": per_req_us,
        "proxy_rss_peak_kib": proxy.rss_peak_kib,
        "wrk_cpu_s": (wrk_cpu * 1000.0).round() / 1000.0,
        "upstream_cpu_s": upstream.cpu_s,
        "wall_s": (wall * 1000.0).round() / 1000.0,
        "command": args.command.join(" "),
        "loadavg_1m": loadavg,
    });
    println!("{out}");
    Ok(())
}

/// A wrk duration such as `457.00us`, `1.20ms` or `2.00s`, in microseconds.
fn wrk_time_us(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v,
        "ms" => v * 1e3,
        "s" => v * 1e6,
        "m" => v * 60e6,
        _ => return None,
    })
}

/// Reads wrk's text report (wrk 4 with `--latency`).
fn parse(text: &str) -> Option<WrkReport> {
    let mut r = WrkReport::default();
    let mut seen_requests = false;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => r.p50_us = wrk_time_us(v),
            ["99%", v] => r.p99_us = wrk_time_us(v),
            [n, "requests", "in", secs, ..] => {
                r.requests = n.parse().ok()?;
                r.seconds = wrk_time_us(secs.trim_end_matches(','))? / 1e6;
                seen_requests = true;
            }
            ["Requests/sec:", v] => r.rps = v.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => r.non_2xx = n.parse().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                r.socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    (seen_requests && r.rps > 0.0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 5s test @ http://127.0.0.1:18000/plain
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   476.21us  102.18us   3.29ms   84.59%
    Req/Sec   104.55k     4.70k  110.27k    86.00%
  Latency Distribution
     50%  457.00us
     75%  498.00us
     90%  560.00us
     99%    1.81ms
  520163 requests in 5.00s, 53.08MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec: 104020.58
Transfer/sec:     10.62MB
";

    #[test]
    fn reads_wrk_report() {
        let r = parse(SAMPLE).expect("a report");
        assert_eq!(r.requests, 520163);
        assert_eq!(r.seconds, 5.0);
        assert_eq!(r.rps, 104020.58);
        assert_eq!(r.p50_us, Some(457.0));
        assert_eq!(r.p99_us, Some(1810.0));
        assert_eq!((r.non_2xx, r.socket_errors), (3, 3));
        assert!(parse("garbage").is_none());
    }
}
