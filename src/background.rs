//! Periodic work on upstream servers, as one Pingora background service: resolving host
//! names again, health checks and keep-warm requests.
//!
//! Jobs are read from the current site on every tick, so a reload adds, changes and drops
//! them without a restart. Each job runs in its own task and never overlaps itself, so a
//! model that takes two minutes to answer a keep-warm delays nothing else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::client::{exchange, Request};
use crate::config::Upstream as UpstreamConfig;
use crate::site::Shared;
use crate::upstream::Server;

/// How often the job list is looked at.
const TICK: Duration = Duration::from_millis(100);
/// How often upstream host names are resolved again (containers get new addresses).
const RESOLVE_EVERY: Duration = Duration::from_secs(30);
/// Longest wait for a health check answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The kinds of periodic job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Health,
    KeepWarm,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct JobKey {
    kind: Kind,
    upstream: String,
    server: String,
}

/// Schedule and live state of one job.
struct Job {
    next: Instant,
    running: Arc<AtomicBool>,
    /// Whether the last run failed; failures are logged once per change, not every time.
    failing: Arc<AtomicBool>,
}

/// The background service.
pub struct Background {
    shared: Arc<Shared>,
}

impl Background {
    /// Periodic jobs over the shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Background { shared }
    }

    /// Starts every job that is due, and forgets jobs the config no longer has.
    fn run_due(&self, jobs: &mut HashMap<JobKey, Job>, now: Instant) {
        let site = self.shared.site();
        let mut seen = Vec::new();
        for (cfg, pool) in site.config.upstreams.iter().zip(site.upstreams.iter()) {
            for server in pool.servers() {
                self.shared
                    .metrics
                    .upstream_healthy
                    .with_label_values(&[&cfg.name, &server.label])
                    .set(i64::from(server.is_healthy()));
                let kinds = [
                    cfg.health_check
                        .as_ref()
                        .map(|h| (Kind::Health, h.interval)),
                    cfg.keep_warm.as_ref().map(|k| (Kind::KeepWarm, k.interval)),
                ];
                for (kind, every) in kinds.into_iter().flatten() {
                    let key = JobKey {
                        kind,
                        upstream: cfg.name.clone(),
                        server: server.label.clone(),
                    };
                    seen.push(key.clone());
                    let job = jobs.entry(key).or_insert_with(|| Job {
                        next: now,
                        running: Arc::new(AtomicBool::new(false)),
                        failing: Arc::new(AtomicBool::new(false)),
                    });
                    if now >= job.next && !job.running.swap(true, Ordering::AcqRel) {
                        job.next = now + every;
                        self.spawn(kind, cfg.clone(), server.clone(), job, every);
                    }
                }
            }
        }
        jobs.retain(|k, _| seen.contains(k));
    }

    fn spawn(
        &self,
        kind: Kind,
        cfg: UpstreamConfig,
        server: Arc<Server>,
        job: &Job,
        every: Duration,
    ) {
        let shared = self.shared.clone();
        let (running, failing) = (job.running.clone(), job.failing.clone());
        tokio::spawn(async move {
            match kind {
                Kind::Health => health_check(&shared, &cfg, &server, &failing).await,
                Kind::KeepWarm => keep_warm(&shared, &cfg, &server, &failing, every).await,
            }
            running.store(false, Ordering::Release);
        });
    }
}

/// Logs a job's result when it differs from the last one.
fn log_change(failing: &AtomicBool, result: &Result<String, String>, what: &str) {
    let now_failing = result.is_err();
    if failing.swap(now_failing, Ordering::Relaxed) != now_failing {
        match result {
            Err(e) => log::warn!("{what} failing: {e}"),
            Ok(ok) => log::info!("{what} ok again: {ok}"),
        }
    }
}

async fn health_check(
    shared: &Shared,
    cfg: &UpstreamConfig,
    server: &Server,
    failing: &AtomicBool,
) {
    let Some(hc) = &cfg.health_check else { return };
    let result = match server.addr_or_resolve().await {
        Err(e) => Err(format!("resolving: {e}")),
        Ok(addr) => {
            let req = Request {
                method: "GET",
                path: &hc.path,
                host: &server.label,
                body: None,
            };
            let timeout = hc.interval.min(HEALTH_TIMEOUT);
            match exchange(&shared.connector, addr, &req, cfg.connect_timeout, timeout).await {
                Ok(a) if (200..400).contains(&a.status) => Ok(format!("status {}", a.status)),
                Ok(a) => Err(format!("status {}", a.status)),
                Err(e) => Err(e),
            }
        }
    };
    let healthy = result.is_ok();
    if server.set_healthy(healthy) {
        let state = if healthy {
            "healthy: new requests go to it again"
        } else {
            "unhealthy: no new requests until it passes"
        };
        log::warn!("upstream {} server {} is {state}", cfg.name, server.label);
    }
    log_change(
        failing,
        &result,
        &format!("health check of {} {}{}", cfg.name, server.label, hc.path),
    );
    shared
        .metrics
        .upstream_healthy
        .with_label_values(&[&cfg.name, &server.label])
        .set(i64::from(healthy));
}

async fn keep_warm(
    shared: &Shared,
    cfg: &UpstreamConfig,
    server: &Server,
    failing: &AtomicBool,
    every: Duration,
) {
    let Some(kw) = &cfg.keep_warm else { return };
    let labels = [cfg.name.as_str(), server.label.as_str()];
    let result = match server.addr_or_resolve().await {
        Err(e) => Err(format!("resolving: {e}")),
        Ok(addr) => {
            let req = Request {
                method: &kw.method,
                path: &kw.path,
                host: &server.label,
                body: kw.body.as_deref(),
            };
            // A cold model may take minutes to answer; the next keep-warm is the limit.
            match exchange(&shared.connector, addr, &req, cfg.connect_timeout, every).await {
                Ok(a) => {
                    shared
                        .metrics
                        .keep_warm_seconds
                        .with_label_values(&labels)
                        .set(a.elapsed.as_secs_f64());
                    if (200..300).contains(&a.status) {
                        Ok(format!("status {} in {:?}", a.status, a.elapsed))
                    } else {
                        Err(format!("status {}", a.status))
                    }
                }
                Err(e) => Err(e),
            }
        }
    };
    if result.is_err() {
        shared
            .metrics
            .keep_warm_failures
            .with_label_values(&labels)
            .inc();
    }
    log_change(
        failing,
        &result,
        &format!("keep-warm of {} {}{}", cfg.name, server.label, kw.path),
    );
}

#[async_trait]
impl BackgroundService for Background {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut jobs = HashMap::new();
        let mut next_resolve = Instant::now();
        let unresolved: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        loop {
            let now = Instant::now();
            if now >= next_resolve {
                next_resolve = now + RESOLVE_EVERY;
                // In its own task: a slow DNS server must not hold up health checks.
                let (site, unresolved) = (self.shared.site(), unresolved.clone());
                tokio::spawn(async move {
                    let failed = site.upstreams.resolve_all().await;
                    let Ok(mut known) = unresolved.lock() else {
                        return;
                    };
                    for (name, e) in &failed {
                        if !known.contains(name) {
                            log::warn!("cannot resolve upstream server {name}: {e}");
                        }
                    }
                    *known = failed.into_iter().map(|(n, _)| n).collect();
                });
            }
            self.run_due(&mut jobs, now);
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }
}
