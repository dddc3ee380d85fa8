//! Upstreams: nginx `upstream` blocks, the ones generated for `proxy_pass`
//! to a bare address, and the fail-closed upstream that answers for
//! locations whose access control does not translate.

use std::path::Path;
use std::rc::Rc;

use super::parse::Directive;
use super::translate::Notes;
use super::values::{self, Dur, Target};
use super::NginxError;

/// Name of the upstream fail-closed routes point to.
const FAIL_CLOSED: &str = "fail_closed";
/// A server that can never answer: `.invalid` never resolves (RFC 6761),
/// so every request to it gets 502 and nothing reaches an application.
const NOWHERE: &str = "access-control-not-translated.invalid:80";

/// How an upstream came to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An nginx `upstream` block (file, line).
    Block(Rc<Path>, usize),
    /// Made for `proxy_pass` to an address (file, line of the first such proxy_pass).
    Generated(Rc<Path>, usize),
    /// The fail-closed upstream.
    FailClosed,
}

/// `balance:` of an upstream with several servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// From `least_conn`.
    LeastStreams,
    /// nginx's default; `why` says which directive led here.
    RoundRobin {
        /// Why round robin: nginx's default, or a method ssegate lacks.
        why: &'static str,
    },
}

/// One upstream of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamOut {
    /// Its name.
    pub name: String,
    /// `host:port` servers; empty = nothing usable (emitted commented out).
    pub servers: Vec<String>,
    /// Balance, when there is more than one server.
    pub balance: Option<Balance>,
    /// Connect timeout: the longest any of its locations had.
    pub connect_timeout: Option<Dur>,
    /// Where it came from.
    pub kind: Kind,
    /// Timeouts seen per location, to pick the longest and note the others.
    timeouts: Vec<(Dur, Rc<Path>, usize, String)>,
}

/// All upstreams, in output order.
#[derive(Debug, Default)]
pub struct Upstreams {
    /// The list.
    pub list: Vec<UpstreamOut>,
}

impl Upstreams {
    /// Reads the `upstream` blocks; a name defined twice is an error, as in nginx.
    pub fn from_blocks(blocks: &[&Directive], notes: &mut Notes) -> Result<Self, NginxError> {
        let mut out = Upstreams::default();
        for d in blocks {
            let name = d.arg(0).unwrap_or_default().to_string();
            if name.is_empty() || d.args.len() != 1 || name.contains(char::is_control) {
                return Err(at(d, "upstream takes one name"));
            }
            if out.list.iter().any(|u| u.name.eq_ignore_ascii_case(&name)) {
                return Err(at(d, &format!("upstream \"{name}\" is defined twice")));
            }
            out.list.push(block(d, name, notes));
        }
        Ok(out)
    }

    /// The upstream a `proxy_pass` target goes to, generating one for an address.
    pub fn resolve(&mut self, t: &Target, d: &Directive) -> Result<String, String> {
        let block = self
            .list
            .iter()
            .find(|u| matches!(u.kind, Kind::Block(..)) && u.name.eq_ignore_ascii_case(&t.host));
        if let (Some(u), None) = (block, t.port) {
            if t.scheme != "http" {
                return Err(format!("{}:// upstreams are not translated (ssegate connects to upstreams over plain HTTP)", t.scheme));
            }
            if u.servers.is_empty() {
                return Err(format!("upstream {} has no server ssegate can use", u.name));
            }
            return Ok(u.name.clone());
        }
        if t.scheme != "http" {
            return Err(format!("{}:// upstreams are not translated (ssegate connects to upstreams over plain HTTP)", t.scheme));
        }
        let host = t.host.as_str();
        let server = match t.port {
            Some(p) => values::server(&format!("{host}:{p}"), 80)?,
            None => values::server(host, 80)?,
        };
        if let Some(u) = self.list.iter().find(|u| {
            matches!(u.kind, Kind::Generated(..))
                && u.servers.as_slice() == std::slice::from_ref(&server)
        }) {
            return Ok(u.name.clone());
        }
        let (h, p) = server.rsplit_once(':').unwrap_or((server.as_str(), ""));
        let h: String = h
            .trim_matches(['[', ']'])
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let base = format!("{h}_{p}");
        let name = self.free_name(&base);
        self.list.push(UpstreamOut {
            name: name.clone(),
            servers: vec![server],
            balance: None,
            connect_timeout: None,
            kind: Kind::Generated(Rc::clone(&d.file), d.line),
            timeouts: Vec::new(),
        });
        Ok(name)
    }

    /// The fail-closed upstream's name, adding it on first use.
    pub fn fail_closed(&mut self) -> String {
        if let Some(u) = self.list.iter().find(|u| u.kind == Kind::FailClosed) {
            return u.name.clone();
        }
        let name = self.free_name(FAIL_CLOSED);
        self.list.push(UpstreamOut {
            name: name.clone(),
            servers: vec![NOWHERE.to_string()],
            balance: None,
            connect_timeout: None,
            kind: Kind::FailClosed,
            timeouts: Vec::new(),
        });
        name
    }

