//! The container deployment (Dockerfile, deploy/docker-compose.yml, the config it mounts,
//! Prometheus and Grafana files), checked without a Docker engine: every file parses, and
//! the ports, paths and names that one file states and another relies on agree. Each value
//! is read from the file that owns it (ports from the ssegate config, the config path from
//! the Dockerfile, service names from the compose file), never repeated here.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use common::ssegate;

// ---------------------------------------------------------------------------------------
// The contract's metrics (design/ssegate.md, "Metrics"), copied here on purpose: the
// dashboard must use the names users were promised, not whatever src/metrics.rs registers.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// (name, type, labels) of every metric the contract lists.
const CONTRACT_METRICS: &[(&str, Kind, &[&str])] = &[
    (
        "ssegate_requests_total",
        Kind::Counter,
        &["route", "status"],
    ),
    (
        "ssegate_request_duration_seconds",
        Kind::Histogram,
        &["route"],
    ),
    ("ssegate_streams_active", Kind::Gauge, &["route"]),
    (
        "ssegate_streams_total",
        Kind::Counter,
        &["route", "outcome"],
    ),
    ("ssegate_stream_ttfb_seconds", Kind::Histogram, &["route"]),
    (
        "ssegate_stream_first_token_seconds",
        Kind::Histogram,
        &["route"],
    ),
    (
        "ssegate_stream_duration_seconds",
        Kind::Histogram,
        &["route"],
    ),
    (
        "ssegate_stream_max_gap_seconds",
        Kind::Histogram,
        &["route"],
    ),
    ("ssegate_stream_chunks_total", Kind::Counter, &["route"]),
    ("ssegate_stream_events_total", Kind::Counter, &["route"]),
    ("ssegate_stream_bytes_total", Kind::Counter, &["route"]),
    (
        "ssegate_stream_output_chars_total",
        Kind::Counter,
        &["route"],
    ),
    (
        "ssegate_stream_tokens_total",
        Kind::Counter,
        &["route", "type"],
    ),
    ("ssegate_heartbeats_total", Kind::Counter, &["route"]),
    (
        "ssegate_rejected_total",
        Kind::Counter,
        &["route", "reason"],
    ),
    (
        "ssegate_upstream_healthy",
        Kind::Gauge,
        &["upstream", "server"],
    ),
    (
        "ssegate_keep_warm_seconds",
        Kind::Gauge,
        &["upstream", "server"],
    ),
    (
        "ssegate_keep_warm_failures_total",
        Kind::Counter,
        &["upstream", "server"],
    ),
];

/// Families that only exist when a config enables health checks or keep-warm: the
/// dashboard may leave them out.
const OPTIONAL_FAMILIES: &[&str] = &[
    "ssegate_upstream_healthy",
    "ssegate_keep_warm_seconds",
    "ssegate_keep_warm_failures_total",
];

/// The contract family a series name belongs to: histograms also expose `_bucket`,
/// `_sum` and `_count` series; nothing else does.
fn family(series: &str) -> Option<(&'static str, Kind, &'static [&'static str])> {
    CONTRACT_METRICS.iter().copied().find(|(name, kind, _)| {
        series == *name
            || (*kind == Kind::Histogram
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| series.strip_suffix(suffix) == Some(name)))
    })
}

// ---------------------------------------------------------------------------------------
// Files.

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy_dir() -> PathBuf {
    repo().join("deploy")
}

