//! Turns the serde model into a [`Config`]: defaults, and the checks that
//! look at more than one value (names, duplicates, files on disk).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::locate::{self, Seg};
use super::model::{BalanceModel, FileModel, ListenModel, RouteModel, TlsModel, UpstreamModel};
use super::{
    Balance, Config, ConfigError, HealthCheck, KeepWarm, Listener, Route, RouteTable,
    StreamSettings, TlsFiles, Upstream,
};

/// Admin address when `admin:` is absent.
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9901));
/// Time open streams get after SIGTERM/SIGINT.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Default `header_timeout`: a request head takes one packet, rarely a few.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Upstream TCP connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time between health checks.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// Time between keep-warm requests.
pub const DEFAULT_KEEP_WARM_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Read timeout of non-stream responses.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest upstream silence on a stream route.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// What errors need to find their position.
struct Ctx<'a> {
    text: &'a str,
    source: &'a Path,
}

impl Ctx<'_> {
    /// An error at key `path`, with the position the text gives it.
    fn err(&self, path: &[Seg<'_>], message: impl Into<String>) -> ConfigError {
        let pos = locate::locate(self.text, path);
        ConfigError {
            file: self.source.to_path_buf(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            key: (!path.is_empty()).then(|| locate::key_string(path)),
            message: message.into(),
        }
    }
}

/// Applies defaults and cross-value checks to a deserialized file.
pub fn resolve(file: FileModel, text: &str, source: &Path) -> Result<Config, ConfigError> {
    let cx = Ctx { text, source };
    let listeners = listeners(&cx, &file.listen)?;
    let admin_set = file
        .admin
        .as_ref()
        .and_then(|a| a.addr.as_ref())
        .map(|a| a.0);
    let admin = admin_set.unwrap_or(DEFAULT_ADMIN);
    for (i, l) in listeners.iter().enumerate() {
        if overlap(admin, l.addr) {
            let msg = format!(
                "the admin endpoint ({admin}) would share listener {} (listen[{i}]); it must never be on a public listener",
                l.addr
            );
            return Err(match admin_set {
                Some(_) => cx.err(&["admin".into(), "addr".into()], msg),
                None => cx.err(
                    &["listen".into(), i.into(), "addr".into()],
                    format!("{msg}; set admin.addr"),
                ),
            });
        }
    }
    let threads = match file.threads {
        Some(t) => t.0,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let upstreams = upstreams(&cx, file.upstreams.0)?;
    let routes = routes(&cx, file.routes, &upstreams)?;
    Ok(Config {
        source: source.to_path_buf(),
        listeners,
        admin,
        threads,
        trusted_proxies: file.trusted_proxies.into_iter().map(|c| c.0).collect(),
        upstreams,
        routes: RouteTable::new(routes),
        shutdown_grace: file.shutdown_grace.map_or(DEFAULT_SHUTDOWN_GRACE, |d| d.0),
        header_timeout: file.header_timeout.map_or(DEFAULT_HEADER_TIMEOUT, |d| d.0),
    })
}

/// Whether two bind addresses would collide (same port, same or wildcard IP).
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

fn listeners(cx: &Ctx<'_>, listen: &[ListenModel]) -> Result<Vec<Listener>, ConfigError> {
    if listen.is_empty() {
        return Err(cx.err(
            &["listen".into()],
            "no listeners: add at least one, e.g. `listen: [{ addr: 0.0.0.0:8080 }]`",
        ));
    }
    let mut out: Vec<Listener> = Vec::with_capacity(listen.len());
    for (i, l) in listen.iter().enumerate() {
        let addr = l.addr.0;
        if let Some(j) = out.iter().position(|o| overlap(o.addr, addr)) {
            return Err(cx.err(
                &["listen".into(), i.into(), "addr".into()],
                format!(
                    "address {addr} collides with listen[{j}] ({})",
                    out.get(j).map_or(addr, |o| o.addr)
                ),
            ));
        }
        let tls = match &l.tls {
            Some(Some(tls)) => Some(tls_files(cx, i, tls)?),
            Some(None) => {
                return Err(cx.err(
                    &["listen".into(), i.into(), "tls".into()],
                    "tls needs cert and key",
                ));
            }
            None => None,
        };
        out.push(Listener { addr, tls });
    }
    Ok(out)
}

/// Resolves the TLS paths against the config's directory and checks that
/// they hold PEM, so a bad file fails `check`, not the first handshake.
fn tls_files(cx: &Ctx<'_>, i: usize, tls: &TlsModel) -> Result<TlsFiles, ConfigError> {
    let cert_key = ["listen".into(), i.into(), "tls".into(), "cert".into()];
    let key_key = ["listen".into(), i.into(), "tls".into(), "key".into()];
    let cert = resolve_path(cx, &cert_key, &tls.cert)?;
    let key = resolve_path(cx, &key_key, &tls.key)?;

    let bytes = read(cx, &cert_key, &cert, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            cx.err(
                &cert_key,
                format!("TLS certificate {} is not valid PEM: {e}", cert.display()),
            )
        })?;
    if chain.is_empty() {
        return Err(cx.err(
            &cert_key,
            format!(
                "TLS certificate {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                cert.display()
            ),
        ));
    }

    let bytes = read(cx, &key_key, &key, "key")?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(_) => {}
        Err(pem::Error::NoItemsFound) => {
            return Err(cx.err(
                &key_key,
                format!(
                    "TLS key {} holds no PEM private key (-----BEGIN PRIVATE KEY-----)",
                    key.display()
                ),
            ))
        }
        Err(e) => {
            return Err(cx.err(
                &key_key,
                format!("TLS key {} is not valid PEM: {e}", key.display()),
            ))
        }
    }
    Ok(TlsFiles { cert, key })
}

