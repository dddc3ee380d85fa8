//! Header policy: which headers are hop-by-hop, which responses are streams and get the SSE
//! headers, and how a relayed response is framed. What the upstream is told about the client
//! is in [`forwarded`]; the request head the relay sends is written by [`upstream`].

pub mod forwarded;
pub mod upstream;
pub mod view;

use std::borrow::Cow;

use http::StatusCode;

use crate::h1::head::{BadHead, Response};
use crate::sse::Framing;
use view::Fields;

pub use forwarded::{client_of, set_forwarded, Forwarded};

const X_ACCEL_BUFFERING: &str = "x-accel-buffering";

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), besides those
/// that `Connection` names. Framing headers are handled separately by whoever writes the body.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Headers a peer may not make hop-by-hop by naming them in `Connection`: they frame or
/// address the message itself, and removing them would drop a body or misroute it.
const NEVER_CONNECTION_OPTIONS: &[&str] = &["content-length", "transfer-encoding", "host"];

/// The options a head's `Connection` lines list, as one comma-separated list (borrowed from
/// the head unless it has several such lines; empty when it has none).
pub(crate) fn connection_of(fields: &impl Fields) -> Cow<'_, [u8]> {
    let mut values = fields.get_all("connection");
    let Some(first) = values.next() else {
        return Cow::Borrowed(b"");
    };
    let mut all = Cow::Borrowed(first);
    for v in values {
        let all = all.to_mut();
        all.push(b',');
        all.extend_from_slice(v);
    }
    all
}

/// Whether a header (named in any case) is hop-by-hop: one of [`HOP_BY_HOP`] or named in
/// `connection` (from [`connection_of`]).
pub(crate) fn is_hop(name: &[u8], connection: &[u8]) -> bool {
    if HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
    {
        return true;
    }
    if connection.is_empty()
        || NEVER_CONNECTION_OPTIONS
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
    {
        return false;
    }
    lists(connection, name)
}

/// Whether a comma-separated list of tokens (a `Connection` value) holds `token`, in any case.
pub(crate) fn lists(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether a response is a stream, and how to parse it, from its status and content type.
/// On a stream route, a successful response with a wrong or missing content type (Django's
/// `StreamingHttpResponse` defaults to `text/html`) is an SSE stream too; JSON is left
/// alone, because the same OpenAI-style endpoint answers `stream: false` with a plain JSON
/// body.
pub fn response_framing(
    status: StatusCode,
    content_type: Option<&[u8]>,
    stream_route: bool,
) -> Option<Framing> {
    let framing = content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(Framing::from_content_type);
    if framing.is_some() {
        return framing;
    }
    if !stream_route || !status.is_success() || status.as_u16() == 204 {
        return None;
    }
    let is_json = content_type.is_some_and(|v| {
        let essence = v.split(|&b| b == b';').next().unwrap_or(v).trim_ascii();
        essence.eq_ignore_ascii_case(b"application/json")
    });
    (!is_json).then_some(Framing::Sse)
}

/// Sets the SSE response headers on a stream: the content type (for SSE; NDJSON keeps its
/// own), `Cache-Control: no-cache`, `X-Accel-Buffering: no` for any buffering hop behind
/// us, and no `Content-Length`, so every chunk can be flushed as it comes.
pub fn set_sse_headers(resp: &mut Response, framing: Framing) {
    if framing == Framing::Sse {
        resp.lines.set("content-type", "text/event-stream");
    }
    resp.lines.set("cache-control", "no-cache");
    resp.lines.set(X_ACCEL_BUFFERING, "no");
    resp.lines.remove("content-length");
}

/// The response written at once by `early_headers` routes, before the upstream answers.
pub fn early_sse_response(client_http11: bool) -> Result<Response, BadHead> {
    let mut resp = Response::new(200, 4)?;
    set_sse_headers(&mut resp, Framing::Sse);
    set_downstream_framing(&mut resp, client_http11);
    Ok(resp)
}

/// Chooses the downstream framing of a relayed response: HTTP/1.1 clients get chunked
/// encoding when there is no length (so the connection can be reused); the rest is
/// close-delimited or HTTP/2 framing, which the writer handles.
pub fn set_downstream_framing(resp: &mut Response, client_http11: bool) {
    // Copied out (when there is any): the lines it names are being removed.
    let connection = connection_of(&resp.lines).into_owned();
    resp.lines.retain(|name| {
        !is_hop(name, &connection) && !name.eq_ignore_ascii_case(b"transfer-encoding")
    });
    if !resp.lines.contains("content-length") && client_http11 {
        resp.lines.append("transfer-encoding", "chunked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, ct: Option<&'static str>) -> Response {
        let mut r = Response::new(status, 4).unwrap();
        if let Some(ct) = ct {
            r.lines.append("Content-Type", ct);
        }
        r
    }

    fn framing(status: u16, ct: Option<&str>, stream_route: bool) -> Option<Framing> {
        let status = StatusCode::from_u16(status).unwrap();
        response_framing(status, ct.map(str::as_bytes), stream_route)
    }

    #[test]
    fn stream_detection() {
        assert_eq!(
            framing(200, Some("text/event-stream; charset=utf-8"), false),
            Some(Framing::Sse)
        );
        assert_eq!(
            framing(200, Some("Application/X-NDJSON"), false),
            Some(Framing::Ndjson)
        );
        assert_eq!(framing(200, Some("text/html"), false), None);
        assert_eq!(framing(200, Some("text/html"), true), Some(Framing::Sse));
        assert_eq!(framing(200, None, true), Some(Framing::Sse));
        assert_eq!(framing(200, Some("application/json"), true), None);
        assert_eq!(framing(500, Some("text/html"), true), None);
    }

    #[test]
    fn sse_headers_fix_content_type_and_drop_length() {
        let mut r = resp(200, Some("text/html; charset=utf-8"));
        r.lines.append("content-length", "10");
        set_sse_headers(&mut r, Framing::Sse);
        let all: Vec<(&[u8], &[u8])> = r.lines.iter().collect();
        assert_eq!(
            all,
            [
                (&b"Content-Type"[..], &b"text/event-stream"[..]),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
            ]
        );
        let mut n = resp(200, Some("application/x-ndjson"));
        set_sse_headers(&mut n, Framing::Ndjson);
        assert_eq!(
            n.lines.get("content-type"),
            Some(&b"application/x-ndjson"[..])
        );
    }

    #[test]
    fn downstream_framing() {
        let mut r = resp(200, None);
        r.lines.append("connection", "close");
        set_downstream_framing(&mut r, true);
        assert_eq!(r.lines.get("transfer-encoding"), Some(&b"chunked"[..]));
        assert!(!r.lines.contains("connection"));
        let mut l = resp(200, None);
        l.lines.append("content-length", "3");
        set_downstream_framing(&mut l, true);
        assert!(!l.lines.contains("transfer-encoding"));
        let mut named = resp(200, None);
        named.lines.append("Connection", "X-Trace, content-length");
        named.lines.append("x-trace", "1");
        named.lines.append("keep-alive", "timeout=5");
        named.lines.append("content-length", "3");
        set_downstream_framing(&mut named, true);
        assert_eq!(named.lines.len(), 1, "{:?}", named.lines);
        assert!(named.lines.contains("content-length"));
        let mut old = resp(200, None);
        old.lines.append("Transfer-Encoding", "chunked");
        set_downstream_framing(&mut old, false);
        assert!(old.lines.is_empty(), "{:?}", old.lines);
    }
}
