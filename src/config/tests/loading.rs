//! Valid configs: defaults, the shipped example, the summary, reading files.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{ok, BASE};
use crate::config::{load, summary, Balance, StreamSettings};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn defaults() {
    let cfg = ok(BASE);
    assert_eq!(cfg.source, Path::new("conf/ssegate.yaml"));
    assert_eq!(cfg.admin, addr("127.0.0.1:9901"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(cfg.threads, cores);
    assert!(cfg.trusted_proxies.is_empty());
    assert_eq!(cfg.shutdown_grace, Duration::from_secs(30));
    assert_eq!(cfg.header_timeout, Duration::from_secs(10));
    assert_eq!(cfg.listeners.len(), 1);
    assert_eq!(cfg.listeners[0].addr, addr("0.0.0.0:8080"));
    assert!(cfg.listeners[0].tls.is_none());

    let names: Vec<&str> = cfg.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["backend", "frontend"]);
    let backend = &cfg.upstreams[0];
    assert_eq!(backend.servers, ["127.0.0.1:8000"]);
    assert_eq!(backend.balance, Balance::LeastStreams);
    assert_eq!(backend.connect_timeout, Duration::from_secs(5));
    assert!(backend.health_check.is_none() && backend.keep_warm.is_none());

    let api = cfg.routes.find(None, "/api/x").unwrap();
    assert_eq!(
        (api.name.as_str(), api.path.as_str(), api.host.as_deref()),
        ("/api/", "/api/", None)
    );
    assert_eq!((api.upstream, api.upstream_name.as_str()), (0, "backend"));
    assert_eq!(api.read_timeout, Duration::from_secs(60));
    assert!(!api.read_timeout_set);
    assert!(
        api.stream.is_none() && api.max_streams.is_none() && api.max_streams_per_client.is_none()
    );
    assert_eq!(cfg.routes.find(None, "/").map(|r| r.upstream), Some(1));
}

#[test]
fn optional_blocks_get_their_defaults() {
    let yaml = BASE
        .replacen(
            "    upstream: backend\n",
            "    upstream: backend\n    name: api\n    stream:\n    read_timeout: 2m\n",
            1,
        )
        .replacen(
            "    servers: [\"127.0.0.1:3000\"]\n",
            "    servers: [\"web:3000\", \"[::1]:3000\"]\n    balance: round_robin\n    \
             health_check: { path: /healthz }\n    keep_warm: { path: /v1/models }\n",
            1,
        );
    let cfg = ok(&format!(
        "{yaml}admin: {{}}\nthreads: 3\ntrusted_proxies: [10.1.0.0/16, 192.0.2.7]\n"
    ));
    let api = cfg.routes.find(None, "/api/").unwrap();
    assert_eq!(api.name, "api");
    assert_eq!(
        (api.read_timeout, api.read_timeout_set),
        (Duration::from_secs(120), true)
    );
    let want = StreamSettings {
        idle_timeout: Duration::from_secs(600),
        heartbeat: None,
        sse_headers: true,
        early_headers: false,
    };
    assert_eq!(api.stream.as_ref(), Some(&want));
    let web = &cfg.upstreams[1];
    assert_eq!(web.servers, ["web:3000", "[::1]:3000"]);
    assert_eq!(web.balance, Balance::RoundRobin);
    let hc = web.health_check.as_ref().unwrap();
    assert_eq!(
        (hc.path.as_str(), hc.interval),
        ("/healthz", Duration::from_secs(10))
    );
    let kw = web.keep_warm.as_ref().unwrap();
    assert_eq!(
        (kw.method.as_str(), kw.path.as_str(), kw.body.as_deref()),
        ("GET", "/v1/models", None)
    );
    assert_eq!(kw.interval, Duration::from_secs(300));
    assert_eq!(cfg.admin, addr("127.0.0.1:9901"));
    assert_eq!(cfg.threads, 3);
    let proxies: Vec<String> = cfg
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(proxies, ["10.1.0.0/16", "192.0.2.7/32"]);
}

#[test]
fn hosts_are_normalized_and_matched() {
    let yaml = BASE.replacen(
        "  - path: /\n",
        "  - host: Chat.Example.COM.\n    path: /\n",
        1,
    );
    let cfg = ok(&format!(
        "{yaml}  - path: /\n    upstream: backend\n    name: fallback\n"
    ));
    assert_eq!(
        cfg.routes
            .find(Some("chat.example.com:443"), "/x")
            .map(|r| r.upstream_name.as_str()),
        Some("frontend")
    );
    assert_eq!(
        cfg.routes
            .find(Some("other"), "/x")
            .map(|r| r.name.as_str()),
        Some("fallback")
    );
    let hosts: Vec<Option<&str>> = cfg.routes.iter().map(|r| r.host.as_deref()).collect();
    assert_eq!(hosts, [Some("chat.example.com"), None, None]);
}

#[test]
fn shipped_example_loads() {
    let text = include_str!("../../../conf/ssegate.yaml");
    let cfg = ok(text);
    assert_eq!(cfg.listeners.len(), 1);
    assert_eq!(cfg.listeners[0].addr, addr("0.0.0.0:8080"));
    assert_eq!(cfg.admin, addr("127.0.0.1:9901"));
    let names: Vec<&str> = cfg.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["backend", "frontend", "llm"]);
    assert_eq!(cfg.upstreams[1].servers, ["127.0.0.1:3000"]);
    let kw = cfg.upstreams[2].keep_warm.as_ref().unwrap();
    assert_eq!(
        (kw.method.as_str(), kw.interval),
        ("POST", Duration::from_secs(300))
    );
    assert!(kw.body.as_deref().unwrap().contains("\"max_tokens\":1"));

    let stream = cfg
        .routes
        .find(Some("localhost:8080"), "/api/chat/stream/abc")
        .unwrap();
    assert_eq!(stream.upstream_name, "backend");
    let st = stream.stream.as_ref().unwrap();
    assert_eq!(
        (st.idle_timeout, st.heartbeat),
        (Duration::from_secs(600), Some(Duration::from_secs(15)))
    );
    let api = cfg.routes.find(None, "/api/history").unwrap();
    assert_eq!(
        (api.path.as_str(), api.read_timeout, api.stream.is_none()),
        ("/api/", Duration::from_secs(60), true)
    );
    assert_eq!(
        cfg.routes
            .find(None, "/index.html")
            .map(|r| r.upstream_name.as_str()),
        Some("frontend")
    );
}

