//! The route table: which route a request belongs to, matched like nginx
//! `location /prefix` (longest prefix wins) with `host:` routes first.

use std::time::Duration;

/// One resolved route of the config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `name:` or else the path: the `route` label of the metrics.
    pub name: String,
    /// Host the route is limited to: lowercased, without port; IPv6 in brackets.
    pub host: Option<String>,
    /// Path prefix, starting with `/`.
    pub path: String,
    /// Index into `Config::upstreams`.
    pub upstream: usize,
    /// Name of that upstream, for logs and messages.
    pub upstream_name: String,
    /// Upstream read timeout (default 60s); stream routes use `idle_timeout` once streaming.
    pub read_timeout: Duration,
    /// Whether `read_timeout` was written in the file rather than defaulted.
    pub read_timeout_set: bool,
    /// Present when the route is a stream route (`stream:` in the file).
    pub stream: Option<StreamSettings>,
    /// Open streams allowed on this route; past it 429.
    pub max_streams: Option<u32>,
    /// Open streams allowed per client address on this route; past it 429.
    pub max_streams_per_client: Option<u32>,
}

/// Settings of a stream route (`stream:` block).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSettings {
    /// Longest upstream silence before the stream is cut (default 600s).
    pub idle_timeout: Duration,
    /// Send a `: keep-alive` comment after this much silence; `None` = off.
    pub heartbeat: Option<Duration>,
    /// Set the SSE response headers (default true).
    pub sse_headers: bool,
    /// Answer 200 + SSE headers before the upstream answers (default false).
    pub early_headers: bool,
}

/// Routes in match order, with the lookup the proxy runs for every request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteTable {
    /// Host routes first, then hostless; each group by descending path length,
    /// so the first route that matches is the one nginx would pick.
    routes: Vec<Route>,
}

impl RouteTable {
    /// Builds the table, putting the routes in match order (stable for ties).
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by_key(|r| (r.host.is_none(), std::cmp::Reverse(r.path.len())));
        RouteTable { routes }
    }

    /// The route for a request: `host` is the Host header (any case, port allowed).
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        self.find_index(host, path).and_then(|i| self.routes.get(i))
    }

    /// Like [`RouteTable::find`], but gives the route's index (for [`RouteTable::get`]).
    pub fn find_index(&self, host: Option<&str>, path: &str) -> Option<usize> {
        let host = host.map(normalize_host).filter(|h| !h.is_empty());
        self.routes.iter().position(|r| {
            let host_ok = match (&r.host, host) {
                (None, _) => true,
                (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                (Some(_), None) => false,
            };
            host_ok && path.as_bytes().starts_with(r.path.as_bytes())
        })
    }

    /// The routes in match order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route at `idx` in match order.
    pub fn get(&self, idx: usize) -> Option<&Route> {
        self.routes.get(idx)
    }
}

