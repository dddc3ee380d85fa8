//! The human-readable summary `ssegate check` prints.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Balance, Config};

/// Describes `cfg`: listeners, admin, threads, routes in match order, upstreams.
pub fn summary(cfg: &Config) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(s, "config: {}", cfg.source.display());
    let _ = writeln!(s, "listen:");
    for l in &cfg.listeners {
        match &l.tls {
            Some(tls) => {
                let _ = writeln!(
                    s,
                    "  {} tls cert={} key={}",
                    l.addr,
                    tls.cert.display(),
                    tls.key.display()
                );
            }
            None => {
                let _ = writeln!(s, "  {}", l.addr);
            }
        }
    }
    let _ = writeln!(s, "admin: {}", cfg.admin);
    let _ = writeln!(s, "threads: {}", cfg.threads);
    let proxies: Vec<String> = cfg
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    let proxies = if proxies.is_empty() {
        "none".to_string()
    } else {
        proxies.join(", ")
    };
    let _ = writeln!(s, "trusted_proxies: {proxies}");
    let _ = writeln!(s, "shutdown_grace: {}", dur(cfg.shutdown_grace));
    let _ = writeln!(s, "header_timeout: {}", dur(cfg.header_timeout));

    let _ = writeln!(s, "routes (match order):");
    for (n, r) in cfg.routes.iter().enumerate() {
        let _ = write!(s, "  {}.", n + 1);
        if let Some(host) = &r.host {
            let _ = write!(s, " host={host}");
        }
        let _ = write!(
            s,
            " path={} name={} upstream={}",
            r.path, r.name, r.upstream_name
        );
        if r.read_timeout_set || r.stream.is_none() {
            let _ = write!(s, " read_timeout={}", dur(r.read_timeout));
        }
        if let Some(st) = &r.stream {
            let heartbeat = st.heartbeat.map_or_else(|| "off".to_string(), dur);
            let _ = write!(
                s,
                " stream(idle_timeout={} heartbeat={} sse_headers={} early_headers={})",
                dur(st.idle_timeout),
                heartbeat,
                st.sse_headers,
                st.early_headers
            );
        }
        if let Some(max) = r.max_streams {
            let _ = write!(s, " max_streams={max}");
        }
        if let Some(max) = r.max_streams_per_client {
            let _ = write!(s, " max_streams_per_client={max}");
        }
        s.push('\n');
    }

    let _ = writeln!(s, "upstreams:");
    for u in &cfg.upstreams {
        let balance = match u.balance {
            Balance::LeastStreams => "least_streams",
            Balance::RoundRobin => "round_robin",
        };
        let _ = write!(
            s,
            "  {}: servers={} balance={balance} connect_timeout={}",
            u.name,
            u.servers.join(","),
            dur(u.connect_timeout)
        );
        if let Some(h) = &u.health_check {
            let _ = write!(s, " health_check={} every {}", h.path, dur(h.interval));
        }
        if let Some(k) = &u.keep_warm {
            let _ = write!(
                s,
                " keep_warm={} {} every {}",
                k.method,
                k.path,
                dur(k.interval)
            );
            if let Some(body) = &k.body {
                let _ = write!(s, " (body {} bytes)", body.len());
            }
        }
        s.push('\n');
    }
    s
}

fn dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
