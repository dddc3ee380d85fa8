//! `server` blocks: their `listen`s (with the TLS files in force) and the
//! hosts their routes get from `server_name`, and what changes because
//! ssegate routes are not per server.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};

use super::listen::{ListenOut, ListenReq, Tls};
use super::parse::Directive;
use super::routes::{RouteOut, State};
use super::scope::Scope;
use super::translate::{Cx, Server};
use super::values::{self, Name};

impl<'a> Cx<'a> {
    /// Translates one `server` block: its listeners, hosts and locations.
    pub(super) fn server(&mut self, d: &'a Directive, parent: &Scope<'a>) {
        let dirs = d.children();
        let scope = parent.with(dirs);
        let ssl_on = dirs
            .iter()
            .any(|c| c.name == "ssl" && c.arg(0) == Some("on"));
        let mut default_server = false;
        let mut listens = Vec::new();
        for c in dirs.iter().filter(|c| c.name == "listen") {
            let params: Vec<&str> = c.args.iter().skip(1).map(String::as_str).collect();
            default_server |= params
                .iter()
                .any(|p| matches!(*p, "default_server" | "default"));
            let skip = if params.contains(&"quic") {
                Some("QUIC (HTTP/3) is not translated".to_string())
            } else if params.contains(&"proxy_protocol") {
                Some("the PROXY protocol is not translated".to_string())
            } else {
                None
            };
            let addr = match (skip, values::listen(c.arg(0).unwrap_or_default())) {
                (Some(why), _) | (None, Err(why)) => {
                    self.notes.add(c, &format!("listener left out: {why}"));
                    continue;
                }
                (None, Ok(l)) => {
                    if let Some(caveat) = &l.caveat {
                        self.notes.add(c, caveat);
                    }
                    l.addr
                }
            };
            let tls = match ssl_on || params.contains(&"ssl") {
                true => match self.tls_files(c, &scope) {
                    Some(t) => Some(t),
                    None => continue,
                },
                false => None,
            };
            listens.push(self.reqs.len());
            self.reqs.push(ListenReq { addr, tls, d: c });
        }
        if !dirs.iter().any(|c| c.name == "listen") {
            // nginx's default `listen *:80` (when it runs as root).
            let addr = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 80);
            listens.push(self.reqs.len());
            self.reqs.push(ListenReq { addr, tls: None, d });
        }
        let (hosts, names) = self.hosts(dirs, default_server);
        let idx = self.servers.len();
        self.servers.push(Server {
            d,
            hosts,
            names,
            default_server,
            listens,
        });
        for c in dirs {
            if !matches!(
                c.name.as_str(),
                "listen" | "server_name" | "location" | "return" | "ssl"
            ) {
                self.other(c);
            }
        }
        if let Some(r) = dirs.iter().find(|c| c.name == "return") {
            let mut why = "the server answers every request itself (ssegate sends no redirects or fixed responses)".to_string();
            if dirs.iter().any(|c| c.name == "location") {
                why.push_str("; its locations are not translated");
            }
            self.notes.add(r, &why);
            return;
        }
        for c in dirs.iter().filter(|c| c.name == "location") {
            self.location(c, &scope, idx);
        }
    }

    /// The certificate and key in force for `listen ... ssl` (the first pair).
    fn tls_files(&mut self, listen: &Directive, scope: &Scope<'a>) -> Option<Tls> {
        let (Some(cert), Some(key)) = (scope.certs.first(), scope.keys.first()) else {
            self.notes.add(
                listen,
                "listener left out: no ssl_certificate and ssl_certificate_key for it",
            );
            return None;
        };
        for extra in scope.certs.iter().skip(1).chain(scope.keys.iter().skip(1)) {
            self.notes
                .add(extra, "only the first certificate and key are translated");
        }
        let mut files = Vec::new();
        for d in [cert, key] {
            let path = d.arg(0).unwrap_or_default();
            if path.is_empty() || path.contains('$') || path.starts_with("data:") {
                self.notes.add(
                    d,
                    "not translated (ssegate needs a file name): the listener is left out",
                );
                return None;
            }
            files.push(path.to_string());
        }
        let [cert, key] = <[String; 2]>::try_from(files).ok()?;
        Some((cert, key))
    }

    /// The hosts a server's routes get: one per exact name; none (`None`)
    /// for `_`, no name, or the `default_server`, which catches every host.
    fn hosts(
        &mut self,
        dirs: &'a [Directive],
        default_server: bool,
    ) -> (Vec<Option<String>>, Option<&'a Directive>) {
        let mut exact: Vec<String> = Vec::new();
        let mut first = None;
        let mut lost = None;
        for c in dirs.iter().filter(|c| c.name == "server_name") {
            first.get_or_insert(c);
            for n in &c.args {
                let host = match values::server_name(n) {
                    Ok(Name::Any) => continue,
                    Ok(Name::Exact(h)) => h,
                    Ok(Name::ExactAndWildcard(h)) => {
                        let why =
                            format!("server_name {n}: the wildcard part *.{h} is not translated");
                        self.notes.push(&c.file, c.line, why);
                        h
                    }
                    Err(why) => {
                        self.notes
                            .push(&c.file, c.line, format!("server_name {n}: {why}"));
                        lost = Some(c);
                        continue;
                    }
                };
                if !exact.contains(&host) {
                    exact.push(host);
                }
            }
        }
        if default_server || exact.is_empty() {
            if let (Some(c), false) = (lost, default_server) {
                self.notes.add(
                    c,
                    "no exact name left to route by: the server's routes apply to every host",
                );
            }
            return (vec![None], first);
        }
        (exact.into_iter().map(Some).collect(), first)
    }

    /// Notes what changes because ssegate routes are not per server: routes
    /// served on listeners their server did not have, and the default
    /// server's catch-all lost when every route has a host.
    pub(super) fn server_notes(
        &mut self,
        listeners: &[ListenOut],
        index: &[usize],
        routes: &[RouteOut],
    ) {
        let own: Vec<BTreeSet<usize>> = self
            .servers
            .iter()
            .map(|s| {
                s.listens
                    .iter()
                    .filter_map(|&r| index.get(r).copied())
                    .collect()
            })
            .collect();
        let listens_on = |s: &usize, l: usize| own.get(*s).is_some_and(|o| o.contains(&l));
        for (i, s) in self.servers.iter().enumerate() {
            // Listeners that now serve a route of this server that no server there had.
            let extra: Vec<String> = (0..listeners.len())
                .filter(|&l| {
                    routes.iter().any(|r| {
                        r.state == State::Active
                            && r.server == i
                            && !listens_on(&r.server, l)
                            && !r.copies.iter().any(|c| listens_on(c, l))
                    })
                })
                .filter_map(|l| listeners.get(l).map(|l| l.addr.to_string()))
                .collect();
            if !extra.is_empty() {
                let why = format!("ssegate routes are not per listener: this server's routes are also served on {}", extra.join(", "));
                self.notes.add(s.d, &why);
            }
        }
        if routes
            .iter()
            .any(|r| r.host.is_none() && r.state == State::Active)
        {
            return;
        }
        let default = self
            .servers
            .iter()
            .find(|s| s.default_server)
            .or(self.servers.first());
        let names = default
            .filter(|s| s.hosts.iter().any(Option::is_some))
            .and_then(|s| s.names);
        if let Some(names) = names {
            self.notes.add(names, "nginx also sent requests for other host names (or a bare IP) to this default server; ssegate answers them 404 unless a route has no host:");
        }
    }
}
