//! ssegate: an edge reverse proxy, built on Pingora, for web apps that stream LLM output to
//! browsers with Server-Sent Events.
//!
//! A request flows one way through the modules: [`front`] reads its head, [`routes`] picks
//! the route, [`upstream`] the server, [`proxy`] (Pingora's pipeline) or [`relay`] (stream
//! routes, over [`h1`]) carry the bytes,
//! [`headers`] sets what each side is told, and every stream is watched by [`observe`]
//! (through [`sse`] and [`dialect`]) on its way to [`metrics`] and [`streams`].

pub mod admin;
pub mod background;
pub mod client;
pub mod config;
pub mod demo;
pub mod dialect;
pub mod fds;
pub mod files;
pub mod front;
pub mod h1;
pub mod headers;
pub mod heartbeat;
pub mod limits;
pub mod metrics;
pub mod nginx;
pub mod observe;
pub mod probe;
pub mod proxy;
pub mod relay;
pub mod replay;
pub mod routes;
pub mod server;
pub mod site;
pub mod sse;
pub mod streams;
pub mod timer;
pub mod upstream;
