//! From directive trees to a [`Plan`]: walks `http`, `server` and
//! `location` blocks with nginx's inheritance, and decides for each location
//! whether it becomes a route, a commented-out route, a fail-closed route or
//! only a comment.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::listen::{self, ListenOut, ListenReq};
use super::location::{self, Analysis, Class};
use super::parse::{one_line, Directive};
use super::routes::{RouteOut, Routes, State, StreamOut};
use super::scope::{self, refuses, Scope};
use super::upstreams::{UpstreamOut, Upstreams};
use super::values;
use super::values::Dur;
use super::{NginxError, Note};

/// Directives the [`Scope`] carries down to the locations that use them, besides the access
/// controls of [`scope::AUTH`] (one list, so an auth directive can never be left behind).
const SCOPED: [&str; 6] = [
    "proxy_read_timeout",
    "proxy_connect_timeout",
    "allow",
    "deny",
    "ssl_certificate",
    "ssl_certificate_key",
];

/// Notes, each given once.
#[derive(Debug, Default)]
pub struct Notes {
    list: Vec<Note>,
    seen: HashSet<(PathBuf, usize, String)>,
}

impl Notes {
    /// Notes directive `d` (its text starts the message) as not translated for `why`.
    pub fn add(&mut self, d: &Directive, why: &str) {
        self.push(&d.file, d.line, format!("{}: {why}", d.text()));
    }

    /// Adds a note with a message of its own.
    pub fn push(&mut self, file: &Path, line: usize, message: String) {
        let message = one_line(&message);
        if self
            .seen
            .insert((file.to_path_buf(), line, message.clone()))
        {
            self.list.push(Note {
                file: file.to_path_buf(),
                line,
                message,
            });
        }
    }
}

/// Everything the YAML is written from.
#[derive(Debug)]
pub struct Plan {
    /// Public listeners.
    pub listeners: Vec<ListenOut>,
    /// Admin address, clear of the listeners.
    pub admin: SocketAddr,
    /// Upstreams in output order.
    pub upstreams: Vec<UpstreamOut>,
    /// Routes and comments, in file order.
    pub routes: Vec<RouteOut>,
    /// `header_timeout` from `client_header_timeout`, if the config set one.
    pub header_timeout: Option<HeaderTimeout>,
    /// Notes in file order.
    pub notes: Vec<Note>,
}

/// `client_header_timeout`, as ssegate's one `header_timeout`.
#[derive(Debug, Clone)]
pub struct HeaderTimeout {
    /// The duration, as written for ssegate.
    pub value: Dur,
    /// The nginx file and line it came from.
    pub origin: (PathBuf, usize),
}

/// What routes of one `server` block need from it.
#[derive(Debug)]
pub(super) struct Server<'a> {
    /// The `server` block.
    pub(super) d: &'a Directive,
    /// One entry per route copy: a host, or `None` for any host.
    pub(super) hosts: Vec<Option<String>>,
    /// Its first `server_name`.
    pub(super) names: Option<&'a Directive>,
    /// It has `listen ... default_server`.
    pub(super) default_server: bool,
    /// Indexes into `Cx::reqs`.
    pub(super) listens: Vec<usize>,
}

/// Where a location's routes go.
struct Place<'d> {
    /// The `location` block.
    d: &'d Directive,
    /// Its path.
    path: &'d str,
    /// It was `location =`.
    exact: bool,
    /// Index of its server.
    srv: usize,
    /// One route per entry: a host, or any.
    hosts: Vec<Option<String>>,
}

/// The translation in progress.
pub(super) struct Cx<'a> {
    /// The main file's directory, for positions in messages.
    base: PathBuf,
    /// Notes so far.
    pub(super) notes: Notes,
    /// Upstreams so far.
    upstreams: Upstreams,
    /// Every `listen` of every server, in file order.
    pub(super) reqs: Vec<ListenReq<'a>>,
    /// The `server` blocks so far.
    pub(super) servers: Vec<Server<'a>>,
    /// Route entries so far.
    routes: Routes,
    /// Every valid `client_header_timeout`, in file order.
    header_timeouts: Vec<HeaderTimeout>,
}

/// Translates the parsed config; `base` is the main file's directory (for messages).
pub fn translate(tree: &[Directive], base: &Path) -> Result<Plan, NginxError> {
    let mut notes = Notes::default();
    let mut blocks = Vec::new();
    upstream_blocks(tree, &mut blocks);
    let upstreams = Upstreams::from_blocks(&blocks, &mut notes)?;
    let mut cx = Cx {
        base: base.to_path_buf(),
        notes,
        upstreams,
        reqs: Vec::new(),
        servers: Vec::new(),
        routes: Routes::new(base),
        header_timeouts: Vec::new(),
    };
    cx.http(tree, &Scope::default().with(tree), true);
    cx.finish(tree)
}

/// `upstream` blocks at the top level or in `http`.
fn upstream_blocks<'a>(dirs: &'a [Directive], out: &mut Vec<&'a Directive>) {
    for d in dirs {
        match d.name.as_str() {
            "upstream" => out.push(d),
            "http" => upstream_blocks(d.children(), out),
            _ => {}
        }
    }
}

