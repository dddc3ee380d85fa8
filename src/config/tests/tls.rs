//! TLS files, and the contract's example config loaded verbatim.

use std::path::Path;
use std::time::Duration;

use super::{expect, CERT_PEM, KEY_PEM};
use crate::config::{load, Balance, ConfigError, StreamSettings};

/// The YAML block of the contract (shared/design/ssegate.md), verbatim.
const CONTRACT: &str = r##"listen:                               # public listeners, one or more
  - addr: 0.0.0.0:8080
  - addr: 0.0.0.0:8443
    tls: { cert: certs/server.crt, key: certs/server.key }
admin:
  addr: 127.0.0.1:9901                # /metrics /healthz /streams; never on a public listener
threads: 2                            # worker threads; default: number of cores
trusted_proxies: [10.0.0.0/8]         # X-Forwarded-For from these peers is kept and appended to;
                                      # from anyone else it is replaced by the peer address

upstreams:
  backend:
    servers: ["127.0.0.1:8000"]       # host:port; several are load balanced
    balance: least_streams            # least_streams (default) | round_robin
    connect_timeout: 5s
    health_check: { path: /healthz, interval: 10s }     # optional
  llm:
    servers: ["127.0.0.1:1234"]
    keep_warm:                        # optional: keeps a model loaded between chats
      method: POST
      path: /v1/chat/completions
      body: '{"model":"gemma-3-270m","messages":[{"role":"user","content":"hi"}],"max_tokens":1}'
      interval: 5m

routes:                               # longest matching prefix wins, like nginx `location /prefix`
  - path: /api/chat/stream/
    upstream: backend
    stream:                           # present = a stream route
      idle_timeout: 600s              # longest upstream silence before the stream is cut
      heartbeat: 15s                  # ": keep-alive" comment to the client after this much silence; absent = off
      sse_headers: true               # set Content-Type: text/event-stream, Cache-Control: no-cache,
                                      # X-Accel-Buffering: no on the response (default true)
      early_headers: false            # true: answer 200 + SSE headers at once and heartbeat while the
                                      # upstream has not answered yet (model loading); an upstream
                                      # failure then arrives as an `event: error` SSE event
    max_streams: 200                  # optional: open streams allowed on this route; past it 429 + Retry-After
    max_streams_per_client: 4         # optional: the same per client address
  - path: /api/
    upstream: backend
    read_timeout: 60s
  - path: /
    upstream: frontend
"##;

/// A temp dir holding `certs/server.crt` and `certs/server.key`.
fn dir_with_certs(cert: &str, key: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/server.crt"), cert).unwrap();
    std::fs::write(dir.path().join("certs/server.key"), key).unwrap();
    dir
}

/// Writes `yaml` as `ssegate.yaml` in `dir` and loads it.
fn load_in(dir: &tempfile::TempDir, yaml: &str) -> Result<crate::config::Config, ConfigError> {
    let path = dir.path().join("ssegate.yaml");
    std::fs::write(&path, yaml).unwrap();
    load(&path)
}

/// 1-based column of `needle` on 1-based `line` of `text`.
fn col_of(text: &str, line: usize, needle: &str) -> usize {
    text.lines()
        .nth(line - 1)
        .and_then(|l| l.find(needle))
        .unwrap()
        + 1
}

#[test]
fn contract_example_refuses_only_its_undefined_frontend() {
    // The contract's block routes `/` to `frontend` but defines no such
    // upstream; everything before that check (TLS files included) passes.
    let dir = dir_with_certs(CERT_PEM, KEY_PEM);
    let e = load_in(&dir, CONTRACT).unwrap_err();
    let line = CONTRACT
        .lines()
        .position(|l| l == "    upstream: frontend")
        .unwrap()
        + 1;
    expect(
        &e,
        line,
        15,
        Some("routes[2].upstream"),
        "unknown upstream \"frontend\" (known: backend, llm)",
    );
}

