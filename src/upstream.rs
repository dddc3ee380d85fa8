//! Upstream pools: which server gets the next request, and how many each one is serving.
//!
//! Pingora's load balancer has no least-connections selection, and LLM streams are long, so
//! round robin piles them up on one server. Each server keeps its own count of requests in
//! flight; a [`Lease`] holds one unit of it for as long as a request uses the server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::{Balance, Upstream as UpstreamConfig};

/// One server of an upstream: its address and live state.
#[derive(Debug)]
pub struct Server {
    /// `host:port` as written in the config; the metrics label.
    pub label: String,
    addr: RwLock<Option<SocketAddr>>,
    active: AtomicUsize,
    healthy: AtomicBool,
}

impl Server {
    /// A server that is healthy and idle; IP literals are resolved at once, names later.
    pub fn new(label: &str) -> Self {
        Server {
            label: label.to_string(),
            addr: RwLock::new(label.parse().ok()),
            active: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
        }
    }

    /// The last resolved address, if any.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr.read().ok().and_then(|a| *a)
    }

    /// Resolves the name again (without blocking a worker thread) and keeps the first address.
    pub async fn resolve(&self) -> std::io::Result<SocketAddr> {
        if let Ok(ip) = self.label.parse::<SocketAddr>() {
            return Ok(ip);
        }
        let found = tokio::net::lookup_host(self.label.as_str())
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{} has no address", self.label)))?;
        if let Ok(mut slot) = self.addr.write() {
            *slot = Some(found);
        }
        Ok(found)
    }

    /// After a failed connect: looks the name up again in the background, so a container
    /// that came back with a new address is found by the next request, not 30 s later.
    pub fn refresh_after_failure(self: &Arc<Self>) {
        if self.label.parse::<SocketAddr>().is_ok() {
            return;
        }
        let server = self.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = server.resolve().await {
                    log::debug!("resolving {} again: {e}", server.label);
                }
            });
        }
    }

    /// The address, resolving it now if it was never resolved.
    pub async fn addr_or_resolve(&self) -> std::io::Result<SocketAddr> {
        match self.addr() {
            Some(a) => Ok(a),
            None => self.resolve().await,
        }
    }

    /// Requests in flight on this server.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Whether the last health check passed (true when none is configured).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records a health check result; returns whether the state changed.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Ordering::Relaxed) != healthy
    }
}

/// A share of a server held by one request; releases it when dropped.
#[derive(Debug)]
pub struct Lease {
    server: Arc<Server>,
    index: usize,
}

impl Lease {
    fn new(server: Arc<Server>, index: usize) -> Self {
        server.active.fetch_add(1, Ordering::Relaxed);
        Lease { server, index }
    }

    /// The leased server.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Its position in the upstream's server list.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.server.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An upstream of the config with its servers' live state.
#[derive(Debug)]
pub struct Pool {
    /// The upstream's name in the config.
    pub name: String,
    /// Connect timeout for each attempt.
    pub connect_timeout: Duration,
    balance: Balance,
    servers: Vec<Arc<Server>>,
    next: AtomicUsize,
}

impl Pool {
    /// Builds the pool, taking over the live state of servers that `previous` already had
    /// (so a reload keeps counts and health).
    pub fn new(cfg: &UpstreamConfig, previous: Option<&Pool>) -> Self {
        let servers = cfg
            .servers
            .iter()
            .map(|label| {
                previous
                    .and_then(|p| p.servers.iter().find(|s| &s.label == label))
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Server::new(label)))
            })
            .collect();
        Pool {
            name: cfg.name.clone(),
            connect_timeout: cfg.connect_timeout,
            balance: cfg.balance,
            servers,
            next: AtomicUsize::new(0),
        }
    }

    /// All servers, in config order.
    pub fn servers(&self) -> &[Arc<Server>] {
        &self.servers
    }

    /// Leases the best server not in `tried`, or `None` when every server was tried.
    pub fn pick(&self, tried: &[usize]) -> Option<Lease> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let all = self.servers.iter().enumerate().map(|(i, s)| Candidate {
            active: s.active(),
            healthy: s.is_healthy(),
            excluded: tried.contains(&i),
        });
        // An upstream has a few servers as a rule: their candidates fit on the stack, and
        // picking one allocates nothing (this runs for every request).
        let mut on_stack = [Candidate::default(); ON_STACK];
        let on_heap: Vec<Candidate>;
        let candidates = if self.servers.len() <= ON_STACK {
            on_stack.iter_mut().zip(all).for_each(|(slot, c)| *slot = c);
            &on_stack[..self.servers.len()]
        } else {
            on_heap = all.collect();
            &on_heap[..]
        };
        let i = choose(candidates, self.balance, start)?;
        let server = self.servers.get(i)?;
        Some(Lease::new(server.clone(), i))
    }
}

/// Servers whose candidates [`Pool::pick`] lays out on the stack.
const ON_STACK: usize = 8;

/// What the picker knows of one server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Candidate {
    /// Requests in flight.
    pub active: usize,
    /// Passing its health check.
    pub healthy: bool,
    /// Already tried for this request.
    pub excluded: bool,
}