impl<'a> Cx<'a> {
    /// The main context or `http`: servers, and what their locations inherit.
    fn http(&mut self, dirs: &'a [Directive], scope: &Scope<'a>, main: bool) {
        for d in dirs {
            match d.name.as_str() {
                "http" if main => self.http(d.children(), &scope.with(d.children()), false),
                "server" => self.server(d, scope),
                "upstream" => {}
                _ => self.other(d),
            }
        }
    }

    /// A directive no level handles itself: kept in the scope, dropped or noted.
    pub(super) fn other(&mut self, d: &Directive) {
        let name = d.name.as_str();
        if name == "client_header_timeout" {
            match scope::positive(d.arg(0).unwrap_or_default()) {
                Some(value) => self.header_timeouts.push(HeaderTimeout {
                    value,
                    origin: (d.file.to_path_buf(), d.line),
                }),
                None => self
                    .notes
                    .add(d, "not translated: not a duration above zero"),
            }
            return;
        }
        let timeout = matches!(name, "proxy_read_timeout" | "proxy_connect_timeout");
        if timeout && scope::positive(d.arg(0).unwrap_or_default()).is_none() {
            self.notes
                .add(d, "not translated: not a duration above zero");
        }
        // The scope carries these down to the locations they apply to.
        let scoped = SCOPED.contains(&name)
            || scope::AUTH.contains(&name)
            || (name == "if" && refuses(d.children()));
        if let (false, Class::Note(why)) = (scoped, location::classify(d)) {
            self.notes.add(d, &why);
        }
    }

    /// Translates one `location` of server `srv`, then its nested ones.
    pub(super) fn location(&mut self, d: &'a Directive, parent: &Scope<'a>, srv: usize) {
        let (modifier, path) = match d.args.as_slice() {
            [m, p] => (m.as_str(), p.as_str()),
            [p] => location::split_modifier(p),
            _ => ("?", ""),
        };
        let skip = match modifier {
            "~" | "~*" if refuses(d.children()) => Some("regex locations are not translated, nor is its access control: the requests it refused reach the prefix routes"),
            "~" | "~*" => Some("regex locations are not translated"),
            "@" => Some("named locations are not translated"),
            "" | "^~" | "=" if location::valid_path(path) => None,
            "" | "^~" | "=" => Some("not translated: ssegate routes need a path starting with / without ?, # or spaces"),
            _ => Some("not translated: not a location ssegate understands"),
        };
        if let Some(why) = skip {
            self.notes.add(d, why);
            self.routes.skip(d, why);
            return;
        }
        let scope = parent.with(d.children());
        let a = location::analyze(d.children());
        let place = Place {
            d,
            path,
            exact: modifier == "=",
            srv,
            hosts: self
                .servers
                .get(srv)
                .map(|s| s.hosts.clone())
                .unwrap_or_default(),
        };
        self.routes_of(&place, &scope, &a);
        for n in &a.nested {
            self.location(n, &scope, srv);
        }
    }

    /// The route entries of one prefix location.
    fn routes_of(&mut self, at: &Place<'_>, scope: &Scope<'a>, a: &Analysis<'a>) {
        let d = at.d;
        let mut access = scope.access();
        access.extend(a.refusals.iter().copied());
        // The access directive that closes the path, with its place when inherited.
        let closed =
            access.first().map(
                |acc| match d.children().iter().any(|c| std::ptr::eq(c, *acc)) {
                    true => acc.text(),
                    false => format!("{} ({}:{})", acc.text(), self.rel(&acc.file), acc.line),
                },
            );
        let Some(pp) = a.proxy_pass else {
            let why = match (&closed, &a.content) {
                (Some(acc), _) => format!("not translated, and its path answers 502 (fail closed): {acc} is not translated"),
                (None, Some(content)) => format!("not translated: {content}"),
                (None, None) => "not translated: no proxy_pass".to_string(),
            };
            self.notes.add(d, &why);
            match &closed {
                Some(acc) => self.close(at, acc),
                None => self.routes.skip(d, &why),
            }
            return;
        };
        let (upstream, blocker) = match values::target(pp.arg(0).unwrap_or_default()) {
            Err(why) => (None, Some(format!("{}: {why}", pp.text()))),
            Ok(t) => match self.upstreams.resolve(&t, pp) {
                Err(why) => (None, Some(format!("{}: {why}", pp.text()))),
                Ok(name) => {
                    let moved = t.uri.as_deref().is_some_and(|u| u != at.path);
                    let why = moved.then(|| {
                        format!(
                            "{} changes the path (ssegate forwards it unchanged)",
                            pp.text()
                        )
                    });
                    (Some(name), why.or_else(|| a.blocker.clone()))
                }
            },
        };
        if at.exact && upstream.is_some() {
            let why = "exact match translated as a prefix route (it also matches longer paths)";
            self.notes.add(d, why);
        }
        let state = match (&closed, &blocker) {
            (Some(acc), _) => {
                self.notes.add(d, &format!("commented out, and its path answers 502 (fail closed): {acc} is not translated"));
                State::Disabled(format!(
                    "{acc} is not translated (the fail-closed route below holds its path)"
                ))
            }
            (None, Some(why)) => {
                self.notes.add(d, &format!("commented out: {why}"));
                State::Disabled(why.clone())
            }
            (None, None) => State::Active,
        };
        for (nd, why) in &a.notes {
            self.notes.add(nd, why);
        }
        match (upstream, &closed) {
            (Some(name), _) => self.route(at, scope, a, name, state),
            (None, None) => {
                let why = format!("commented out: {}", blocker.unwrap_or_default());
                self.routes.skip(d, &why);
            }
            (None, Some(_)) => {}
        }
        if let Some(acc) = &closed {
            self.close(at, acc);
        }
    }

