//! Header policy: which headers are hop-by-hop, which responses are streams and get the SSE
//! headers, and how a relayed response is framed. What the upstream is told about the client
//! is in [`forwarded`]; the request head the relay sends is written by [`upstream`].

pub mod forwarded;
pub mod upstream;

use http::header::{self, GetAll, HeaderMap, HeaderName, HeaderValue};
use pingora_http::ResponseHeader;

use crate::sse::Framing;

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
const NEVER_CONNECTION_OPTIONS: &[HeaderName] = &[
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::HOST,
];

/// Whether a header (named in any case) is hop-by-hop: one of [`HOP_BY_HOP`] or named in a
/// `Connection` value.
pub(crate) fn is_hop(name: &[u8], connection: &GetAll<'_, HeaderValue>) -> bool {
    if HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
    {
        return true;
    }
    if NEVER_CONNECTION_OPTIONS
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_str().as_bytes()))
    {
        return false;
    }
    connection.iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|option| option.trim_ascii().eq_ignore_ascii_case(name))
    })
}

/// The hop-by-hop headers present, including those listed in `Connection`.
fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let connection = headers.get_all(header::CONNECTION);
    let mut names = Vec::new();
    for name in headers.keys() {
        if is_hop(name.as_str().as_bytes(), &connection) {
            names.push(name.clone());
        }
    }
    names
}

/// Whether a response is a stream, and how to parse it. On a stream route, a successful
/// response with a wrong or missing content type (Django's `StreamingHttpResponse`
/// defaults to `text/html`) is an SSE stream too; JSON is left alone, because the same
/// OpenAI-style endpoint answers `stream: false` with a plain JSON body.
pub fn response_framing(resp: &ResponseHeader, stream_route: bool) -> Option<Framing> {
    let ct = resp.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
    let framing = ct
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(Framing::from_content_type);
    if framing.is_some() {
        return framing;
    }
    if !stream_route || !resp.status.is_success() || resp.status.as_u16() == 204 {
        return None;
    }
    let is_json = ct.is_some_and(|v| {
        let essence = v.split(|&b| b == b';').next().unwrap_or(v).trim_ascii();
        essence.eq_ignore_ascii_case(b"application/json")
    });
    (!is_json).then_some(Framing::Sse)
}

/// Sets the SSE response headers on a stream: the content type (for SSE; NDJSON keeps its
/// own), `Cache-Control: no-cache`, `X-Accel-Buffering: no` for any buffering hop behind
/// us, and no `Content-Length`, so every chunk can be flushed as it comes.
pub fn set_sse_headers(resp: &mut ResponseHeader, framing: Framing) {
    if framing == Framing::Sse {
        let _ = resp.insert_header(header::CONTENT_TYPE, "text/event-stream");
    }
    let _ = resp.insert_header(header::CACHE_CONTROL, "no-cache");
    let _ = resp.insert_header(X_ACCEL_BUFFERING, "no");
    resp.remove_header(&header::CONTENT_LENGTH);
}

/// The response written at once by `early_headers` routes, before the upstream answers.
pub fn early_sse_response(client_http11: bool) -> pingora::Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(200, Some(4))?;
    set_sse_headers(&mut resp, Framing::Sse);
    set_downstream_framing(&mut resp, client_http11);
    Ok(resp)
}

/// Chooses the downstream framing of a relayed response: HTTP/1.1 clients get chunked
/// encoding when there is no length (so the connection can be reused); the rest is
/// close-delimited or HTTP/2 framing, which the writer handles.
pub fn set_downstream_framing(resp: &mut ResponseHeader, client_http11: bool) {
    for name in hop_by_hop(&resp.headers) {
        resp.remove_header(&name);
    }
    let has_length = resp.headers.contains_key(header::CONTENT_LENGTH);
    resp.remove_header(&header::TRANSFER_ENCODING);
    if !has_length && client_http11 {
        let _ = resp.insert_header(header::TRANSFER_ENCODING, "chunked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, ct: Option<&str>) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        if let Some(ct) = ct {
            r.insert_header("content-type", ct).unwrap();
        }
        r
    }

    #[test]
    fn stream_detection() {
        assert_eq!(
            response_framing(&resp(200, Some("text/event-stream; charset=utf-8")), false),
            Some(Framing::Sse)
        );
        assert_eq!(
            response_framing(&resp(200, Some("Application/X-NDJSON")), false),
            Some(Framing::Ndjson)
        );
        assert_eq!(response_framing(&resp(200, Some("text/html")), false), None);
        assert_eq!(
            response_framing(&resp(200, Some("text/html")), true),
            Some(Framing::Sse)
        );
        assert_eq!(response_framing(&resp(200, None), true), Some(Framing::Sse));
        assert_eq!(
            response_framing(&resp(200, Some("application/json")), true),
            None
        );
        assert_eq!(response_framing(&resp(500, Some("text/html")), true), None);
    }

    #[test]
    fn sse_headers_fix_content_type_and_drop_length() {
        let mut r = resp(200, Some("text/html; charset=utf-8"));
        r.insert_header("content-length", "10").unwrap();
        set_sse_headers(&mut r, Framing::Sse);
        assert_eq!(r.headers.get("content-type").unwrap(), "text/event-stream");
        assert_eq!(r.headers.get("cache-control").unwrap(), "no-cache");
        assert_eq!(r.headers.get("x-accel-buffering").unwrap(), "no");
        assert!(!r.headers.contains_key("content-length"));
        let mut n = resp(200, Some("application/x-ndjson"));
        set_sse_headers(&mut n, Framing::Ndjson);
        assert_eq!(
            n.headers.get("content-type").unwrap(),
            "application/x-ndjson"
        );
    }

    #[test]
    fn downstream_framing() {
        let mut r = resp(200, None);
        r.insert_header("connection", "close").unwrap();
        set_downstream_framing(&mut r, true);
        assert_eq!(r.headers.get("transfer-encoding").unwrap(), "chunked");
        assert!(!r.headers.contains_key("connection"));
        let mut l = resp(200, None);
        l.insert_header("content-length", "3").unwrap();
        set_downstream_framing(&mut l, true);
        assert!(!l.headers.contains_key("transfer-encoding"));
        let mut named = resp(200, None);
        named
            .insert_header("Connection", "X-Trace, content-length")
            .unwrap();
        named.insert_header("x-trace", "1").unwrap();
        named.insert_header("keep-alive", "timeout=5").unwrap();
        named.insert_header("content-length", "3").unwrap();
        set_downstream_framing(&mut named, true);
        assert_eq!(named.headers.len(), 1, "{:?}", named.headers);
        assert!(named.headers.contains_key("content-length"));
    }
}
