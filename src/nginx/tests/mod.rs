//! Golden tests on the realistic configs under `tests/nginx/`: each
//! `nginx.conf` (with its includes) must give exactly `expected.yaml` and
//! the notes in `expected.stderr`, and the YAML must load as a config that
//! routes requests the way nginx did. `UPDATE_GOLDEN=1` rewrites the
//! expected files (review the diff before keeping it).

mod cases;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{self, Balance, Config, Route};

use super::convert;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/nginx")
        .join(name)
}

/// Converts fixture `name`, compares with its expected files and loads the YAML.
fn golden(name: &str) -> Config {
    let dir = fixture(name);
    let conv = convert(&dir.join("nginx.conf")).unwrap_or_else(|e| panic!("{name}: {e}"));
    let stderr: String = conv
        .notes
        .iter()
        .map(|n| {
            let file = n.file.strip_prefix(&dir).unwrap_or(&n.file);
            format!("{}:{}: {}\n", file.display(), n.line, n.message)
        })
        .collect();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(dir.join("expected.yaml"), &conv.yaml).unwrap();
        std::fs::write(dir.join("expected.stderr"), &stderr).unwrap();
    }
    let want_yaml = std::fs::read_to_string(dir.join("expected.yaml")).unwrap();
    let want_stderr = std::fs::read_to_string(dir.join("expected.stderr")).unwrap();
    assert_eq!(
        conv.yaml, want_yaml,
        "{name}: YAML differs from expected.yaml"
    );
    assert_eq!(
        stderr, want_stderr,
        "{name}: notes differ from expected.stderr"
    );
    // The YAML is meant to sit beside nginx.conf: TLS paths resolve there.
    config::parse(&conv.yaml, &dir.join("ssegate.yaml")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn route<'a>(cfg: &'a Config, host: &str, path: &str) -> Option<&'a Route> {
    cfg.routes.find(Some(host), path)
}

fn upstream_of(cfg: &Config, host: &str, path: &str) -> Option<String> {
    route(cfg, host, path).map(|r| r.upstream_name.clone())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn classic_sse_setup() {
    let cfg = golden("classic");
    let h = "chat.example.com";
    let stream = route(&cfg, h, "/api/chat/stream/42")
        .and_then(|r| r.stream.clone())
        .unwrap();
    assert_eq!(stream.idle_timeout, secs(600));
    assert_eq!(
        stream.heartbeat, None,
        "a heartbeat is suggested, never invented"
    );
    assert!(stream.sse_headers);
    let api = route(&cfg, h, "/api/users").unwrap();
    assert_eq!(
        (
            api.upstream_name.as_str(),
            api.read_timeout,
            api.stream.is_none()
        ),
        ("backend", secs(60), true)
    );
    assert_eq!(upstream_of(&cfg, h, "/"), Some("frontend".into()));
    assert_eq!(upstream_of(&cfg, "other.example.com", "/"), None);
    let listeners: Vec<(String, bool)> = cfg
        .listeners
        .iter()
        .map(|l| (l.addr.to_string(), l.tls.is_some()))
        .collect();
    assert_eq!(
        listeners,
        [("0.0.0.0:80".into(), false), ("0.0.0.0:443".into(), true)]
    );
    assert_eq!(cfg.admin.to_string(), "127.0.0.1:9901");
    let backend = cfg.upstreams.iter().find(|u| u.name == "backend").unwrap();
    assert_eq!(
        (backend.servers.as_slice(), backend.connect_timeout),
        (&["127.0.0.1:8000".to_string()][..], secs(10))
    );
}

#[test]
fn multi_domain_with_conf_d_includes() {
    let cfg = golden("multi-domain");
    let (chat, docs) = ("chat.example.com", "docs.example.com");
    // Access control that does not carry over fails closed, never open.
    assert_eq!(
        upstream_of(&cfg, chat, "/admin/users"),
        Some("fail_closed".into())
    );
    assert_eq!(
        upstream_of(&cfg, docs, "/internal/x"),
        Some("fail_closed".into())
    );
    assert_eq!(upstream_of(&cfg, docs, "/guide/"), Some("docs_app".into()));
    let completions = route(&cfg, chat, "/v1/chat/completions").unwrap();
    let stream = completions.stream.clone().unwrap();
    assert_eq!(
        (stream.idle_timeout, stream.sse_headers),
        (secs(900), false)
    );
    // proxy_read_timeout 120s comes down from `http`.
    assert_eq!(
        route(&cfg, chat, "/api/x").map(|r| r.read_timeout),
        Some(secs(120))
    );
    // `location /` served files: nothing routes it.
    assert_eq!(upstream_of(&cfg, chat, "/index.html"), None);
    let chat_backend = cfg
        .upstreams
        .iter()
        .find(|u| u.name == "chat_backend")
        .unwrap();
    assert_eq!(chat_backend.balance, Balance::LeastStreams);
    assert_eq!(chat_backend.servers, ["10.0.1.11:8000", "10.0.1.12:8000"]);
    assert_eq!(chat_backend.connect_timeout, secs(5));
    let docs_app = cfg.upstreams.iter().find(|u| u.name == "docs_app").unwrap();
    assert_eq!(docs_app.balance, Balance::RoundRobin);
    assert_eq!(cfg.listeners.len(), 4);
}

#[test]
fn open_webui_and_ollama() {
    let cfg = golden("open-webui");
    let h = "ai.example.lan";
    let root = route(&cfg, h, "/c/123")
        .and_then(|r| r.stream.clone())
        .unwrap();
    assert_eq!((root.idle_timeout, root.sse_headers), (secs(300), false));
    let ws = route(&cfg, h, "/ws/socket.io/?EIO=4")
        .and_then(|r| r.stream.clone())
        .unwrap();
    assert_eq!(ws.idle_timeout, secs(86_400));
    // The LAN-only Ollama server had allow/deny: closed for every other host.
    assert_eq!(
        upstream_of(&cfg, "192.168.1.20", "/api/chat"),
        Some("fail_closed".into())
    );
    assert!(cfg
        .upstreams
        .iter()
        .any(|u| u.servers == ["127.0.0.1:11434"]));
}

#[test]
fn django_gunicorn_static_and_sse() {
    let cfg = golden("django");
    let events = route(&cfg, "app.internal", "/events/chat").unwrap();
    let stream = events.stream.clone().unwrap();
    assert_eq!(
        (stream.idle_timeout, stream.sse_headers),
        (secs(3600), true)
    );
    // default_server: its routes answer any host, as nginx's default server did.
    assert_eq!(
        upstream_of(&cfg, "10.1.2.3", "/admin/login/"),
        Some("fail_closed".into())
    );
    assert_eq!(
        upstream_of(&cfg, "app.internal", "/accounts/"),
        Some("django".into())
    );
    assert_eq!(
        route(&cfg, "app.internal", "/").map(|r| r.read_timeout),
        Some(secs(90))
    );
    let django = cfg.upstreams.iter().find(|u| u.name == "django").unwrap();
    assert_eq!(
        (django.balance, django.connect_timeout),
        (Balance::LeastStreams, secs(30))
    );
    assert_eq!(django.servers, ["127.0.0.1:8001", "127.0.0.1:8002"]);
}
