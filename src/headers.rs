//! Header policy: what the upstream is told about the client, which headers are hop-by-hop,
//! and which responses are streams and get the SSE headers.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::sse::Framing;

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_REAL_IP: &str = "x-real-ip";
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

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// The address of the client: the peer, unless the peer is a trusted proxy, in which case
/// the right-most address of `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, xff: Option<&[u8]>, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let Some(list) = xff.and_then(|v| std::str::from_utf8(v).ok()) else {
        return peer;
    };
    let mut client = peer;
    for hop in list.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip, trusted) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// Sets `X-Forwarded-For` (appended to only when the peer is trusted, else replaced),
/// `X-Forwarded-Proto` (kept from a trusted peer) and `X-Real-IP`.
pub fn set_forwarded(req: &mut RequestHeader, peer: IpAddr, tls: bool, trusted: &[IpNet]) {
    let trusted_peer = is_trusted(peer, trusted);
    let old_xff: Option<Vec<u8>> = trusted_peer
        .then(|| joined(&req.headers, X_FORWARDED_FOR))
        .flatten();
    let real = client_ip(peer, old_xff.as_deref(), trusted);
    let xff = match old_xff {
        Some(mut v) if !v.is_empty() => {
            v.extend_from_slice(b", ");
            v.extend_from_slice(peer.to_string().as_bytes());
            v
        }
        _ => peer.to_string().into_bytes(),
    };
    set(req, X_FORWARDED_FOR, &xff);
    let keep_proto = trusted_peer && req.headers.contains_key(X_FORWARDED_PROTO);
    if !keep_proto {
        set(req, X_FORWARDED_PROTO, if tls { b"https" } else { b"http" });
    }
    set(req, X_REAL_IP, real.to_string().as_bytes());
}

/// All values of a header joined with ", " (a header may be sent several times).
pub(crate) fn joined(headers: &HeaderMap, name: &str) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for v in headers.get_all(name) {
        let o = out.get_or_insert_with(Vec::new);
        if !o.is_empty() {
            o.extend_from_slice(b", ");
        }
        o.extend_from_slice(v.as_bytes());
    }
    out
}

fn set(req: &mut RequestHeader, name: &'static str, value: &[u8]) {
    if let Ok(v) = HeaderValue::from_bytes(value) {
        // Only fails on invalid names, and these are constants.
        let _ = req.insert_header(name, v);
    }
}

/// Headers a peer may not make hop-by-hop by naming them in `Connection`: they frame or
/// address the message itself, and removing them would drop a body or misroute it.
const NEVER_CONNECTION_OPTIONS: &[HeaderName] = &[
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::HOST,
];

/// The hop-by-hop headers present, including those listed in `Connection`.
fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| !NEVER_CONNECTION_OPTIONS.contains(n))
        .collect();
    names.extend(
        HOP_BY_HOP
            .iter()
            .filter(|n| headers.contains_key(**n))
            .map(|n| HeaderName::from_static(n)),
    );
    names
}

/// Prepares the request the relay sends upstream: hop-by-hop headers removed (an upgrade
/// keeps `Upgrade` and says `Connection: upgrade`), origin-form URI, `Host` kept (or taken
/// from an HTTP/2 authority), and, on streams, no `Accept-Encoding`, so that a backend
/// middleware does not gzip the stream into one late burst.
pub fn upstream_request(req: &mut RequestHeader, upgrade: bool) {
    let protocol = req.headers.get(header::UPGRADE).cloned();
    for name in hop_by_hop(&req.headers) {
        req.remove_header(&name);
    }
    match protocol {
        Some(p) if upgrade => {
            let _ = req.insert_header(header::UPGRADE, p);
            let _ = req.insert_header(header::CONNECTION, "upgrade");
        }
        _ => {
            req.remove_header(&header::ACCEPT_ENCODING);
        }
    }
    if !req.headers.contains_key(header::HOST) {
        if let Some(auth) = req.uri.authority().map(|a| a.as_str().to_string()) {
            let _ = req.insert_header(header::HOST, auth);
        }
    }
    if req.uri.scheme().is_some() {
        if let Some(pq) = req.uri.path_and_query().cloned() {
            if let Ok(uri) = http::Uri::builder().path_and_query(pq).build() {
                req.set_uri(uri);
            }
        }
    }
    req.set_version(http::Version::HTTP_11);
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

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn req_with(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/x", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn get<'a>(r: &'a RequestHeader, k: &str) -> &'a str {
        r.headers.get(k).unwrap().to_str().unwrap()
    }

    #[test]
    fn untrusted_peer_xff_is_replaced() {
        let mut r = req_with(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarded(
            &mut r,
            "203.0.113.9".parse().unwrap(),
            false,
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(get(&r, "x-forwarded-for"), "203.0.113.9");
        assert_eq!(get(&r, "x-real-ip"), "203.0.113.9");
        assert_eq!(get(&r, "x-forwarded-proto"), "http");
    }

    #[test]
    fn trusted_peer_xff_is_appended() {
        let mut r = req_with(&[
            ("x-forwarded-for", "198.51.100.7, 10.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarded(
            &mut r,
            "10.0.0.2".parse().unwrap(),
            false,
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(
            get(&r, "x-forwarded-for"),
            "198.51.100.7, 10.1.1.1, 10.0.0.2"
        );
        assert_eq!(get(&r, "x-real-ip"), "198.51.100.7");
        assert_eq!(get(&r, "x-forwarded-proto"), "https");
    }

    #[test]
    fn client_ip_stops_at_garbage() {
        let t = nets(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, Some(b"junk, 10.0.0.3"), &t),
            "10.0.0.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(peer, None, &t), peer);
        assert_eq!(
            client_ip("8.8.8.8".parse().unwrap(), Some(b"1.2.3.4"), &t),
            "8.8.8.8".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn framing_and_host_survive_being_named_in_connection() {
        let mut r = req_with(&[
            (
                "connection",
                "content-length, Host, transfer-encoding, x-other",
            ),
            ("content-length", "5"),
            ("host", "app"),
            ("x-other", "1"),
        ]);
        upstream_request(&mut r, false);
        assert_eq!(get(&r, "content-length"), "5");
        assert_eq!(get(&r, "host"), "app");
        assert!(!r.headers.contains_key("x-other"));
    }

    #[test]
    fn hop_by_hop_and_connection_listed_removed() {
        let mut r = req_with(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("accept-encoding", "gzip"),
            ("x-keep", "1"),
        ]);
        upstream_request(&mut r, false);
        for gone in [
            "connection",
            "keep-alive",
            "x-secret",
            "te",
            "accept-encoding",
        ] {
            assert!(!r.headers.contains_key(gone), "{gone} kept");
        }
        assert!(r.headers.contains_key("x-keep"));
    }

    #[test]
    fn upgrade_keeps_the_protocol_switch() {
        let mut r = req_with(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        upstream_request(&mut r, true);
        assert_eq!(get(&r, "upgrade"), "websocket");
        assert_eq!(get(&r, "connection"), "upgrade");
        assert_eq!(get(&r, "sec-websocket-key"), "k");
    }

    #[test]
    fn h2_authority_becomes_host_and_origin_form() {
        // An HTTP/2 request carries the authority in its URI, not in a Host header.
        let mut r = RequestHeader::build("POST", b"/", None).unwrap();
        r.set_uri("https://chat.example/api/x?y=1".parse().unwrap());
        upstream_request(&mut r, false);
        assert_eq!(get(&r, "host"), "chat.example");
        assert_eq!(r.uri.to_string(), "/api/x?y=1");
    }

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
    }
}