fn compose_path() -> PathBuf {
    deploy_dir().join("docker-compose.yml")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Yaml {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> Json {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The config as ssegate's own loader reads it, defaults applied.
fn config(path: &Path) -> ssegate::config::Config {
    ssegate::config::load(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Asserts that the real binary's `ssegate check` accepts `path`.
fn assert_check_passes(path: &Path) {
    let (code, out, err) = ssegate(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(
        code,
        0,
        "ssegate check -c {} failed:\n{err}{out}",
        path.display()
    );
}

fn duration(text: &str) -> Duration {
    humantime::parse_duration(text).unwrap_or_else(|e| panic!("duration {text:?}: {e}"))
}

fn yaml_str<'a>(v: &'a Yaml, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Yaml::as_str)
}

// ---------------------------------------------------------------------------------------
// Dockerfile: instructions with their stage, continuation lines joined, comments dropped.

struct Instruction {
    keyword: String,
    args: String,
    stage: usize,
}

struct Dockerfile {
    instructions: Vec<Instruction>,
    stages: usize,
}

impl Dockerfile {
    fn load() -> Dockerfile {
        let text = read(&repo().join("Dockerfile"));
        let mut instructions = Vec::new();
        let mut stages = 0;
        let mut pending = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            // Docker drops comment (and blank) lines, even inside a continued instruction.
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            if let Some(head) = trimmed.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            pending.push_str(trimmed);
            let whole = std::mem::take(&mut pending);
            let (keyword, args) = whole
                .split_once(char::is_whitespace)
                .unwrap_or((&whole, ""));
            let keyword = keyword.to_ascii_uppercase();
            if keyword == "FROM" {
                stages += 1;
            }
            instructions.push(Instruction {
                keyword,
                args: args.trim().to_string(),
                stage: stages,
            });
        }
        assert!(
            pending.is_empty(),
            "Dockerfile ends inside a continued line"
        );
        Dockerfile {
            instructions,
            stages,
        }
    }

    /// Instructions of the final stage (the image that runs) with this keyword.
    fn last_stage<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a Instruction> + 'a {
        self.instructions
            .iter()
            .filter(move |i| i.stage == self.stages && i.keyword == keyword)
    }

    /// The argument list of the final stage's last `keyword` instruction.
    fn last_argv(&self, keyword: &str) -> Vec<String> {
        self.last_stage(keyword)
            .last()
            .map(|i| argv(&i.args))
            .unwrap_or_default()
    }

    /// argv of the running container: ENTRYPOINT then CMD.
    fn command(&self) -> Vec<String> {
        let mut all = self.last_argv("ENTRYPOINT");
        all.extend(self.last_argv("CMD"));
        all
    }

    /// The `-c`/`--config` path the container is started with.
    fn config_path(&self) -> String {
        let cmd = self.command();
        cmd.iter()
            .enumerate()
            .find_map(|(i, a)| {
                if a == "-c" || a == "--config" {
                    cmd.get(i + 1).cloned()
                } else {
                    a.strip_prefix("--config=").map(str::to_string)
                }
            })
            .unwrap_or_else(|| panic!("ENTRYPOINT/CMD names no config file: {cmd:?}"))
    }

    /// Every `COPY`: (stage, flags, sources, destination).
    fn copies(&self) -> Vec<(usize, Vec<String>, Vec<String>, String)> {
        self.instructions
            .iter()
            .filter(|i| i.keyword == "COPY" || i.keyword == "ADD")
            .map(|i| {
                let words = argv(&i.args);
                let (flags, mut paths): (Vec<String>, Vec<String>) =
                    words.into_iter().partition(|w| w.starts_with("--"));
                let dest = paths.pop().expect("COPY without destination");
                (i.stage, flags, paths, dest)
            })
            .collect()
    }
}

/// Exec form (`["a", "b"]`) or shell form (words).
fn argv(args: &str) -> Vec<String> {
    let args = args.trim();
    if args.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(args) {
            return v;
        }
    }
    args.split_whitespace().map(str::to_string).collect()
}

// ---------------------------------------------------------------------------------------
// .dockerignore: Docker's matching, enough of it for plain paths, `*`, `?` and `**`.

fn dockerignore_excludes(patterns: &[String], path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // As in Docker: the last pattern that matches the path, or one of its parent
    // directories, decides; `!` patterns take back an exclusion.
    let mut excluded = false;
    for p in patterns {
        let (negated, p) = match p.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, p.as_str()),
        };
        let pat: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
        if (1..=segments.len()).any(|n| glob_segments(&pat, &segments[..n])) {
            excluded = !negated;
        }
    }
    excluded
}

fn glob_segments(pat: &[&str], path: &[&str]) -> bool {
    match (pat.first(), path.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            glob_segments(&pat[1..], path) || (!path.is_empty() && glob_segments(pat, &path[1..]))
        }
        (Some(p), Some(s)) => {
            glob_one(p.as_bytes(), s.as_bytes()) && glob_segments(&pat[1..], &path[1..])
        }
        _ => false,
    }
}

