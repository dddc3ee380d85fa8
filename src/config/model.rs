//! The YAML file as serde sees it: exactly the contract's keys (plus
//! `shutdown_grace`, `header_timeout`), anything else refused. Scalars are checked inside their
//! deserializers so that serde_yaml reports a bad value at its own position.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::values;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of listen, admin, threads, trusted_proxies, upstreams, routes, shutdown_grace, header_timeout"
)]
pub struct FileModel {
    /// Public listeners.
    #[serde(default)]
    pub listen: Vec<ListenModel>,
    /// Admin endpoint.
    pub admin: Option<AdminModel>,
    /// Worker threads.
    pub threads: Option<AtLeastOne<usize>>,
    /// Peers whose X-Forwarded-For is trusted.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    /// Upstreams by name, in file order.
    #[serde(default)]
    pub upstreams: Named<UpstreamModel>,
    /// Routes in file order.
    #[serde(default)]
    pub routes: Vec<RouteModel>,
    /// Time open streams get after SIGTERM/SIGINT (our addition to the contract).
    pub shutdown_grace: Option<Dur>,
    /// Longest time a request head may take to arrive (our addition to the contract).
    pub header_timeout: Option<PosDur>,
}

/// One `listen:` entry.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a listener: a mapping with addr and optional tls"
)]
pub struct ListenModel {
    /// Address to bind.
    pub addr: Addr,
    /// TLS certificate and key files; `Some(None)` = written with no value.
    #[serde(default, deserialize_with = "explicit")]
    pub tls: Option<Option<TlsModel>>,
}

/// `tls: { cert, key }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with cert and key")]
pub struct TlsModel {
    /// Certificate chain PEM file.
    pub cert: String,
    /// Private key PEM file.
    pub key: String,
}

/// `admin: { addr }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with addr")]
pub struct AdminModel {
    /// Address of the admin endpoint.
    pub addr: Option<Addr>,
}

/// One upstream.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an upstream: a mapping with servers and optional balance, connect_timeout, health_check, keep_warm"
)]
pub struct UpstreamModel {
    /// `host:port` servers.
    #[serde(default)]
    pub servers: Vec<Server>,
    /// Load-balancing policy.
    pub balance: Option<BalanceModel>,
    /// TCP connect timeout.
    pub connect_timeout: Option<PosDur>,
    /// Active health check; `Some(None)` = written with no value.
    #[serde(default, deserialize_with = "explicit")]
    pub health_check: Option<Option<HealthModel>>,
    /// Periodic request that keeps a model loaded; `Some(None)` = written with no value.
    #[serde(default, deserialize_with = "explicit")]
    pub keep_warm: Option<Option<KeepWarmModel>>,
}

/// `balance:` values.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceModel {
    /// Fewest open streams first.
    LeastStreams,
    /// In turn.
    RoundRobin,
}

/// `health_check: { path, interval }`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with path and optional interval"
)]
pub struct HealthModel {
    /// Path requested.
    pub path: ReqPath,
    /// Time between checks.
    pub interval: Option<PosDur>,
}

/// `keep_warm: { method, path, body, interval }`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with path and optional method, body, interval"
)]
pub struct KeepWarmModel {
    /// HTTP method.
    pub method: Option<Method>,
    /// Path requested.
    pub path: ReqPath,
    /// Request body.
    pub body: Option<String>,
    /// Time between requests.
    pub interval: Option<PosDur>,
}

/// One route.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a route: a mapping with path, upstream and optional name, host, read_timeout, stream, max_streams, max_streams_per_client"
)]
pub struct RouteModel {
    /// Metrics label.
    pub name: Option<Label>,
    /// Host header to match.
    pub host: Option<Host>,
    /// Path prefix.
    pub path: RoutePath,
    /// Upstream name.
    pub upstream: String,
    /// Non-stream read timeout.
    pub read_timeout: Option<PosDur>,
    /// Present (even empty) = stream route.
    #[serde(default, deserialize_with = "present")]
    pub stream: Option<StreamModel>,
    /// Open streams allowed on the route.
    pub max_streams: Option<AtLeastOne<u32>>,
    /// Open streams allowed per client.
    pub max_streams_per_client: Option<AtLeastOne<u32>>,
}