/// `path` joined to the config file's directory, made absolute so that a
/// later change of working directory cannot break it.
fn resolve_path(cx: &Ctx<'_>, at: &[Seg<'_>], path: &str) -> Result<PathBuf, ConfigError> {
    if path.trim().is_empty() {
        return Err(cx.err(at, "the path is empty"));
    }
    let base = match cx.source.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let joined = base.join(path);
    Ok(std::path::absolute(&joined).unwrap_or(joined))
}

fn read(cx: &Ctx<'_>, at: &[Seg<'_>], path: &Path, what: &str) -> Result<Vec<u8>, ConfigError> {
    crate::files::read(path, crate::files::MAX_TLS_FILE).map_err(|e| {
        cx.err(
            at,
            format!("cannot read TLS {what} {}: {e}", path.display()),
        )
    })
}

fn upstreams(
    cx: &Ctx<'_>,
    named: Vec<(String, UpstreamModel)>,
) -> Result<Vec<Upstream>, ConfigError> {
    let mut out = Vec::with_capacity(named.len());
    for (name, m) in named {
        let here = |rest: &[Seg<'static>]| {
            let mut p: Vec<Seg<'_>> = vec!["upstreams".into(), Seg::Key(&name)];
            p.extend_from_slice(rest);
            p
        };
        if m.servers.is_empty() {
            return Err(cx.err(
                &here(&["servers".into()]),
                format!(
                    "upstream \"{name}\" has no servers: add e.g. servers: [\"127.0.0.1:8000\"]"
                ),
            ));
        }
        let mut servers: Vec<String> = Vec::with_capacity(m.servers.len());
        for (j, s) in m.servers.into_iter().enumerate() {
            if servers.contains(&s.0) {
                return Err(cx.err(
                    &here(&["servers".into(), j.into()]),
                    format!("server \"{}\" is listed twice", s.0),
                ));
            }
            servers.push(s.0);
        }
        let blank = |key: &'static str| {
            cx.err(&here(&[key.into()]), format!("{key} needs at least a path"))
        };
        let health_check = match m.health_check {
            Some(Some(h)) => Some(HealthCheck {
                path: h.path.0,
                interval: h.interval.map_or(DEFAULT_HEALTH_INTERVAL, |d| d.0),
            }),
            Some(None) => return Err(blank("health_check")),
            None => None,
        };
        let keep_warm = match m.keep_warm {
            Some(None) => return Err(blank("keep_warm")),
            Some(Some(k)) => {
                let method = k.method.map_or_else(|| "GET".to_string(), |m| m.0);
                if k.body.is_some() && (method == "GET" || method == "HEAD") {
                    return Err(cx.err(
                        &here(&["keep_warm".into(), "body".into()]),
                        format!("a body needs a method such as POST (method is {method})"),
                    ));
                }
                Some(KeepWarm {
                    method,
                    path: k.path.0,
                    body: k.body,
                    interval: k.interval.map_or(DEFAULT_KEEP_WARM_INTERVAL, |d| d.0),
                })
            }
            None => None,
        };
        out.push(Upstream {
            servers,
            balance: match m.balance {
                None | Some(BalanceModel::LeastStreams) => Balance::LeastStreams,
                Some(BalanceModel::RoundRobin) => Balance::RoundRobin,
            },
            connect_timeout: m.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0),
            health_check,
            keep_warm,
            name,
        });
    }
    Ok(out)
}