fn glob_one(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_one(&p[1..], s) || (!s.is_empty() && glob_one(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob_one(&p[1..], &s[1..]),
        (Some(a), Some(b)) => a == b && glob_one(&p[1..], &s[1..]),
        _ => false,
    }
}

#[test]
fn dockerignore_matching_follows_docker() {
    let pats: Vec<String> = ["target/", "**/*.key", "docs", "!docs/keep.md"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(dockerignore_excludes(&pats, "target/release/ssegate"));
    assert!(dockerignore_excludes(&pats, "conf/certs/server.key"));
    assert!(dockerignore_excludes(&pats, "server.key"));
    assert!(dockerignore_excludes(&pats, "docs/other.md"));
    assert!(!dockerignore_excludes(&pats, "docs/keep.md"));
    assert!(!dockerignore_excludes(&pats, "src/target.rs"));
    assert!(!dockerignore_excludes(&pats, "Cargo.toml"));
}

// ---------------------------------------------------------------------------------------
// docker-compose.yml.

struct Compose {
    doc: Yaml,
}

/// A mount of a compose service: the host path (resolved against the compose file's
/// directory; none for a named volume) and the container path.
struct Mount {
    host_path: Option<PathBuf>,
    target: String,
}

impl Compose {
    fn load() -> Compose {
        Compose {
            doc: yaml(&compose_path()),
        }
    }

    fn service_names(&self) -> BTreeSet<String> {
        self.doc
            .get("services")
            .and_then(Yaml::as_mapping)
            .expect("compose file has services")
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect()
    }

    fn service(&self, name: &str) -> &Yaml {
        self.doc
            .get("services")
            .and_then(|s| s.get(name))
            .unwrap_or_else(|| panic!("compose service {name} is missing"))
    }

    fn mounts(&self, service: &str) -> Vec<Mount> {
        let Some(list) = self
            .service(service)
            .get("volumes")
            .and_then(Yaml::as_sequence)
        else {
            return Vec::new();
        };
        list.iter()
            .map(|v| {
                let (source, target) = match v.as_str() {
                    Some(short) => {
                        let mut parts = short.split(':');
                        (
                            parts.next().unwrap_or_default().to_string(),
                            parts.next().unwrap_or_default().to_string(),
                        )
                    }
                    None => (
                        yaml_str(v, "source").unwrap_or_default().to_string(),
                        yaml_str(v, "target").unwrap_or_default().to_string(),
                    ),
                };
                let host_path = (source.starts_with('.') || source.starts_with('/'))
                    .then(|| deploy_dir().join(&source));
                Mount { host_path, target }
            })
            .collect()
    }

    /// The container path where `service` mounts the host file or directory `host`.
    fn mount_target(&self, service: &str, host: &Path) -> String {
        let want = canonical(host);
        self.mounts(service)
            .into_iter()
            .find(|m| m.host_path.as_deref().map(canonical) == Some(want.clone()))
            .map(|m| m.target)
            .unwrap_or_else(|| {
                panic!(
                    "compose service {service} does not mount {}",
                    host.display()
                )
            })
    }

    /// (host port, container port) of each published port.
    fn published(&self, service: &str) -> Vec<(Option<u16>, u16)> {
        let Some(list) = self
            .service(service)
            .get("ports")
            .and_then(Yaml::as_sequence)
        else {
            return Vec::new();
        };
        list.iter()
            .map(|p| match p.as_str() {
                Some(short) => {
                    let short = short.split('/').next().unwrap_or_default();
                    let parts: Vec<&str> = short.rsplitn(3, ':').collect();
                    let container = parts[0].parse().unwrap_or_else(|_| panic!("port {short}"));
                    let host = parts
                        .get(1)
                        .map(|h| h.parse().unwrap_or_else(|_| panic!("port {short}")));
                    (host, container)
                }
                None => {
                    let num = |k: &str| {
                        p.get(k).and_then(|v| {
                            v.as_u64()
                                .map(|n| u16::try_from(n).unwrap())
                                .or_else(|| v.as_str().map(|s| s.parse().unwrap()))
                        })
                    };
                    (num("published"), num("target").expect("port target"))
                }
            })
            .collect()
    }
}

/// `http://host:port/path` → (host, port, path).
fn split_url(url: &str) -> (String, u16, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{url} names no port"));
    (host.to_string(), port.parse().unwrap(), path.to_string())
}

// ---------------------------------------------------------------------------------------
// Tests.

/// Every ssegate config shipped in the repository passes `ssegate check`. By convention
/// `*.yaml` under conf/ and deploy/ are ssegate configs; other tools' files there (compose,
/// Prometheus, Grafana provisioning) are named `*.yml`.
#[test]
fn every_shipped_config_passes_check() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    let mut configs = Vec::new();
    walk(&repo().join("conf"), &mut configs);
    walk(&deploy_dir(), &mut configs);
    for must in [
        repo().join("conf/ssegate.yaml"),
        deploy_dir().join("ssegate.yaml"),
    ] {
        assert!(configs.contains(&must), "{} not found", must.display());
    }
    for path in &configs {
        assert_check_passes(path);
    }
}

#[test]
fn compose_file_names_the_stack_and_mounts_a_valid_config() {
    let compose = Compose::load();
    let services = compose.service_names();
    for name in [
        "ssegate",
        "backend",
        "frontend",
        "ollama",
        "prometheus",
        "grafana",
    ] {
        assert!(
            services.contains(name),
            "service {name} missing: {services:?}"
        );
    }

    // The ssegate service is built from the repository's Dockerfile.
    let build = compose
        .service("ssegate")
        .get("build")
        .expect("ssegate is built");
    let context = deploy_dir().join(
        build
            .as_str()
            .or_else(|| yaml_str(build, "context"))
            .unwrap(),
    );
    let dockerfile = context.join(yaml_str(build, "dockerfile").unwrap_or("Dockerfile"));
    assert_eq!(
        canonical(&dockerfile),
        canonical(&repo().join("Dockerfile"))
    );

    // The config it mounts, at the path the image starts with, is valid.
    let docker = Dockerfile::load();
    let source = deploy_dir().join("ssegate.yaml");
    assert_eq!(
        compose.mount_target("ssegate", &source),
        docker.config_path(),
        "the compose mount target is the path the image runs with"
    );
    assert_check_passes(&source);
    let cfg = config(&source);

    // Upstream host names are resolved only at run time, so `check` cannot catch a typo
    // in them: each must be a service of this compose file.
    for up in &cfg.upstreams {
        for server in &up.servers {
            let (host, _) = server.rsplit_once(':').unwrap();
            assert!(
                services.contains(host),
                "upstream {} server {server}: {host} is not a compose service",
                up.name
            );
        }
    }

    // Docker SIGKILLs at stop_grace_period (default 10 s): it must leave ssegate its whole
    // shutdown_grace to drain open streams.
    let stop = yaml_str(compose.service("ssegate"), "stop_grace_period")
        .expect("ssegate sets stop_grace_period");
    assert!(
        duration(stop) > cfg.shutdown_grace,
        "stop_grace_period {stop} must exceed shutdown_grace {:?}",
        cfg.shutdown_grace
    );
}

#[test]
fn published_ports_reach_the_listener_and_never_the_admin() {
    let compose = Compose::load();
    let cfg = config(&deploy_dir().join("ssegate.yaml"));
    let listen: BTreeSet<u16> = cfg.listeners.iter().map(|l| l.addr.port()).collect();
    let published = compose.published("ssegate");
    assert!(!published.is_empty(), "ssegate publishes no port");
    for (host, container) in &published {
        assert!(
            listen.contains(container),
            "{host:?}:{container} is not a listener port ({listen:?})"
        );
        assert_ne!(
            *container,
            cfg.admin.port(),
            "the admin port must not be published"
        );
    }
    assert!(
        published.iter().any(|(host, _)| *host == Some(80)),
        "a drop-in for nginx answers on host port 80: {published:?}"
    );
}

#[test]
fn dockerfile_agrees_with_the_config() {
    let docker = Dockerfile::load();
    let cfg = config(&deploy_dir().join("ssegate.yaml"));
    assert!(docker.stages >= 2, "a build stage and a runtime stage");

    let exposed: BTreeSet<u16> = docker
        .last_stage("EXPOSE")
        .flat_map(|i| argv(&i.args))
        .map(|p| p.split('/').next().unwrap().parse().unwrap())
        .collect();
    for l in &cfg.listeners {
        assert!(
            exposed.contains(&l.addr.port()),
            "EXPOSE {exposed:?} lacks listener {}",
            l.addr
        );
    }
    assert!(
        exposed.contains(&cfg.admin.port()),
        "EXPOSE {exposed:?} lacks the admin port"
    );

    // `ssegate run -c <path>`, where the runtime stage copies both the binary and a config.
    let cmd = docker.command();
    assert!(
        cmd.iter().any(|a| a == "run"),
        "started with `ssegate run`: {cmd:?}"
    );
    let copies = docker.copies();
    let last = |dest: &str| {
        copies
            .iter()
            .find(|(stage, _, _, d)| *stage == docker.stages && d == dest)
            .unwrap_or_else(|| panic!("the runtime stage does not COPY anything to {dest}"))
    };
    let (_, flags, _, _) = last(&cmd[0]);
    assert!(
        flags.iter().any(|f| f.starts_with("--from=")),
        "the binary comes from the build stage, not the build context"
    );
    let config_path = docker.config_path();
    let (_, flags, sources, _) = last(&config_path);
    assert!(flags.iter().all(|f| !f.starts_with("--from=")));
    for s in sources {
        assert_check_passes(&repo().join(s));
    }

    // Not root.
    let user = docker.last_argv("USER");
    let user = user.first().expect("the runtime stage sets USER");
    let name = user.split(':').next().unwrap();
    assert!(name != "root" && name != "0", "USER {user}");

    // The healthcheck asks the admin listener for /healthz, from inside the container.
    let hc = docker
        .last_stage("HEALTHCHECK")
        .last()
        .expect("a HEALTHCHECK");
    let (_, check) = hc.args.split_once("CMD").expect("HEALTHCHECK CMD");
    let check = argv(check);
    let url = check
        .iter()
        .find(|a| a.contains("://"))
        .unwrap_or_else(|| panic!("HEALTHCHECK fetches no URL: {check:?}"));
    let (host, port, path) = split_url(url);
    assert_eq!(
        port,
        cfg.admin.port(),
        "HEALTHCHECK {url}: not the admin port"
    );
    assert_eq!(path, "/healthz", "HEALTHCHECK {url}");
    let host: IpAddr = host.replace("localhost", "127.0.0.1").parse().unwrap();
    assert!(
        host.is_loopback() && (cfg.admin.ip().is_loopback() || cfg.admin.ip().is_unspecified()),
        "HEALTHCHECK {url} cannot reach admin {}",
        cfg.admin
    );
    // The slim image has no HTTP client: the one the check runs must be installed.
    let program = Path::new(&check[0])
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        docker
            .last_stage("RUN")
            .any(|r| r.args.contains("install") && r.args.split_whitespace().any(|w| w == program)),
        "the runtime stage does not install {program}"
    );
}