    /// Records a location's `proxy_connect_timeout` for upstream `name`.
    pub fn connect_timeout(&mut self, name: &str, t: &Dur, d: &Directive) {
        if let Some(u) = self.list.iter_mut().find(|u| u.name == name) {
            let key = (Rc::clone(&d.file), d.line);
            if !u
                .timeouts
                .iter()
                .any(|(_, f, l, _)| (f, *l) == (&key.0, key.1))
            {
                u.timeouts.push((t.clone(), key.0, key.1, d.text()));
            }
        }
    }

    /// Sets each upstream's connect timeout to the longest recorded and notes the shorter ones.
    pub fn finish(&mut self, notes: &mut Notes) {
        // The fail-closed upstream goes last, after everything real.
        self.list.sort_by_key(|u| u.kind == Kind::FailClosed);
        for u in &mut self.list {
            let Some(longest) = u
                .timeouts
                .iter()
                .map(|t| &t.0)
                .max_by_key(|t| t.value)
                .cloned()
            else {
                continue;
            };
            for (t, file, line, text) in &u.timeouts {
                if t.value < longest.value {
                    notes.push(
                        file,
                        *line,
                        format!(
                            "{text}: upstream {} gets the longest of its locations' timeouts, {} (ssegate sets it per upstream)",
                            u.name, longest.text
                        ),
                    );
                }
            }
            u.connect_timeout = Some(longest);
        }
    }

    /// A name not yet taken (`base`, `base_2`, ...).
    fn free_name(&self, base: &str) -> String {
        let taken = |n: &str| self.list.iter().any(|u| u.name.eq_ignore_ascii_case(n));
        let mut name = base.to_string();
        let mut i = 2;
        while taken(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        name
    }
}

fn at(d: &Directive, message: &str) -> NginxError {
    NginxError::At {
        file: d.file.to_path_buf(),
        line: d.line,
        message: message.to_string(),
    }
}

/// Parameters of an upstream `server` ssegate has no use for, but that
/// change nothing it does either.
const SILENT_PARAMS: [&str; 2] = ["resolve", "service"];

/// Translates one `upstream` block.
fn block(d: &Directive, name: String, notes: &mut Notes) -> UpstreamOut {
    let mut servers: Vec<String> = Vec::new();
    let mut balance = Balance::RoundRobin {
        why: "nginx's default",
    };
    for c in d.children() {
        match c.name.as_str() {
            "server" => {
                let addr = c.arg(0).unwrap_or_default();
                let params: Vec<&str> = c.args.iter().skip(1).map(String::as_str).collect();
                if params.contains(&"backup") {
                    notes.add(c, "backup servers are not translated (ssegate would send them requests all the time)");
                    continue;
                }
                if params.contains(&"down") {
                    notes.add(c, "left out: it is marked down");
                    continue;
                }
                let server = match values::server(addr, 80) {
                    Ok(s) => s,
                    Err(why) => {
                        notes.add(c, &format!("left out: {why}"));
                        continue;
                    }
                };
                let ignored: Vec<&str> = params
                    .iter()
                    .map(|p| p.split('=').next().unwrap_or_default())
                    .filter(|p| !SILENT_PARAMS.contains(p))
                    .collect();
                if !ignored.is_empty() {
                    notes.add(
                        c,
                        &format!("{} not translated (ssegate balances by open streams or in turn, without weights or passive health checks)", list(&ignored)),
                    );
                }
                if servers.contains(&server) {
                    notes.add(c, "listed twice: kept once");
                } else {
                    servers.push(server);
                }
            }
            "least_conn" => balance = Balance::LeastStreams,
            "ip_hash" | "hash" | "random" | "sticky" | "ntlm" => {
                balance = Balance::RoundRobin {
                    why: "sticky or hashed balancing is not translated",
                };
                notes.add(c, "not translated: the servers are balanced round robin");
            }
            // ssegate keeps its own connection pool; zones only share nginx state.
            "keepalive" | "keepalive_timeout" | "keepalive_requests" | "keepalive_time"
            | "zone" => {}
            _ => notes.add(c, "not translated"),
        }
    }
    if servers.is_empty() {
        notes.add(
            d,
            "no server ssegate can use: the upstream and its routes are commented out",
        );
    }
    UpstreamOut {
        balance: (servers.len() > 1).then_some(balance),
        servers,
        name,
        connect_timeout: None,
        kind: Kind::Block(Rc::clone(&d.file), d.line),
        timeouts: Vec::new(),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn list(items: &[&str]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => format!("{last} is"),
        Some((last, rest)) => format!("{} and {last} are", rest.join(", ")),
    }
}