/// `stream:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with idle_timeout, heartbeat, sse_headers, early_headers"
)]
pub struct StreamModel {
    /// Longest upstream silence.
    pub idle_timeout: Option<PosDur>,
    /// Heartbeat period.
    pub heartbeat: Option<PosDur>,
    /// Inject SSE headers.
    pub sse_headers: Option<bool>,
    /// Answer before the upstream does.
    pub early_headers: Option<bool>,
}

/// Tells `key:` with no value from an absent key, so that a block that
/// needs values (tls, health_check, keep_warm) is not silently dropped.
fn explicit<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(Option::<T>::deserialize(d)?))
}

/// `stream:` with no value still makes a stream route, with defaults.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

/// Declares a newtype read from a string scalar through a `values` parser;
/// the parser runs inside the visitor so errors carry the scalar's position.
macro_rules! scalar {
    ($(#[$doc:meta])* $name:ident($ty:ty) = $parse:path, $expecting:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name(pub $ty);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        $parse(v).map($name).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

scalar!(/// A duration, zero allowed.
    Dur(Duration) = values::duration, "a duration such as 250ms, 15s, 5m, 1h");
scalar!(/// A duration above zero.
    PosDur(Duration) = values::positive_duration, "a duration such as 250ms, 15s, 5m, 1h");
scalar!(/// A socket address.
    Addr(SocketAddr) = values::listen_addr, "an address such as 0.0.0.0:8080");
scalar!(/// An upstream server `host:port`.
    Server(String) = values::server, "a server such as 127.0.0.1:8000");
scalar!(/// A CIDR.
    Cidr(IpNet) = values::cidr, "a CIDR such as 10.0.0.0/8");
scalar!(/// A route path prefix.
    RoutePath(String) = values::route_path, "a path such as /api/");
scalar!(/// A request path.
    ReqPath(String) = values::request_path, "a path such as /healthz");
scalar!(/// A route host.
    Host(String) = values::host, "a host name such as chat.example.com");
scalar!(/// An HTTP method.
    Method(String) = values::method, "an HTTP method such as POST");
scalar!(/// A route name.
    Label(String) = values::label, "a name");

/// A positive integer (`threads`, `max_streams`…): zero would forbid everything.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AtLeastOne<T>(pub T);

impl<'de, T: TryFrom<u64>> Deserialize<'de> for AtLeastOne<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T: TryFrom<u64>> Visitor<'_> for V<T> {
            type Value = AtLeastOne<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number of at least 1")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                if v == 0 {
                    return Err(E::custom("0 is not allowed here: it must be at least 1"));
                }
                T::try_from(v)
                    .map(AtLeastOne)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "{v} is not allowed here: it must be at least 1"
                    ))),
                }
            }
        }
        // deserialize_u64 would refuse negatives before the visitor could explain.
        d.deserialize_any(V(PhantomData))
    }
}

/// A mapping that keeps file order (the upstreams), refusing empty and
/// duplicate names at the key's position.
#[derive(Debug)]
pub struct Named<V>(pub Vec<(String, V)>);

impl<V> Default for Named<V> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<'de, V: Deserialize<'de> + Default> Deserialize<'de> for Named<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapV<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de> + Default> Visitor<'de> for MapV<V> {
            type Value = Named<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of names to upstreams")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Named(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some(name) = map.next_key_seed(NameSeed(&mut seen))? {
                    // `name:` with no value is kept (as defaults) so that the
                    // "no servers" check can point at it.
                    let value: Option<V> = map.next_value()?;
                    out.push((name, value.unwrap_or_default()));
                }
                Ok(Named(out))
            }
        }
        d.deserialize_map(MapV(PhantomData))
    }
}

/// Reads one name of a [`Named`] map, refusing repeats.
struct NameSeed<'a>(&'a mut HashSet<String>);

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for NameSeed<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        let name = values::label(v).map_err(E::custom)?;
        if !self.0.insert(name.clone()) {
            return Err(E::custom(format!("`{name}` is defined twice")));
        }
        Ok(name)
    }
}