#[test]
fn dockerignore_keeps_what_the_build_copies() {
    let patterns: Vec<String> = read(&repo().join(".dockerignore"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    for heavy in ["target", ".git"] {
        assert!(
            dockerignore_excludes(&patterns, heavy),
            "{heavy} is sent to the builder"
        );
    }
    let docker = Dockerfile::load();
    let sources: Vec<String> = docker
        .copies()
        .into_iter()
        .filter(|(_, flags, _, _)| flags.iter().all(|f| !f.starts_with("--from=")))
        .flat_map(|(_, _, sources, _)| sources)
        .collect();
    assert!(!sources.is_empty());
    for s in &sources {
        assert!(
            repo().join(s).exists(),
            "COPY {s}: no such file in the repository"
        );
        assert!(
            !dockerignore_excludes(&patterns, s),
            "COPY {s} is excluded by .dockerignore"
        );
    }
}

#[test]
fn prometheus_scrapes_the_admin_listener() {
    let compose = Compose::load();
    let cfg = config(&deploy_dir().join("ssegate.yaml"));
    let prom_file = deploy_dir().join("prometheus.yml");
    let prom = yaml(&prom_file);

    // The prometheus service reads this very file.
    let target = compose.mount_target("prometheus", &prom_file);
    let config_flag = compose
        .service("prometheus")
        .get("command")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .find_map(|a| a.strip_prefix("--config.file="))
        .unwrap_or("/etc/prometheus/prometheus.yml");
    assert_eq!(target, config_flag);

    let want = format!("ssegate:{}", cfg.admin.port());
    let global_interval = prom
        .get("global")
        .and_then(|g| yaml_str(g, "scrape_interval"));
    let job = prom
        .get("scrape_configs")
        .and_then(Yaml::as_sequence)
        .expect("scrape_configs")
        .iter()
        .find(|job| {
            job.get("static_configs")
                .and_then(Yaml::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(|s| s.get("targets").and_then(Yaml::as_sequence))
                .flatten()
                .any(|t| t.as_str() == Some(want.as_str()))
        })
        .unwrap_or_else(|| panic!("no job scrapes {want}"));
    assert_eq!(
        yaml_str(job, "metrics_path").unwrap_or("/metrics"),
        "/metrics"
    );
    let interval = yaml_str(job, "scrape_interval")
        .or(global_interval)
        .expect("a scrape_interval");
    assert_eq!(duration(interval), Duration::from_secs(5));

    // Grafana's datasource is this Prometheus, told the same interval ($__rate_interval
    // is computed from it).
    let ds_file = deploy_dir().join("grafana/provisioning/datasources/prometheus.yml");
    let ds = yaml(&ds_file);
    let prom_ds = ds
        .get("datasources")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .find(|d| yaml_str(d, "type") == Some("prometheus"))
        .expect("a prometheus datasource");
    let (host, _, _) = split_url(yaml_str(prom_ds, "url").unwrap());
    assert!(
        compose.service_names().contains(&host),
        "datasource url host {host}"
    );
    let time_interval = prom_ds
        .get("jsonData")
        .and_then(|j| yaml_str(j, "timeInterval"))
        .expect("jsonData.timeInterval");
    assert_eq!(duration(time_interval), duration(interval));
}

#[test]
fn grafana_dashboard_uses_the_contract_metrics() {
    let compose = Compose::load();
    let dash_file = deploy_dir().join("grafana/ssegate.json");
    let dash = json(&dash_file);
    assert!(dash.get("schemaVersion").and_then(Json::as_u64).is_some());
    assert!(dash.get("title").and_then(Json::as_str).is_some());

    // Provisioning: the provider's folder is where compose mounts the dashboard.
    let provisioning = deploy_dir().join("grafana/provisioning");
    assert_eq!(
        compose.mount_target("grafana", &provisioning),
        "/etc/grafana/provisioning"
    );
    let providers = yaml(&provisioning.join("dashboards/ssegate.yml"));
    let provider_path = providers
        .get("providers")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .find_map(|p| p.get("options").and_then(|o| yaml_str(o, "path")))
        .expect("a file provider with options.path");
    let mounted = compose.mount_target("grafana", &dash_file);
    assert_eq!(
        Path::new(&mounted).parent(),
        Some(Path::new(provider_path)),
        "dashboard mounted at {mounted}, provider reads {provider_path}"
    );

    // Panels: unique ids, a position each.
    let mut panels = Vec::new();
    collect_panels(&dash, &mut panels);
    assert!(panels.len() > 5, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    for p in &panels {
        let id = p.get("id").and_then(Json::as_u64).expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        assert!(p.get("gridPos").is_some(), "panel {id} has no gridPos");
    }

    // Datasources: the ${DS_PROMETHEUS} variable, whose default is the provisioned one.
    let ds = yaml(&provisioning.join("datasources/prometheus.yml"));
    let provisioned_uid = ds
        .get("datasources")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .find_map(|d| yaml_str(d, "uid"))
        .expect("the provisioned datasource has a uid")
        .to_string();
    let vars = dash
        .pointer("/templating/list")
        .and_then(Json::as_array)
        .expect("templating");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v.get("name").and_then(Json::as_str) == Some(name))
    };
    let ds_var = var("DS_PROMETHEUS");
    if let Some(v) = ds_var {
        assert_eq!(v.get("type").and_then(Json::as_str), Some("datasource"));
        assert_eq!(
            v.pointer("/current/value").and_then(Json::as_str),
            Some(provisioned_uid.as_str())
        );
    }
    let mut sources = Vec::new();
    collect_key(dash.get("panels").unwrap(), "datasource", &mut sources);
    collect_key(dash.get("templating").unwrap(), "datasource", &mut sources);
    assert!(!sources.is_empty());
    for s in sources {
        let uid = s.get("uid").and_then(Json::as_str).unwrap_or_default();
        assert!(
            uid == provisioned_uid || (uid == "${DS_PROMETHEUS}" && ds_var.is_some()),
            "datasource {s}"
        );
    }

    // The route variable lists the routes ssegate reports.
    let route = var("route").expect("a route variable");
    let route_query = route
        .get("definition")
        .and_then(Json::as_str)
        .or_else(|| route.pointer("/query/query").and_then(Json::as_str))
        .or_else(|| route.get("query").and_then(Json::as_str))
        .expect("route variable query");
    assert_eq!(
        route_query.replace(' ', ""),
        "label_values(ssegate_requests_total,route)"
    );

    // Queries: only contract metrics, and all the ones a dashboard should show.
    let mut exprs = Vec::new();
    collect_key(dash.get("panels").unwrap(), "expr", &mut exprs);
    let exprs: Vec<&str> = exprs.iter().filter_map(|e| e.as_str()).collect();
    assert!(!exprs.is_empty());
    let mut used = BTreeSet::new();
    for expr in exprs.iter().copied().chain([route_query]) {
        for series in metric_names(expr) {
            let (name, kind, labels) = family(series)
                .unwrap_or_else(|| panic!("{series} is not a contract metric (in {expr})"));
            used.insert(name);
            // Every route-labelled panel follows the route selector.
            if labels.contains(&"route") && expr != route_query {
                assert!(expr.contains("route=~\"$route\""), "{expr} ignores $route");
            }
            if kind == Kind::Histogram {
                assert!(
                    series.ends_with("_bucket") && expr.contains("histogram_quantile"),
                    "{expr}: histograms are shown as quantiles over _bucket"
                );
            }
        }
        if expr.contains("histogram_quantile") {
            assert!(
                groups_by_le(expr),
                "{expr}: histogram_quantile needs `by (..., le)`"
            );
        }
    }
    for (name, _, _) in CONTRACT_METRICS {
        if !OPTIONAL_FAMILIES.contains(name) {
            assert!(used.contains(name), "no panel shows {name}");
        }
    }
}

/// Every panel, rows' nested panels included.
fn collect_panels<'a>(v: &'a Json, out: &mut Vec<&'a Json>) {
    for p in v
        .get("panels")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        out.push(p);
        collect_panels(p, out);
    }
}

/// Every value of `key` anywhere under `v`.
fn collect_key<'a>(v: &'a Json, key: &str, out: &mut Vec<&'a Json>) {
    match v {
        Json::Object(m) => {
            for (k, child) in m {
                if k == key {
                    out.push(child);
                }
                collect_key(child, key, out);
            }
        }
        Json::Array(a) => a.iter().for_each(|c| collect_key(c, key, out)),
        _ => {}
    }
}

/// The `ssegate_*` identifiers of a PromQL expression.
fn metric_names(expr: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("ssegate_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // Skip matches inside a longer identifier (e.g. `my_ssegate_x`).
        let inside = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !inside {
            out.push(&tail[..end]);
        }
        rest = &tail[end..];
    }
    out
}

/// Whether some `by (...)` clause of `expr` includes `le`.
fn groups_by_le(expr: &str) -> bool {
    expr.match_indices("by (").any(|(i, m)| {
        let inner = &expr[i + m.len()..];
        inner
            .split(')')
            .next()
            .is_some_and(|labels| labels.split(',').any(|l| l.trim() == "le"))
    })
}