/// Picks a server index: healthy ones first, but when none is healthy all are eligible, so an
/// outage of the health checks does not turn into an outage of the site. `start` rotates ties.
pub fn choose(servers: &[Candidate], balance: Balance, start: usize) -> Option<usize> {
    let n = servers.len();
    if n == 0 {
        return None;
    }
    let any_healthy = servers.iter().any(|c| c.healthy && !c.excluded);
    let eligible = |c: &Candidate| !c.excluded && (c.healthy || !any_healthy);
    let rotated = (0..n).map(|k| (start + k) % n);
    match balance {
        Balance::RoundRobin => rotated.into_iter().find(|&i| eligible(&servers[i])),
        Balance::LeastStreams => rotated
            .filter(|&i| eligible(&servers[i]))
            .min_by_key(|&i| servers[i].active),
    }
}

/// All upstreams of one config, by config index.
#[derive(Debug, Default)]
pub struct Upstreams {
    pools: Vec<Arc<Pool>>,
}

impl Upstreams {
    /// Builds the pools of `cfgs`, carrying over server state from `previous` by name.
    pub fn new(cfgs: &[UpstreamConfig], previous: Option<&Upstreams>) -> Self {
        let pools = cfgs
            .iter()
            .map(|u| {
                let old = previous.and_then(|p| p.pools.iter().find(|o| o.name == u.name));
                Arc::new(Pool::new(u, old.map(|p| p.as_ref())))
            })
            .collect();
        Upstreams { pools }
    }

    /// The pool at a config index.
    pub fn get(&self, index: usize) -> Option<&Arc<Pool>> {
        self.pools.get(index)
    }

    /// All pools.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.pools.iter()
    }

    /// Resolves every server name once; returns the names that failed, with the reason.
    pub async fn resolve_all(&self) -> Vec<(String, std::io::Error)> {
        let mut failed = Vec::new();
        for pool in &self.pools {
            for s in pool.servers() {
                if let Err(e) = s.resolve().await {
                    failed.push((s.label.clone(), e));
                }
            }
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(active: usize, healthy: bool) -> Candidate {
        Candidate {
            active,
            healthy,
            excluded: false,
        }
    }

    #[test]
    fn least_streams_takes_the_idlest() {
        let s = [c(3, true), c(1, true), c(2, true)];
        assert_eq!(choose(&s, Balance::LeastStreams, 0), Some(1));
        assert_eq!(choose(&s, Balance::LeastStreams, 2), Some(1));
    }

    #[test]
    fn least_streams_rotates_ties() {
        let s = [c(0, true), c(0, true), c(0, true)];
        let picks: Vec<_> = (0..3)
            .map(|k| choose(&s, Balance::LeastStreams, k))
            .collect();
        assert_eq!(picks, vec![Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn round_robin_ignores_load() {
        let s = [c(9, true), c(0, true)];
        assert_eq!(choose(&s, Balance::RoundRobin, 0), Some(0));
        assert_eq!(choose(&s, Balance::RoundRobin, 1), Some(1));
    }

    #[test]
    fn unhealthy_skipped_unless_all_are() {
        let s = [c(0, false), c(5, true)];
        assert_eq!(choose(&s, Balance::LeastStreams, 0), Some(1));
        assert_eq!(choose(&s, Balance::RoundRobin, 0), Some(1));
        let all_down = [c(2, false), c(1, false)];
        assert_eq!(choose(&all_down, Balance::LeastStreams, 0), Some(1));
    }

    #[test]
    fn excluded_never_picked() {
        let mut s = [c(0, true), c(4, true)];
        s[0].excluded = true;
        assert_eq!(choose(&s, Balance::LeastStreams, 0), Some(1));
        s[1].excluded = true;
        assert_eq!(choose(&s, Balance::LeastStreams, 0), None);
        assert_eq!(choose(&[], Balance::RoundRobin, 0), None);
    }

    #[test]
    fn a_pool_larger_than_the_stack_layout_picks_the_same_way() {
        for n in [ON_STACK, ON_STACK + 3] {
            let cfg = UpstreamConfig {
                name: "many".into(),
                servers: (1..=n).map(|p| format!("127.0.0.1:{p}")).collect(),
                balance: Balance::LeastStreams,
                connect_timeout: Duration::from_secs(1),
                health_check: None,
                keep_warm: None,
            };
            let pool = Pool::new(&cfg, None);
            // Least streams: each lease goes to a server with none until all have one.
            let leases: Vec<Lease> = (0..n).map(|_| pool.pick(&[]).unwrap()).collect();
            assert!(
                pool.servers().iter().all(|s| s.active() == 1),
                "{n} servers"
            );
            // Every server but the last tried: the last is the only one left.
            let tried: Vec<usize> = (0..n - 1).collect();
            assert_eq!(pool.pick(&tried).unwrap().index(), n - 1);
            let all: Vec<usize> = (0..n).collect();
            assert!(pool.pick(&all).is_none());
            drop(leases);
        }
    }

    #[test]
    fn lease_counts_and_releases() {
        let cfg = UpstreamConfig {
            name: "b".into(),
            servers: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            balance: Balance::LeastStreams,
            connect_timeout: Duration::from_secs(1),
            health_check: None,
            keep_warm: None,
        };
        let pool = Pool::new(&cfg, None);
        let a = pool.pick(&[]).unwrap();
        let b = pool.pick(&[]).unwrap();
        assert_ne!(a.index(), b.index(), "second pick goes to the idle server");
        assert_eq!(pool.servers()[a.index()].active(), 1);
        drop(a);
        drop(b);
        assert!(pool.servers().iter().all(|s| s.active() == 0));
        let again = pool.pick(&[0]).unwrap();
        assert_eq!(again.index(), 1);
        let carried = Pool::new(&cfg, Some(&pool));
        assert_eq!(carried.servers()[1].active(), 1, "reload keeps live counts");
    }
}
