//! ssegate's own lean HTTP/1.1, for plain HTTP/1.1 requests on any route.
//!
//! Pingora's general machinery parks about 60 KiB per open stream (its request pipeline's
//! futures, a 64 KiB upstream body buffer: bench/MEMORY.md). A relayed request needs far
//! less: read a head, relay a body, write chunks. These modules do just that, as plain
//! parsers ([`head`], whose header [`lines`] stay spans of the head, and [`body`]) under two small connection types ([`downstream`],
//! [`upstream`], whose idle connections wait in a [`pool`]) that read through one buffer per
//! thread ([`scratch`]), over a client connection that stays a plain socket while only the
//! lean path uses it ([`conn`]).

pub mod body;
pub mod conn;
pub mod downstream;
pub mod head;
pub mod lines;
pub mod pool;
pub mod scratch;
pub mod upstream;
