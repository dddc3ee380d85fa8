//! Assembles the Pingora server from a config (public listeners, admin listener, background
//! tasks) and runs it until a signal stops it.
//!
//! Signals: SIGHUP reloads the config file in place; SIGTERM and SIGINT stop accepting, let
//! requests in flight finish for up to `shutdown_grace`, and exit as soon as none is left
//! (Pingora alone would sleep out the whole grace period, and treats SIGINT as immediate).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::{L4BufferSettings, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use pingora::services::ServiceWithDependents;
use tokio::signal::unix::{signal, SignalKind};

use crate::admin::Admin;
use crate::background::Background;
use crate::config::{self, Config};
use crate::front::Front;
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::site::Shared;

/// A configured server, ready to run.
pub struct Gate {
    server: Server,
    shared: Arc<Shared>,
    source: Option<PathBuf>,
    grace: Duration,
}

impl Gate {
    /// Builds every service of `config`. `source` is the file SIGHUP reloads (none for the demo).
    pub fn new(config: Config, source: Option<PathBuf>) -> Result<Self, String> {
        // Before Pingora starts its threads: see `fds` for the wait this spares a burst.
        match crate::fds::reserve() {
            Ok(slots) => log::debug!("descriptor table sized for {slots} descriptors"),
            Err(e) => log::warn!("{e}; the table grows on demand"),
        }
        let conf = ServerConf {
            threads: config.threads,
            // Measured in bench/: without work stealing, plain requests got 12-18% more
            // requests per second for 5-15% less CPU each; a connection stays on its thread.
            work_stealing: false,
            grace_period_seconds: Some(config.shutdown_grace.as_secs()),
            graceful_shutdown_timeout_seconds: Some(1),
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(Some(Opt::default()), conf);
        server.bootstrap();
        let metrics = Arc::new(Metrics::new());
        let grace = config.shutdown_grace;
        let listeners = config.listeners.clone();
        let admin_addr = config.admin;
        let shared = Arc::new(Shared::new(config, metrics));

        let gateway =
            pingora_proxy::http_proxy(&server.configuration, Gateway::new(shared.clone()));
        let app = Front::new(gateway, shared.clone());
        let mut proxy = Service::new("ssegate".to_string(), app);
        for l in &listeners {
            let addr = l.addr.to_string();
            // Pingora reads each connection through a 64 KiB buffer of its own, allocated
            // up front, on top of the HTTP session's buffers. With thousands of mostly idle
            // streams that buffer is most of the memory, and it saves no syscall here.
            let mut endpoint = ListenerConfig::tcp(addr.clone())
                .l4_buffer(L4BufferSettings::new(0, DEFAULT_L4_WRITE_BUFFER_SIZE));
            if let Some(tls) = &l.tls {
                let (cert, key) = (tls.cert.to_string_lossy(), tls.key.to_string_lossy());
                let mut settings = TlsSettings::intermediate(&cert, &key)
                    .map_err(|e| format!("TLS for {addr}: {e}"))?;
                settings.enable_h2();
                endpoint = endpoint.tls(settings);
            }
            proxy.add_listener(endpoint);
        }
        server.add_service(proxy);

        let mut admin = Service::new("admin".to_string(), Admin::new(shared.clone()));
        admin.add_tcp(&admin_addr.to_string());
        admin.threads = Some(1);
        server.add_service(admin);

        let checks = Background::new(shared.clone());
        server.add_service(background_service("upstream checks", checks));
        Ok(Gate {
            server,
            shared,
            source,
            grace,
        })
    }

    /// The shared state (for services that run beside the proxy).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Adds another service to run in the same process (the demo's upstream).
    pub fn add_service(&mut self, service: impl ServiceWithDependents + 'static) {
        self.server.add_service(service);
    }

    /// Runs until SIGTERM or SIGINT, then exits the process.
    pub fn run(self) -> ! {
        let signals = Signals {
            shared: self.shared.clone(),
            source: self.source,
            in_flight: self.shared.in_flight_counter(),
            grace: self.grace,
        };
        self.server.run(RunArgs {
            shutdown_signal: Box::new(signals),
        });
        std::process::exit(0)
    }
}

/// Watches the process signals for the server's main loop.
struct Signals {
    shared: Arc<Shared>,
    source: Option<PathBuf>,
    in_flight: Arc<AtomicUsize>,
    grace: Duration,
}

impl Signals {
    fn reload(&self) {
        let Some(path) = &self.source else {
            log::warn!("SIGHUP: nothing to reload (no config file)");
            return;
        };
        match config::load(path) {
            Ok(new) => {
                let old = self.shared.site();
                if new.listeners.iter().map(|l| l.addr).ne(old
                    .config
                    .listeners
                    .iter()
                    .map(|l| l.addr))
                    || new.admin != old.config.admin
                    || new.threads != old.config.threads
                {
                    log::warn!(
                        "SIGHUP: listeners, admin and threads keep their old values until restart"
                    );
                }
                let site = self.shared.replace(new);
                log::info!(
                    "SIGHUP: reloaded {} ({} routes, {} upstreams)",
                    path.display(),
                    site.config.routes.len(),
                    site.config.upstreams.len()
                );
            }
            Err(e) => log::error!("SIGHUP: config refused, keeping the old one: {e}"),
        }
    }
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            log::error!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => self.reload(),
            }
        }
        log::info!(
            "shutting down: no new connections; {} requests in flight get up to {:?}",
            self.in_flight.load(Ordering::Relaxed),
            self.grace
        );
        exit_when_drained(self.in_flight.clone(), self.grace);
        ShutdownSignal::GracefulTerminate
    }
}

/// Exits the process once no request is in flight, or when the grace period ends.
fn exit_when_drained(in_flight: Arc<AtomicUsize>, grace: Duration) {
    let deadline = Instant::now() + grace;
    std::thread::spawn(move || {
        // Give the listeners a moment to stop before judging the count.
        std::thread::sleep(Duration::from_millis(100));
        while Instant::now() < deadline {
            if in_flight.load(Ordering::Relaxed) == 0 {
                log::info!("all requests finished; exiting");
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        log::warn!(
            "grace period over with {} requests in flight; exiting",
            in_flight.load(Ordering::Relaxed)
        );
        std::process::exit(0);
    });
}