#[test]
fn shipped_example_loads_from_disk() {
    // file!() is relative to the package root, where cargo runs tests.
    let conf = Path::new(file!())
        .ancestors()
        .nth(4)
        .unwrap()
        .join("conf/ssegate.yaml");
    let cfg = load(&conf).unwrap();
    assert_eq!(cfg.source, conf);
    assert_eq!(cfg.routes.len(), 3);
    assert_eq!(cfg.upstreams.len(), 3);
}

#[test]
fn summary_lists_everything_in_match_order() {
    let cfg = ok(include_str!("../../../conf/ssegate.yaml"));
    let s = summary(&cfg);
    let expected_lines = [
        "config: conf/ssegate.yaml",
        "  0.0.0.0:8080",
        "admin: 127.0.0.1:9901",
        "trusted_proxies: none",
        "shutdown_grace: 30s",
        "header_timeout: 10s",
        "  1. path=/api/chat/stream/ name=/api/chat/stream/ upstream=backend \
         stream(idle_timeout=10m heartbeat=15s sse_headers=true early_headers=false)",
        "  2. path=/api/ name=/api/ upstream=backend read_timeout=1m",
        "  3. path=/ name=/ upstream=frontend read_timeout=1m",
        "  backend: servers=127.0.0.1:8000 balance=least_streams connect_timeout=5s",
        "  llm: servers=127.0.0.1:1234 balance=least_streams connect_timeout=5s \
         keep_warm=POST /v1/chat/completions every 5m (body 83 bytes)",
    ];
    let lines: Vec<&str> = s.lines().collect();
    for want in expected_lines {
        assert!(lines.contains(&want), "summary lacks {want:?}:\n{s}");
    }
    assert!(
        lines.contains(&format!("threads: {}", cfg.threads).as_str()),
        "{s}"
    );
    let route_lines: Vec<usize> = ["  1.", "  2.", "  3."]
        .iter()
        .map(|p| lines.iter().position(|l| l.starts_with(p)).unwrap())
        .collect();
    assert!(route_lines.windows(2).all(|w| w[0] < w[1]), "{s}");
}

#[test]
fn unreadable_file() {
    let e = load(Path::new("/nonexistent/ssegate.yaml")).unwrap_err();
    assert_eq!((e.line, e.column, e.key.as_deref()), (None, None, None));
    assert_eq!(e.file, Path::new("/nonexistent/ssegate.yaml"));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/ssegate.yaml: cannot read the config file: "),
        "{e}"
    );
}

#[test]
fn a_device_named_as_the_config_is_refused_not_read_forever() {
    if !Path::new("/dev/zero").exists() {
        return;
    }
    let e = load(Path::new("/dev/zero")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/dev/zero: cannot read the config file: larger than 16 MiB"
    );
}

#[test]
fn load_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssegate.yaml");
    std::fs::write(&path, BASE).unwrap();
    let cfg = load(&path).unwrap();
    assert_eq!(cfg.source, path);
    assert_eq!(cfg.routes.len(), 2);
    std::fs::write(&path, BASE.replacen("backend\n", "backnd\n", 1)).unwrap();
    let e = load(&path).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "{}:10:15: routes[0].upstream: unknown upstream",
            path.display()
        )),
        "{e}"
    );
}