fn routes(
    cx: &Ctx<'_>,
    models: Vec<RouteModel>,
    upstreams: &[Upstream],
) -> Result<Vec<Route>, ConfigError> {
    if models.is_empty() {
        return Err(cx.err(
            &["routes".into()],
            "no routes: add at least one, e.g. `routes: [{ path: /, upstream: NAME }]`",
        ));
    }
    let mut seen: HashMap<(Option<String>, String), usize> = HashMap::new();
    let mut out = Vec::with_capacity(models.len());
    for (i, m) in models.into_iter().enumerate() {
        let at = |key: &'static str| [Seg::Key("routes"), Seg::Index(i), Seg::Key(key)];
        let Some(upstream) = upstreams.iter().position(|u| u.name == m.upstream) else {
            let known: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
            let known = if known.is_empty() {
                "no upstreams are defined".to_string()
            } else {
                format!("known: {}", known.join(", "))
            };
            return Err(cx.err(
                &at("upstream"),
                format!("unknown upstream \"{}\" ({known})", m.upstream),
            ));
        };
        let host = m.host.map(|h| h.0);
        let path = m.path.0;
        if let Some(first) = seen.insert((host.clone(), path.clone()), i) {
            let on = host
                .as_deref()
                .map_or("with no host".to_string(), |h| format!("on host \"{h}\""));
            return Err(cx.err(
                &at("path"),
                format!("duplicate route: path \"{path}\" {on} is also routes[{first}]"),
            ));
        }
        let stream = match m.stream {
            Some(s) => {
                let st = StreamSettings {
                    idle_timeout: s.idle_timeout.map_or(DEFAULT_IDLE_TIMEOUT, |d| d.0),
                    heartbeat: s.heartbeat.map(|d| d.0),
                    sse_headers: s.sse_headers.unwrap_or(true),
                    early_headers: s.early_headers.unwrap_or(false),
                };
                let sub = |key: &'static str| {
                    [
                        Seg::Key("routes"),
                        Seg::Index(i),
                        Seg::Key("stream"),
                        Seg::Key(key),
                    ]
                };
                if let Some(hb) = st.heartbeat.filter(|hb| *hb >= st.idle_timeout) {
                    return Err(cx.err(
                        &sub("heartbeat"),
                        format!(
                            "heartbeat {} must be shorter than idle_timeout {}",
                            humantime::format_duration(hb),
                            humantime::format_duration(st.idle_timeout)
                        ),
                    ));
                }
                if st.early_headers && !st.sse_headers {
                    return Err(cx.err(
                        &sub("early_headers"),
                        "early_headers: true needs sse_headers: true (the early answer is an SSE stream)",
                    ));
                }
                Some(st)
            }
            None => None,
        };
        out.push(Route {
            name: m.name.map_or_else(|| path.clone(), |n| n.0),
            host,
            path,
            upstream,
            upstream_name: m.upstream,
            read_timeout: m
                .read_timeout
                .as_ref()
                .map_or(DEFAULT_READ_TIMEOUT, |d| d.0),
            read_timeout_set: m.read_timeout.is_some(),
            stream,
            max_streams: m.max_streams.map(|n| n.0),
            max_streams_per_client: m.max_streams_per_client.map(|n| n.0),
        });
    }
    Ok(out)
}