/// Strips the port and a trailing dot from a Host header value, without
/// allocating; an IPv6 literal keeps its brackets (`[::1]:8080` → `[::1]`).
pub fn normalize_host(host: &str) -> &str {
    let host = host.trim();
    let host = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => host.get(..=end).unwrap_or(host),
            None => host,
        }
    } else {
        match host.split_once(':') {
            // More than one colon without brackets is no host:port; leave it whole.
            Some((name, port)) if !port.contains(':') => name,
            _ => host,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, path: &str, name: &str) -> Route {
        Route {
            name: name.to_string(),
            host: host.map(str::to_string),
            path: path.to_string(),
            upstream: 0,
            upstream_name: "backend".to_string(),
            read_timeout: Duration::from_secs(60),
            read_timeout_set: false,
            stream: None,
            max_streams: None,
            max_streams_per_client: None,
        }
    }

    fn name<'a>(t: &'a RouteTable, host: Option<&str>, path: &str) -> Option<&'a str> {
        t.find(host, path).map(|r| r.name.as_str())
    }

    fn usual() -> RouteTable {
        RouteTable::new(vec![
            route(None, "/", "root"),
            route(None, "/api/", "api"),
            route(None, "/api/chat/stream/", "stream"),
        ])
    }

    #[test]
    fn longest_prefix_wins_whatever_the_file_order() {
        let t = usual();
        assert_eq!(name(&t, None, "/api/chat/stream/42"), Some("stream"));
        assert_eq!(name(&t, None, "/api/chat/"), Some("api"));
        assert_eq!(name(&t, None, "/api/"), Some("api"));
        // nginx prefix match is plain bytes: `/api` is not under `/api/`.
        assert_eq!(name(&t, None, "/api"), Some("root"));
        assert_eq!(
            name(&t, Some("example.com"), "/api/chat/stream/"),
            Some("stream")
        );
    }

    #[test]
    fn slash_catches_all() {
        let t = usual();
        assert_eq!(name(&t, None, "/"), Some("root"));
        assert_eq!(name(&t, None, "/favicon.ico"), Some("root"));
        assert_eq!(name(&t, Some("any.host"), "/x/y/z"), Some("root"));
    }

    #[test]
    fn no_match_is_none() {
        let t = RouteTable::new(vec![route(None, "/api/", "api")]);
        assert_eq!(name(&t, None, "/"), None);
        assert_eq!(name(&t, None, "/apix"), None);
        assert_eq!(name(&t, None, ""), None);
        assert!(RouteTable::new(vec![]).find(None, "/").is_none());
        let hosted = RouteTable::new(vec![route(Some("a.test"), "/", "a")]);
        assert_eq!(name(&hosted, Some("b.test"), "/"), None);
        assert_eq!(name(&hosted, None, "/"), None);
    }

    #[test]
    fn host_routes_beat_hostless_even_with_shorter_prefix() {
        let t = RouteTable::new(vec![
            route(None, "/api/chat/", "plain-chat"),
            route(Some("chat.example.com"), "/", "chat-root"),
            route(Some("chat.example.com"), "/api/", "chat-api"),
        ]);
        assert_eq!(
            name(&t, Some("chat.example.com"), "/api/chat/x"),
            Some("chat-api")
        );
        assert_eq!(
            name(&t, Some("chat.example.com"), "/other"),
            Some("chat-root")
        );
        assert_eq!(
            name(&t, Some("other.example.com"), "/api/chat/x"),
            Some("plain-chat")
        );
        assert_eq!(name(&t, None, "/api/chat/x"), Some("plain-chat"));
    }

    #[test]
    fn host_without_a_matching_prefix_falls_back_to_hostless() {
        let t = RouteTable::new(vec![
            route(Some("a.test"), "/admin/", "a-admin"),
            route(None, "/", "root"),
        ]);
        assert_eq!(name(&t, Some("a.test"), "/admin/x"), Some("a-admin"));
        assert_eq!(name(&t, Some("a.test"), "/public"), Some("root"));
    }

    #[test]
    fn host_with_port_case_and_trailing_dot() {
        let t = RouteTable::new(vec![
            route(Some("chat.example.com"), "/", "chat"),
            route(None, "/", "root"),
        ]);
        for host in [
            "chat.example.com",
            "CHAT.Example.Com",
            "chat.example.com:8443",
            "Chat.Example.Com:80",
            "chat.example.com.",
            "chat.example.com.:8080",
        ] {
            assert_eq!(name(&t, Some(host), "/x"), Some("chat"), "{host}");
        }
        assert_eq!(name(&t, Some("chat.example.co"), "/x"), Some("root"));
        assert_eq!(name(&t, Some(""), "/x"), Some("root"));
    }

    #[test]
    fn ipv6_literal_hosts() {
        let t = RouteTable::new(vec![
            route(Some("[::1]"), "/", "v6"),
            route(None, "/", "root"),
        ]);
        assert_eq!(name(&t, Some("[::1]:8080"), "/"), Some("v6"));
        assert_eq!(name(&t, Some("[::1]"), "/"), Some("v6"));
        assert_eq!(name(&t, Some("[::2]:8080"), "/"), Some("root"));
        assert_eq!(normalize_host("[fe80::1]:443"), "[fe80::1]");
        assert_eq!(normalize_host("::1"), "::1");
        assert_eq!(normalize_host("[::1"), "[::1");
    }

    #[test]
    fn same_path_different_hosts() {
        let t = RouteTable::new(vec![
            route(Some("a.test"), "/api/", "a"),
            route(Some("b.test"), "/api/", "b"),
            route(None, "/api/", "none"),
        ]);
        assert_eq!(name(&t, Some("a.test"), "/api/x"), Some("a"));
        assert_eq!(name(&t, Some("b.test:8080"), "/api/x"), Some("b"));
        assert_eq!(name(&t, Some("c.test"), "/api/x"), Some("none"));
    }

    #[test]
    fn match_order_and_accessors() {
        let t = RouteTable::new(vec![
            route(None, "/", "root"),
            route(None, "/api/", "api"),
            route(Some("a.test"), "/", "a-root"),
            route(Some("a.test"), "/long/path/", "a-long"),
            route(None, "/api/chat/stream/", "stream"),
        ]);
        let order: Vec<&str> = t.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(order, ["a-long", "a-root", "stream", "api", "root"]);
        assert_eq!(t.len(), 5);
        assert!(!t.is_empty());
        assert!(RouteTable::new(vec![]).is_empty());
        let idx = t.find_index(Some("a.test"), "/x");
        assert_eq!(idx, Some(1));
        assert_eq!(t.get(1).map(|r| r.name.as_str()), Some("a-root"));
        assert!(t.get(5).is_none());
    }
}
