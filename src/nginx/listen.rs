//! Listeners: the union of every server's `listen`, merged the way nginx
//! binds them (a wildcard address covers the specific ones on its port),
//! and an admin address that none of them takes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::rc::Rc;

use super::parse::Directive;
use super::translate::Notes;

/// First admin address tried (the contract's default).
const ADMIN_PORT: u16 = 9901;

/// TLS files as written in nginx (certificate, key).
pub type Tls = (String, String);

/// One `listen` as a server asked for it.
#[derive(Debug, Clone)]
pub struct ListenReq<'a> {
    /// Address to bind.
    pub addr: SocketAddr,
    /// TLS files, for `listen ... ssl`.
    pub tls: Option<Tls>,
    /// The `listen` directive (the server's, when it has none and gets nginx's default).
    pub d: &'a Directive,
}

/// One listener of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOut {
    /// Address to bind.
    pub addr: SocketAddr,
    /// TLS files.
    pub tls: Option<Tls>,
    /// Where it was first asked for (file, line).
    pub origin: (Rc<Path>, usize),
    /// The directive as written (`server` for nginx's default `listen *:80`).
    pub what: String,
}

/// Merges the requests into listeners; also gives, per request, the index
/// of the listener that serves it.
pub fn merge(reqs: &[ListenReq<'_>], notes: &mut Notes) -> (Vec<ListenOut>, Vec<usize>) {
    // nginx binds only the wildcard when a port has one (without `bind`).
    let key = |a: SocketAddr| {
        let wild = match a {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let w = SocketAddr::new(wild, a.port());
        if reqs.iter().any(|r| r.addr == w) {
            w
        } else {
            a
        }
    };
    let mut out: Vec<ListenOut> = Vec::new();
    let mut index = Vec::with_capacity(reqs.len());
    for r in reqs {
        let addr = key(r.addr);
        let i = match out.iter().position(|o| o.addr == addr) {
            Some(i) => i,
            None => {
                // The group takes the TLS files of its first TLS request.
                let tls = reqs
                    .iter()
                    .find(|o| key(o.addr) == addr && o.tls.is_some())
                    .and_then(|o| o.tls.clone());
                out.push(ListenOut {
                    addr,
                    tls,
                    origin: (Rc::clone(&r.d.file), r.d.line),
                    what: r.d.text(),
                });
                out.len() - 1
            }
        };
        index.push(i);
        let Some(l) = out.get(i) else { continue };
        match (&l.tls, &r.tls) {
            (Some(_), None) => notes.add(
                r.d,
                &format!("{addr} is a TLS listener (another server has listen ... ssl): plain HTTP on it is not translated"),
            ),
            (Some(t), Some(mine)) if t != mine => notes.add(
                r.d,
                &format!(
                    "ssegate has one certificate per listener (no SNI): {addr} uses {}",
                    t.0
                ),
            ),
            _ => {}
        }
    }
    (out, index)
}

/// The admin address: 127.0.0.1:9901, or the next port no listener takes.
pub fn admin(listeners: &[ListenOut], notes: &mut Notes) -> SocketAddr {
    let at = |port| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    let taken = |addr| listeners.iter().find(|l| overlap(l.addr, addr));
    let Some(first) = taken(at(ADMIN_PORT)) else {
        return at(ADMIN_PORT);
    };
    let addr = (ADMIN_PORT..=u16::MAX)
        .map(at)
        .find(|a| taken(*a).is_none())
        .unwrap_or(at(ADMIN_PORT));
    let (file, line) = &first.origin;
    notes.push(
        file,
        *line,
        format!(
            "listen {}: the admin endpoint moves to {addr} (it must not share a public listener)",
            first.addr
        ),
    );
    addr
}

/// Whether two bind addresses collide (same port; same IP or a wildcard of the same family).
pub fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}
