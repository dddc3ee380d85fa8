//! The config file: YAML in, a validated [`Config`] out, or one
//! [`ConfigError`] that names the file, line, column and key.

mod locate;
mod model;
mod resolve;
mod summary;
mod values;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::routes::{Route, RouteTable, StreamSettings};
pub use summary::summary;

/// A validated config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from (as given to [`load`] or [`parse`]).
    pub source: PathBuf,
    /// Public listeners, at least one.
    pub listeners: Vec<Listener>,
    /// Admin endpoint address (default 127.0.0.1:9901).
    pub admin: SocketAddr,
    /// Worker threads (default: available parallelism).
    pub threads: usize,
    /// Peers whose X-Forwarded-For is kept and appended to.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Upstreams in file order; `Route::upstream` indexes this.
    pub upstreams: Vec<Upstream>,
    /// Routes, in match order.
    pub routes: RouteTable,
    /// How long open streams may run after SIGTERM/SIGINT (default 30s).
    pub shutdown_grace: Duration,
    /// Longest time from a request head's first byte to its end (default 10s).
    pub header_timeout: Duration,
}

/// One public listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Address to bind.
    pub addr: SocketAddr,
    /// TLS files; `None` = plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// TLS certificate chain and private key, both PEM files checked at load.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// Certificate chain file, absolute (resolved against the config's directory).
    pub cert: PathBuf,
    /// Private key file, absolute (resolved against the config's directory).
    pub key: PathBuf,
}

/// One upstream: a named group of servers.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Name from the file (the `upstream` metrics label).
    pub name: String,
    /// `host:port` servers, syntax checked but not resolved.
    pub servers: Vec<String>,
    /// Load-balancing policy.
    pub balance: Balance,
    /// TCP connect timeout (default 5s).
    pub connect_timeout: Duration,
    /// Active health check, if any.
    pub health_check: Option<HealthCheck>,
    /// Keep-warm request, if any.
    pub keep_warm: Option<KeepWarm>,
}

/// Load-balancing policy of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// The server with the fewest open streams (default).
    #[default]
    LeastStreams,
    /// Servers in turn.
    RoundRobin,
}

/// Active health check of an upstream's servers.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// Path requested with GET (starts with `/`).
    pub path: String,
    /// Time between checks (default 10s).
    pub interval: Duration,
}

/// A periodic request that keeps a model loaded between chats.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepWarm {
    /// HTTP method (default GET), a validated token.
    pub method: String,
    /// Path requested (starts with `/`).
    pub path: String,
    /// Request body, if any (only with a method other than GET/HEAD).
    pub body: Option<String>,
    /// Time between requests (default 5m).
    pub interval: Duration,
}

/// Why a config was refused; displays as `file:line:col: key: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// Line, 1-based, when known.
    pub line: Option<usize>,
    /// Column, 1-based, when known.
    pub column: Option<usize>,
    /// Key path such as `routes[1].upstream`, when there is one.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text =
        crate::files::read_text(path, crate::files::MAX_CONFIG).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read the config file: {e}"),
        })?;
    parse(&text, path)
}

/// Validates config `text`; `source` names it in messages and anchors
/// relative TLS paths (they are resolved against its directory).
pub fn parse(text: &str, source: &Path) -> Result<Config, ConfigError> {
    // An empty file (or only comments) is `None`; the checks then say what is missing.
    let file: Option<model::FileModel> =
        serde_yaml::from_str(text).map_err(|e| serde_error(&e, text, source))?;
    resolve::resolve(file.unwrap_or_default(), text, source)
}

/// Turns a serde_yaml error into a [`ConfigError`], splitting the key path
/// serde_yaml puts in front of its message into `key`.
fn serde_error(err: &serde_yaml::Error, text: &str, source: &Path) -> ConfigError {
    let loc = err.location();
    let mut error = ConfigError {
        file: source.to_path_buf(),
        line: loc.as_ref().map(|l| l.line()),
        column: loc.as_ref().map(|l| l.column()),
        key: None,
        message: without_location(err),
    };
    let Ok(doc) = locate::Doc::parse(text) else {
        // serde_yaml may stop at a type error before reaching the broken
        // part; the YAML itself needs fixing first. libyaml (reading a plain
        // value) words it best: it also names where the broken part began.
        if let Err(yaml) = serde_yaml::from_str::<serde_yaml::Value>(text) {
            let loc = yaml.location();
            error.line = loc.as_ref().map(|l| l.line());
            error.column = loc.as_ref().map(|l| l.column());
            error.message = format!("invalid YAML: {}", without_location(&yaml));
        }
        // Else only yaml-rust2 refused it: serde's own error stands.
        return error;
    };
    let paths = doc.serde_paths();
    // The longest prefix before ": " that is a real key path is the path.
    let split = error
        .message
        .match_indices(": ")
        .map(|(i, _)| i)
        .filter(|&i| {
            error
                .message
                .get(..i)
                .is_some_and(|p| paths.contains_key(p))
        })
        .last();
    let (mut key, rest) = match split {
        Some(i) => (
            error.message.get(..i).map(str::to_string),
            error.message.get(i + 2..).unwrap_or_default().to_string(),
        ),
        None => (None, error.message.clone()),
    };
    // Errors about a key itself (unknown field, name defined twice) are
    // marked at that key and name it in backticks: the key path is then the
    // key's, not its mapping's. A repeated field is marked at its mapping:
    // point at the repeat instead. (A missing field stays at its mapping.)
    let named = rest.split('`').nth(1).unwrap_or_default();
    let child = match &key {
        Some(k) => format!("{k}.{named}"),
        None => named.to_string(),
    };
    let key_pos = paths.get(&child).map(Vec::as_slice).unwrap_or_default();
    let here = |p: &locate::Pos| Some(p.line) == error.line && Some(p.column) == error.column;
    if rest.starts_with("duplicate field `") {
        if let Some(repeat) = key_pos.get(1) {
            error.line = Some(repeat.line);
            error.column = Some(repeat.column);
            key = Some(child);
        }
    } else if !named.is_empty() && key_pos.iter().any(here) {
        key = Some(child);
    }
    error.key = key;
    error.message = rest;
    error
}

/// serde_yaml's message without the " at line L column C" it appends
/// (ConfigError shows the position itself).
fn without_location(err: &serde_yaml::Error) -> String {
    let mut message = err.to_string();
    if let Some(loc) = err.location() {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(i) = message.find(&suffix) {
            message.replace_range(i..i + suffix.len(), "");
        }
    }
    message
}
