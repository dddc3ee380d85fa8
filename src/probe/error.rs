//! Why a probe got no response to judge: one typed error per failure a user meets, each one
//! line with its own exit code.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use pingora::{Error, ErrorType};

use super::verdict::human;

/// Why a probe got no response to judge; each is one line for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// A bad URL, header, body file or option.
    Input(String),
    /// The host name does not resolve.
    Dns { host: String, reason: String },
    /// Nothing listens at the address.
    Refused { addr: SocketAddr },
    /// Connecting failed otherwise (unreachable, reset).
    Connect { addr: SocketAddr, reason: String },
    /// The TLS handshake or certificate check failed.
    Tls { host: String, reason: String },
    /// `--timeout` ran out before the response header.
    Timeout { timeout: Duration, phase: String },
    /// A non-2xx answer, with the start of its body.
    Status {
        status: u16,
        location: Option<String>,
        body: String,
    },
    /// The server broke HTTP or closed before answering.
    Protocol { reason: String },
}

impl ProbeError {
    /// A short class name (JSON `error.class`).
    pub fn class(&self) -> &'static str {
        match self {
            ProbeError::Input(_) => "input",
            ProbeError::Dns { .. } => "dns",
            ProbeError::Refused { .. } => "refused",
            ProbeError::Connect { .. } => "connect",
            ProbeError::Tls { .. } => "tls",
            ProbeError::Timeout { .. } => "timeout",
            ProbeError::Status { .. } => "status",
            ProbeError::Protocol { .. } => "protocol",
        }
    }

    /// The process exit code (documented in `probe`).
    pub fn exit_code(&self) -> i32 {
        match self {
            ProbeError::Input(_) => 1,
            ProbeError::Dns { .. } => 20,
            ProbeError::Refused { .. } | ProbeError::Connect { .. } => 21,
            ProbeError::Tls { .. } => 22,
            ProbeError::Timeout { .. } => 23,
            ProbeError::Status { .. } => 24,
            ProbeError::Protocol { .. } => 25,
        }
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Input(m) => write!(f, "{m}"),
            ProbeError::Dns { host, reason } => write!(f, "DNS: cannot resolve {host}: {reason}"),
            ProbeError::Refused { addr } => {
                write!(f, "connection refused by {addr}: nothing listens there")
            }
            ProbeError::Connect { addr, reason } => write!(f, "cannot connect to {addr}: {reason}"),
            ProbeError::Tls { host, reason } => write!(f, "TLS with {host} failed: {reason}"),
            ProbeError::Timeout { timeout, phase } => {
                write!(f, "timeout: --timeout {} ran out {phase}", human(*timeout))
            }
            ProbeError::Status {
                status,
                location,
                body,
            } => {
                let reason = http::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                write!(f, "HTTP {status} {reason}")?;
                if let Some(l) = location {
                    write!(f, " (Location: {l})")?;
                }
                if body.is_empty() {
                    write!(f, " with an empty body")
                } else {
                    write!(f, ": {body}")
                }
            }
            ProbeError::Protocol { reason } => write!(f, "bad response: {reason}"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// Pingora's error as plain words: its context, then its cause, without the type tag.
pub fn describe(e: &Error) -> String {
    let context = e.context.as_ref().map(|c| c.as_str().trim().to_owned());
    let cause = e.cause.as_ref().map(|c| c.to_string().trim().to_owned());
    match (context, cause) {
        (Some(c), Some(k)) => format!("{c}: {k}"),
        (Some(c), None) => c,
        (None, Some(k)) => k,
        (None, None) => e.etype().as_str().to_owned(),
    }
}

/// Classifies a failed connection from Pingora's error type.
pub fn connect_error(e: &Error, addr: SocketAddr, host: &str) -> ProbeError {
    let reason = || {
        let context = e.context.as_ref().map(|c| c.as_str().to_owned());
        tls_reason(&context.unwrap_or_else(|| e.to_string()))
    };
    match e.etype() {
        ErrorType::ConnectRefused => ProbeError::Refused { addr },
        ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::InvalidCert
        | ErrorType::TLSWantX509Lookup
        | ErrorType::HandshakeError => ProbeError::Tls {
            host: host.to_owned(),
            reason: reason(),
        },
        _ => ProbeError::Connect {
            addr,
            reason: describe(e),
        },
    }
}

/// The root cause of a TLS failure from Pingora's layered context ("TLS connect() failed: ...
/// cause: invalid peer certificate: UnknownIssuer, SNI: host"), with a hint for the usual ones.
fn tls_reason(context: &str) -> String {
    let cause = context.rsplit("cause: ").next().unwrap_or(context);
    let cause = cause.split(", SNI:").next().unwrap_or(cause).trim();
    let hint = if cause.contains("UnknownIssuer") {
        " (not signed by a CA this machine trusts; SSL_CERT_FILE names more CAs, --insecure skips the check)"
    } else if cause.contains("InvalidContentType") || cause.contains("handshake eof") {
        " (does the server speak TLS on this port? http:// ?)"
    } else {
        ""
    };
    format!("{cause}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_with_their_exit_code() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let cases = [
            (
                ProbeError::Refused { addr },
                21,
                "connection refused by 127.0.0.1:9: nothing listens there",
            ),
            (
                ProbeError::Status {
                    status: 500,
                    location: None,
                    body: "boom".into(),
                },
                24,
                "HTTP 500 Internal Server Error: boom",
            ),
            (
                ProbeError::Timeout {
                    timeout: Duration::from_secs(1),
                    phase: "waiting for the response header".into(),
                },
                23,
                "timeout: --timeout 1.00 s ran out waiting for the response header",
            ),
        ];
        for (e, code, text) in cases {
            assert_eq!(e.exit_code(), code);
            assert_eq!(e.to_string(), text);
        }
        let e = connect_error(&Error::new(ErrorType::ConnectRefused), addr, "h");
        assert_eq!(e.class(), "refused");
        let e = Error::because(
            ErrorType::ConnectNoRoute,
            "connecting",
            std::io::Error::other("network unreachable"),
        );
        assert_eq!(describe(&e), "connecting: network unreachable");
        assert_eq!(connect_error(&e, addr, "h").exit_code(), 21);
        let e = Error::explain(
            ErrorType::TLSHandshakeFailure,
            "TLS connect() failed:  TLSHandshakeFailure context: tls connect error cause: \
             invalid peer certificate: UnknownIssuer, SNI: h",
        );
        let text = connect_error(&e, addr, "h").to_string();
        assert!(
            text.starts_with(
                "TLS with h failed: invalid peer certificate: UnknownIssuer (not signed"
            ),
            "{text}"
        );
    }
}
