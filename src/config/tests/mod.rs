//! Tests of the config loader: every error kind with its position, defaults,
//! the contract's example and the shipped example file.

mod errors;
mod loading;
mod semantic;
mod tls;

use std::path::Path;

use super::{parse, Config, ConfigError};

/// A self-signed P-256 certificate for `localhost` (openssl req -x509, 10 years).
const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBfTCCASOgAwIBAgIUJgLyZJfdm/fIAicjUE8b4jVclJIwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MB4XDTI2MTEyMTA3MDUwOFoXDTM2MTExODA3
MDUwOFowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAE3PSu5Ku5zREYtMqv8tfpBRxZrJCCJrR3cJHX5jK8OtSyDuhnxzEV11Wa
ZMytFO4pZbhxrBS7O720CeYimTlRQKNTMFEwHQYDVR0OBBYEFBx7DVRMDKY68Ywd
9+tXhCP+Dmf+MB8GA1UdIwQYMBaAFBx7DVRMDKY68Ywd9+tXhCP+Dmf+MA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgWtusTRWrmC4ZYxMZBpmUjMrc
mVNezgBzxgq8uCtMZgoCIQC4NKq8uOj9xNNs6pqHgnF37iY9nUQnaP+xsK4Vxoau
Rg==
-----END CERTIFICATE-----
";

/// The private key of [`CERT_PEM`] (PKCS#8).
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/2JF218Za56oLwv1
L/vmH9hS4swKgj+v0ey+rnnZvkihRANCAATc9K7kq7nNERi0yq/y1+kFHFmskIIm
tHdwkdfmMrw61LIO6GfHMRXXVZpkzK0U7illuHGsFLs7vbQJ5iKZOVFA
-----END PRIVATE KEY-----
";

/// A small valid config; the error tests edit one line of it, so the line
/// numbers below are the ones the assertions use.
const BASE: &str = "\
listen:
  - addr: 0.0.0.0:8080
upstreams:
  backend:
    servers: [\"127.0.0.1:8000\"]
  frontend:
    servers: [\"127.0.0.1:3000\"]
routes:
  - path: /api/
    upstream: backend
  - path: /
    upstream: frontend
";

/// Name the tests give the config source.
const SOURCE: &str = "conf/ssegate.yaml";

fn ok(yaml: &str) -> Config {
    match parse(yaml, Path::new(SOURCE)) {
        Ok(cfg) => cfg,
        Err(e) => panic!("expected a valid config, got: {e}\n{yaml}"),
    }
}

fn err(yaml: &str) -> ConfigError {
    match parse(yaml, Path::new(SOURCE)) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => {
            assert_eq!(e.file, Path::new(SOURCE));
            e
        }
    }
}

/// `BASE` with `from` replaced by `to` (which must occur exactly once).
fn edit(from: &str, to: &str) -> String {
    assert_eq!(
        BASE.matches(from).count(),
        1,
        "{from:?} must occur once in BASE"
    );
    BASE.replacen(from, to, 1)
}

/// Asserts the error's line, column, key, a part of its message, and that
/// Display puts them together as `file:line:col: key: message`.
#[track_caller]
fn expect(e: &ConfigError, line: usize, column: usize, key: Option<&str>, part: &str) {
    assert_eq!(
        (e.line, e.column, e.key.as_deref()),
        (Some(line), Some(column), key),
        "{e}"
    );
    assert!(
        e.message.contains(part),
        "message {:?} lacks {part:?}",
        e.message
    );
    let shown = e.to_string();
    let file = e.file.display();
    let head = match key {
        Some(k) => format!("{file}:{line}:{column}: {k}: "),
        None => format!("{file}:{line}:{column}: "),
    };
    assert!(
        shown.starts_with(&head),
        "{shown:?} should start with {head:?}"
    );
    assert!(shown.ends_with(&e.message), "{shown:?}");
}