#[test]
fn contract_example_loads() {
    assert_eq!(CONTRACT.matches("\nroutes:").count(), 1);
    let yaml = CONTRACT.replacen(
        "\nroutes:",
        "  frontend: { servers: [\"127.0.0.1:3000\"] }\n\nroutes:",
        1,
    );
    let dir = dir_with_certs(CERT_PEM, KEY_PEM);
    let cfg = load_in(&dir, &yaml).unwrap();

    let root = std::path::absolute(dir.path()).unwrap();
    assert_eq!(cfg.listeners.len(), 2);
    assert_eq!(cfg.listeners[0].addr.to_string(), "0.0.0.0:8080");
    assert!(cfg.listeners[0].tls.is_none());
    assert_eq!(cfg.listeners[1].addr.to_string(), "0.0.0.0:8443");
    let tls = cfg.listeners[1].tls.as_ref().unwrap();
    assert_eq!(tls.cert, root.join("certs/server.crt"));
    assert_eq!(tls.key, root.join("certs/server.key"));
    assert_eq!(cfg.admin.to_string(), "127.0.0.1:9901");
    assert_eq!(cfg.threads, 2);
    assert_eq!(
        cfg.trusted_proxies,
        ["10.0.0.0/8".parse::<ipnet::IpNet>().unwrap()]
    );
    assert_eq!(cfg.shutdown_grace, Duration::from_secs(30));

    let names: Vec<&str> = cfg.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["backend", "llm", "frontend"]);
    let backend = &cfg.upstreams[0];
    assert_eq!(backend.servers, ["127.0.0.1:8000"]);
    assert_eq!(
        (backend.balance, backend.connect_timeout),
        (Balance::LeastStreams, Duration::from_secs(5))
    );
    let hc = backend.health_check.as_ref().unwrap();
    assert_eq!(
        (hc.path.as_str(), hc.interval),
        ("/healthz", Duration::from_secs(10))
    );
    assert!(backend.keep_warm.is_none());
    let llm = &cfg.upstreams[1];
    assert_eq!(llm.servers, ["127.0.0.1:1234"]);
    assert!(llm.health_check.is_none());
    let kw = llm.keep_warm.as_ref().unwrap();
    assert_eq!(
        (kw.method.as_str(), kw.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        kw.body.as_deref(),
        Some(
            r#"{"model":"gemma-3-270m","messages":[{"role":"user","content":"hi"}],"max_tokens":1}"#
        )
    );
    assert_eq!(kw.interval, Duration::from_secs(300));

    let order: Vec<&str> = cfg.routes.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(order, ["/api/chat/stream/", "/api/", "/"]);
    let stream = cfg.routes.get(0).unwrap();
    assert_eq!(
        (stream.name.as_str(), stream.upstream),
        ("/api/chat/stream/", 0)
    );
    let want = StreamSettings {
        idle_timeout: Duration::from_secs(600),
        heartbeat: Some(Duration::from_secs(15)),
        sse_headers: true,
        early_headers: false,
    };
    assert_eq!(stream.stream.as_ref(), Some(&want));
    assert_eq!(
        (stream.max_streams, stream.max_streams_per_client),
        (Some(200), Some(4))
    );
    let api = cfg.routes.get(1).unwrap();
    assert_eq!(
        (api.read_timeout, api.read_timeout_set, api.stream.is_none()),
        (Duration::from_secs(60), true, true)
    );
    let root_route = cfg.routes.get(2).unwrap();
    assert_eq!(
        (root_route.upstream, root_route.upstream_name.as_str()),
        (2, "frontend")
    );
}

const TLS_CONF: &str = "\
listen:
  - addr: 127.0.0.1:8443
    tls: { cert: certs/server.crt, key: certs/server.key }
