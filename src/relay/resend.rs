//! What a relay keeps to send a request again, once, on a new upstream connection when a
//! reused one turns out to have been closed by its server (as nginx and Pingora do).

use bytes::Bytes;
use pingora::{Error, ErrorType};

use crate::headers::view::Fields;

/// Whether an upstream error is what a server closing an idle connection looks like (a
/// timeout is not: that server is slow, and would get the request twice).
pub(super) fn stale(e: &Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
    )
}

/// Largest request body kept to send again if a reused upstream connection fails.
const MAX_REPLAYED_BODY: usize = 64 * 1024;

/// Whether `req` can be sent again whole: it has no body, or one small enough to keep.
pub(super) fn resendable(req: &impl Fields) -> bool {
    if crate::h1::head::chunked(req) {
        return false;
    }
    match req.get("content-length") {
        None => true,
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .is_some_and(|len| len <= MAX_REPLAYED_BODY),
    }
}

/// The request body as sent upstream, kept (while small) for one retry.
#[derive(Default)]
pub(super) struct Sent {
    /// The body was read from the client once (a retry sends the copy).
    pub started: bool,
    /// The whole body is in `body`.
    pub replayable: bool,
    /// The body's pieces, while `replayable`.
    pub body: Vec<Bytes>,
    len: usize,
}

impl Sent {
    /// Counts a piece sent, keeping it while the whole body stays within the limit.
    pub fn keep(&mut self, chunk: &Bytes) {
        self.len += chunk.len();
        if self.len > MAX_REPLAYED_BODY {
            self.replayable = false;
            self.body = Vec::new();
        } else if self.replayable {
            self.body.push(chunk.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&'static str, &'static str)]) -> crate::h1::lines::Lines {
        let mut r = crate::h1::lines::Lines::default();
        for (k, v) in headers {
            r.append(k, *v);
        }
        r
    }

    #[test]
    fn resendable_when_the_whole_body_can_be_kept() {
        assert!(resendable(&req(&[])));
        assert!(resendable(&req(&[("content-length", "0")])));
        assert!(resendable(&req(&[("content-length", "65536")])));
        assert!(!resendable(&req(&[("content-length", "65537")])));
        assert!(!resendable(&req(&[("content-length", "ten")])));
        assert!(!resendable(&req(&[("transfer-encoding", "chunked")])));
    }

    #[test]
    fn a_body_over_the_limit_is_let_go() {
        let mut sent = Sent {
            started: true,
            replayable: true,
            ..Sent::default()
        };
        sent.keep(&Bytes::from(vec![b'a'; MAX_REPLAYED_BODY]));
        assert!(sent.replayable && sent.body.len() == 1);
        sent.keep(&Bytes::from_static(b"b"));
        assert!(!sent.replayable && sent.body.is_empty());
    }
}