    /// Adds the route (one per host) of a location that proxies to `upstream`.
    fn route(
        &mut self,
        at: &Place<'_>,
        scope: &Scope<'a>,
        a: &Analysis<'a>,
        upstream: String,
        state: State,
    ) {
        if let Some((t, cd)) = &scope.connect_timeout {
            self.upstreams.connect_timeout(&upstream, t, cd);
        }
        let read = scope.read_timeout.as_ref().map(|t| t.0.clone());
        let stream = a.streams.then(|| StreamOut {
            idle_timeout: read.clone(),
            sse_headers: a.sse,
        });
        for host in &at.hosts {
            let up = Some(upstream.clone());
            let mut r = RouteOut::new(at.d, at.path, host.clone(), up, at.srv, state.clone());
            // A stream route's header wait is its idle timeout, as nginx's read timeout.
            r.read_timeout = if stream.is_some() { None } else { read.clone() };
            r.stream = stream.clone();
            r.exact = at.exact;
            self.routes.add(r, &mut self.notes);
        }
    }

    /// Routes the location's path to the fail-closed upstream, for each host.
    fn close(&mut self, at: &Place<'_>, acc: &str) {
        let fail = self.upstreams.fail_closed();
        let why = format!("fail closed: {acc} is not translated, so this path answers 502");
        for host in &at.hosts {
            let state = State::Closing(why.clone());
            let r = RouteOut::new(
                at.d,
                at.path,
                host.clone(),
                Some(fail.clone()),
                at.srv,
                state,
            );
            self.routes.add(r, &mut self.notes);
        }
    }

    /// `file` relative to the main file's directory, for messages.
    fn rel(&self, file: &Path) -> String {
        file.strip_prefix(&self.base)
            .unwrap_or(file)
            .display()
            .to_string()
    }

    fn finish(mut self, tree: &[Directive]) -> Result<Plan, NginxError> {
        let (listeners, index) = listen::merge(&self.reqs, &mut self.notes);
        let routes = std::mem::take(&mut self.routes).into_vec();
        self.server_notes(&listeners, &index, &routes);
        let admin = listen::admin(&listeners, &mut self.notes);
        let header_timeout = self.header_timeout();
        self.upstreams.finish(&mut self.notes);
        let mut files: Vec<Rc<Path>> = Vec::new();
        file_order(tree, &mut files);
        let mut notes = self.notes.list;
        notes.sort_by_key(|n| (files.iter().position(|f| **f == *n.file), n.line));
        if listeners.is_empty() {
            let message = "no listener could be translated".to_string();
            return Err(NginxError::Untranslatable { message, notes });
        }
        if !routes
            .iter()
            .any(|r| matches!(r.state, State::Active | State::Closing(_)))
        {
            let message = "no location could be translated into a route".to_string();
            return Err(NginxError::Untranslatable { message, notes });
        }
        Ok(Plan {
            listeners,
            admin,
            upstreams: self.upstreams.list,
            routes,
            header_timeout,
            notes,
        })
    }
}

impl Cx<'_> {
    /// ssegate has one `header_timeout`: the longest of nginx's, so that no client nginx
    /// waited for is cut sooner; a note when servers set different ones.
    fn header_timeout(&mut self) -> Option<HeaderTimeout> {
        let longest = self
            .header_timeouts
            .iter()
            .max_by_key(|t| t.value.value)
            .cloned()?;
        for t in &self.header_timeouts {
            if t.value.value != longest.value.value {
                let (file, line) = &t.origin;
                self.notes.push(
                    file,
                    *line,
                    format!(
                        "client_header_timeout {}: ssegate has one header_timeout for all servers; it takes the longest, {}",
                        t.value.text, longest.value.text
                    ),
                );
            }
        }
        Some(longest)
    }
}

/// Files in the order their directives come (includes where they are included).
fn file_order(dirs: &[Directive], out: &mut Vec<Rc<Path>>) {
    for d in dirs {
        if !out.iter().any(|f| Rc::ptr_eq(f, &d.file) || **f == *d.file) {
            out.push(Rc::clone(&d.file));
        }
        file_order(d.children(), out);
    }
}