upstreams: { app: { servers: [\"127.0.0.1:8000\"] } }
routes: [{ path: /, upstream: app }]
";

#[test]
fn tls_file_missing() {
    let dir = dir_with_certs(CERT_PEM, KEY_PEM);
    let yaml = TLS_CONF.replacen("certs/server.crt", "certs/missing.crt", 1);
    let e = load_in(&dir, &yaml).unwrap_err();
    let path = std::path::absolute(dir.path().join("certs/missing.crt")).unwrap();
    let part = format!("cannot read TLS certificate {}: ", path.display());
    expect(
        &e,
        3,
        col_of(&yaml, 3, "certs/missing"),
        Some("listen[0].tls.cert"),
        &part,
    );
    std::fs::remove_file(dir.path().join("certs/server.key")).unwrap();
    let e = load_in(&dir, TLS_CONF).unwrap_err();
    expect(
        &e,
        3,
        col_of(TLS_CONF, 3, "certs/server.key"),
        Some("listen[0].tls.key"),
        "cannot read TLS key",
    );
    assert!(e.message.contains("server.key"), "{e}");
}

#[test]
fn a_device_named_as_a_key_is_refused_not_read_forever() {
    if !Path::new("/dev/zero").exists() {
        return;
    }
    let dir = dir_with_certs(CERT_PEM, KEY_PEM);
    let yaml = TLS_CONF.replacen("certs/server.key", "/dev/zero", 1);
    let e = load_in(&dir, &yaml).unwrap_err();
    expect(
        &e,
        3,
        col_of(&yaml, 3, "/dev/zero"),
        Some("listen[0].tls.key"),
        "cannot read TLS key /dev/zero: larger than 1 MiB",
    );
}

#[test]
fn tls_files_not_pem() {
    let cert_col = col_of(TLS_CONF, 3, "certs/server.crt");
    let key_col = col_of(TLS_CONF, 3, "certs/server.key");
    let cert_path = std::path::absolute(Path::new("x")).map(|_| ()).ok();
    assert!(cert_path.is_some());

    let dir = dir_with_certs("not a certificate\n", KEY_PEM);
    let e = load_in(&dir, TLS_CONF).unwrap_err();
    expect(
        &e,
        3,
        cert_col,
        Some("listen[0].tls.cert"),
        "holds no PEM certificate",
    );
    assert!(
        e.message
            .contains(&dir.path().join("certs/server.crt").display().to_string()),
        "{e}"
    );

    let dir = dir_with_certs(
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        KEY_PEM,
    );
    let e = load_in(&dir, TLS_CONF).unwrap_err();
    expect(
        &e,
        3,
        cert_col,
        Some("listen[0].tls.cert"),
        "is not valid PEM",
    );

    // A key file that holds only a certificate.
    let dir = dir_with_certs(CERT_PEM, CERT_PEM);
    let e = load_in(&dir, TLS_CONF).unwrap_err();
    expect(
        &e,
        3,
        key_col,
        Some("listen[0].tls.key"),
        "holds no PEM private key",
    );
    assert!(
        e.message
            .contains(&dir.path().join("certs/server.key").display().to_string()),
        "{e}"
    );

    let dir = dir_with_certs(CERT_PEM, KEY_PEM);
    let yaml = TLS_CONF.replacen("key: certs/server.key", "key: \"\"", 1);
    let e = load_in(&dir, &yaml).unwrap_err();
    expect(
        &e,
        3,
        col_of(&yaml, 3, "\"\""),
        Some("listen[0].tls.key"),
        "the path is empty",
    );
}

#[test]
fn tls_paths_resolve_against_the_config_directory() {
    let dir = dir_with_certs(CERT_PEM, KEY_PEM);
    // Absolute paths are kept as they are.
    let abs = dir.path().join("certs/server.crt");
    let yaml = TLS_CONF.replacen("certs/server.crt", &abs.display().to_string(), 1);
    let cfg = crate::config::parse(&yaml, &dir.path().join("ssegate.yaml")).unwrap();
    let tls = cfg.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.cert, abs);
    assert_eq!(
        tls.key,
        std::path::absolute(dir.path().join("certs/server.key")).unwrap()
    );
    // The same relative paths fail from another directory.
    let e = crate::config::parse(TLS_CONF, Path::new("/nonexistent/ssegate.yaml")).unwrap_err();
    assert!(e.message.contains("/nonexistent/certs/server.crt"), "{e}");
}
