//! `max_streams` and `max_streams_per_client`: slots taken when a request arrives on a route
//! and given back when it ends.
//!
//! The per-client map only holds clients with a request in flight, so it never grows past
//! the number of open requests, whatever clients send.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The route has `max_streams` requests in flight.
    MaxStreams,
    /// This client has `max_streams_per_client` requests in flight on the route.
    PerClient,
}

impl Rejection {
    /// The `reason` label of `ssegate_rejected_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::MaxStreams => "max_streams",
            Rejection::PerClient => "max_streams_per_client",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: u32,
    per_client: HashMap<IpAddr, u32>,
}

/// The limits of one route and what is in flight on it.
#[derive(Debug)]
pub struct RouteLimits {
    max_streams: Option<u32>,
    max_per_client: Option<u32>,
    counts: Mutex<Counts>,
}

impl RouteLimits {
    /// Limits as configured; `None` is unlimited.
    pub fn new(max_streams: Option<u32>, max_per_client: Option<u32>) -> Arc<Self> {
        Arc::new(RouteLimits {
            max_streams,
            max_per_client,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Whether these limits are the ones configured (reloads keep the counting object then).
    pub fn same_limits(&self, max_streams: Option<u32>, max_per_client: Option<u32>) -> bool {
        self.max_streams == max_streams && self.max_per_client == max_per_client
    }

    /// Takes a slot for `client`, or says which limit refuses it.
    pub fn acquire(self: &Arc<Self>, client: IpAddr) -> Result<Slot, Rejection> {
        if self.max_streams.is_none() && self.max_per_client.is_none() {
            return Ok(Slot {
                limits: None,
                client,
            });
        }
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if self.max_streams.is_some_and(|m| c.total >= m) {
            return Err(Rejection::MaxStreams);
        }
        let mine = c.per_client.get(&client).copied().unwrap_or(0);
        if self.max_per_client.is_some_and(|m| mine >= m) {
            return Err(Rejection::PerClient);
        }
        c.total += 1;
        c.per_client.insert(client, mine + 1);
        Ok(Slot {
            limits: Some(self.clone()),
            client,
        })
    }

    /// Requests in flight on the route (counted only when a limit is set).
    pub fn in_flight(&self) -> u32 {
        self.counts.lock().map(|c| c.total).unwrap_or(0)
    }

    /// Clients with a request in flight (counted only when a limit is set).
    pub fn clients(&self) -> usize {
        self.counts.lock().map(|c| c.per_client.len()).unwrap_or(0)
    }
}

/// A slot held by one request; given back on drop.
#[derive(Debug)]
pub struct Slot {
    limits: Option<Arc<RouteLimits>>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(limits) = &self.limits else { return };
        let mut c = limits.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                c.per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn route_limit_refuses_then_frees() {
        let l = RouteLimits::new(Some(2), None);
        let a = l.acquire(ip(1)).unwrap();
        let _b = l.acquire(ip(2)).unwrap();
        assert_eq!(l.acquire(ip(3)).unwrap_err(), Rejection::MaxStreams);
        drop(a);
        assert!(l.acquire(ip(3)).is_ok());
    }

    #[test]
    fn per_client_limit_counts_each_client() {
        let l = RouteLimits::new(None, Some(1));
        let a = l.acquire(ip(1)).unwrap();
        assert_eq!(l.acquire(ip(1)).unwrap_err(), Rejection::PerClient);
        let _b = l.acquire(ip(2)).unwrap();
        drop(a);
        assert!(l.acquire(ip(1)).is_ok());
    }

    #[test]
    fn map_shrinks_back_to_empty() {
        let l = RouteLimits::new(Some(1000), Some(5));
        let slots: Vec<_> = (0..200).map(|i| l.acquire(ip(i as u8)).unwrap()).collect();
        assert_eq!(l.clients(), 200);
        drop(slots);
        assert_eq!(l.clients(), 0);
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn unlimited_takes_no_lock_state() {
        let l = RouteLimits::new(None, None);
        let _s = l.acquire(ip(1)).unwrap();
        assert_eq!(l.in_flight(), 0);
    }
}
