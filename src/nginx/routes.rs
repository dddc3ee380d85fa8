//! The routes of the output in file order, with one live route per host and
//! path: a copy (the same location served on another listener) is dropped,
//! and a clash keeps the route nginx would trust more (fail-closed over
//! open, prefix over exact, first over later), commenting out the other.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::parse::Directive;
use super::translate::Notes;
use super::values::Dur;

/// What a route entry becomes in the YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// A route.
    Active,
    /// A commented-out route, for this reason.
    Disabled(String),
    /// A route to the fail-closed upstream, for this reason.
    Closing(String),
    /// Only a comment: the location is not translated, for this reason.
    Skipped(String),
}

/// `stream:` settings of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOut {
    /// The location's proxy_read_timeout; `None` = not set in nginx (600s is written).
    pub idle_timeout: Option<Dur>,
    /// The location declared SSE; otherwise `sse_headers: false` is written.
    pub sse_headers: bool,
}

/// One route entry of the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOut {
    /// Path prefix.
    pub path: String,
    /// Host, or any.
    pub host: Option<String>,
    /// Upstream name (absent for comments only).
    pub upstream: Option<String>,
    /// `read_timeout` of a non-stream route.
    pub read_timeout: Option<Dur>,
    /// `stream:` block.
    pub stream: Option<StreamOut>,
    /// The location's file and line.
    pub origin: (Rc<Path>, usize),
    /// The location as written, e.g. `location /api/`.
    pub what: String,
    /// What it becomes.
    pub state: State,
    /// From `location =`.
    pub exact: bool,
    /// Index of its server block.
    pub server: usize,
    /// Servers whose identical copies of the route were merged into this one.
    pub copies: Vec<usize>,
}

impl RouteOut {
    /// A route for location `d` with no timeouts or stream settings yet.
    pub fn new(
        d: &Directive,
        path: &str,
        host: Option<String>,
        upstream: Option<String>,
        server: usize,
        state: State,
    ) -> Self {
        RouteOut {
            path: path.to_string(),
            host,
            upstream,
            read_timeout: None,
            stream: None,
            origin: (Rc::clone(&d.file), d.line),
            what: d.text(),
            state,
            exact: false,
            server,
            copies: Vec::new(),
        }
    }

    fn live(&self) -> bool {
        matches!(self.state, State::Active | State::Closing(_))
    }

    fn closing(&self) -> bool {
        matches!(self.state, State::Closing(_))
    }

    /// Whether `o` routes exactly like this one (reasons aside).
    fn same(&self, o: &RouteOut) -> bool {
        self.upstream == o.upstream
            && self.read_timeout == o.read_timeout
            && self.stream == o.stream
            && std::mem::discriminant(&self.state) == std::mem::discriminant(&o.state)
    }
}

/// The route entries so far.
#[derive(Debug, Default)]
pub struct Routes {
    base: PathBuf,
    list: Vec<RouteOut>,
}

impl Routes {
    /// An empty table; `base` makes positions in messages relative.
    pub fn new(base: &Path) -> Self {
        Routes {
            base: base.to_path_buf(),
            list: Vec::new(),
        }
    }

    /// Adds a comment for location `d`, which is not translated for `why`.
    pub fn skip(&mut self, d: &Directive, why: &str) {
        self.list.push(RouteOut::new(
            d,
            "",
            None,
            None,
            0,
            State::Skipped(why.to_string()),
        ));
    }

    /// Adds a route, settling a clash with a live route of the same host and path.
    pub fn add(&mut self, mut r: RouteOut, notes: &mut Notes) {
        let clash = self
            .list
            .iter()
            .position(|o| r.live() && o.live() && o.host == r.host && o.path == r.path);
        let Some(old) = clash.and_then(|i| self.list.get_mut(i)) else {
            self.list.push(r);
            return;
        };
        if old.same(&r) {
            old.copies.push(r.server);
            return;
        }
        let key = match &r.host {
            Some(h) => format!("host {h} path {}", r.path),
            None => format!("path {}", r.path),
        };
        let new_wins = !old.closing() && (r.closing() || (old.exact && !r.exact));
        let (loser, winner) = if new_wins { (old, &r) } else { (&mut r, &*old) };
        let why = format!(
            "{key} is already routed by {} ({}:{}); ssegate has one route per host and path",
            winner.what,
            winner
                .origin
                .0
                .strip_prefix(&self.base)
                .unwrap_or(&winner.origin.0)
                .display(),
            winner.origin.1
        );
        if loser.state == State::Active {
            notes.push(
                &loser.origin.0,
                loser.origin.1,
                format!("{}: commented out: {why}", loser.what),
            );
        }
        loser.state = State::Disabled(why);
        self.list.push(r);
    }

    /// The entries in file order.
    pub fn into_vec(self) -> Vec<RouteOut> {
        self.list
    }
}
