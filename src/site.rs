//! The live state of the proxy: one [`Site`] per loaded config (routes, upstream pools,
//! per-route metrics and limits) behind [`Shared`], which swaps in a new site on reload
//! while requests that started on the old one finish with it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use pingora::connectors::http::Connector;

use crate::h1::pool::IdlePool;

use crate::config::{Config, Route};
use crate::limits::RouteLimits;
use crate::metrics::{Metrics, RouteMetrics};
use crate::sse::Framing;
use crate::streams::{Registry, TrackedStream};
use crate::upstream::{Pool, Upstreams};

/// Per-route live state, parallel to the config's routes.
pub struct RouteState {
    /// The route's metric handles.
    pub metrics: Arc<RouteMetrics>,
    /// The route's stream limits.
    pub limits: Arc<RouteLimits>,
}

/// Everything built from one config.
pub struct Site {
    /// The config it was built from.
    pub config: Arc<Config>,
    /// Upstream pools, by config index.
    pub upstreams: Upstreams,
    routes: Vec<RouteState>,
}

impl Site {
    /// Builds the site of `config`, keeping live counts of what `previous` shares with it.
    pub fn build(config: Config, metrics: &Metrics, previous: Option<&Site>) -> Self {
        let upstreams = Upstreams::new(&config.upstreams, previous.map(|p| &p.upstreams));
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let carried = previous.and_then(|p| {
                    p.config
                        .routes
                        .iter()
                        .zip(&p.routes)
                        .find(|(old, st)| {
                            old.host == r.host
                                && old.path == r.path
                                && st
                                    .limits
                                    .same_limits(r.max_streams, r.max_streams_per_client)
                        })
                        .map(|(_, st)| st.limits.clone())
                });
                RouteState {
                    metrics: Arc::new(metrics.route(&r.name)),
                    limits: carried.unwrap_or_else(|| {
                        RouteLimits::new(r.max_streams, r.max_streams_per_client)
                    }),
                }
            })
            .collect();
        Site {
            config: Arc::new(config),
            upstreams,
            routes,
        }
    }

    /// The index of the route serving `host` and `path`.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<usize> {
        self.config.routes.find_index(host, path)
    }

    /// A route and its live state.
    pub fn route(&self, index: usize) -> Option<(&Route, &RouteState)> {
        Some((self.config.routes.get(index)?, self.routes.get(index)?))
    }

    /// The pool of a route.
    pub fn pool(&self, route: &Route) -> Option<&Arc<Pool>> {
        self.upstreams.get(route.upstream)
    }

    /// A route, its live state and its upstream's pool.
    pub fn served(&self, index: usize) -> Option<(&Route, &RouteState, &Arc<Pool>)> {
        let (route, state) = self.route(index)?;
        Some((route, state, self.pool(route)?))
    }
}

/// State shared by every request and by the admin listener.
pub struct Shared {
    site: RwLock<Arc<Site>>,
    /// All metrics.
    pub metrics: Arc<Metrics>,
    /// Open streams.
    pub streams: Arc<Registry>,
    /// Idle upstream connections for the relay (the pipeline has its own).
    pub idle: IdlePool,
    /// Pingora's HTTP client, for upstream checks and keep-warm pings.
    pub connector: Connector,
    in_flight: Arc<AtomicUsize>,
}

impl Shared {
    /// Shared state serving `config`.
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Self {
        let site = Site::build(config, &metrics, None);
        Shared {
            site: RwLock::new(Arc::new(site)),
            metrics,
            streams: Arc::new(Registry::new()),
            idle: IdlePool::new(crate::proxy::UPSTREAM_POOL_IDLE),
            connector: Connector::new(None),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The current site.
    pub fn site(&self) -> Arc<Site> {
        match self.site.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Serves `config` from now on; requests already running keep the site they started on.
    pub fn replace(&self, config: Config) -> Arc<Site> {
        let old = self.site();
        let new = Arc::new(Site::build(config, &self.metrics, Some(&old)));
        match self.site.write() {
            Ok(mut s) => *s = new.clone(),
            Err(p) => *p.into_inner() = new.clone(),
        }
        new
    }

    /// Counts a request in flight until the guard drops.
    pub fn enter(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.in_flight.clone())
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A counter that a shutdown watcher can poll after the server is gone.
    pub fn in_flight_counter(&self) -> Arc<AtomicUsize> {
        self.in_flight.clone()
    }

    /// Starts tracking a stream on a route.
    pub fn track(
        &self,
        framing: Framing,
        started: std::time::Instant,
        route: &RouteState,
        client: IpAddr,
        upstream: String,
    ) -> TrackedStream {
        TrackedStream::start(
            framing,
            started,
            route.metrics.clone(),
            self.streams.clone(),
            client,
            upstream,
        )
    }
}

/// One request in flight.
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
