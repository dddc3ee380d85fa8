//! The request head the relay sends upstream, written in one pass from the client's request:
//! hop-by-hop headers left out (an upgrade keeps `Upgrade` and says `Connection: upgrade`),
//! the target as sent (origin-form for HTTP/2), `Host` kept (or taken from an HTTP/2
//! authority), the forwarding headers, and on streams no `Accept-Encoding`, so that a backend
//! middleware does not gzip the stream into one late burst. The client's request itself is
//! neither copied nor changed.

use bytes::BufMut;

use super::forwarded::Forwarded;
use super::view::{Fields, RequestHead};
use super::{connection_of, is_hop};
use crate::h1::head::put_header_line;

/// How a request goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outbound {
    /// The request asks to switch protocols, and the route relays that.
    pub upgrade: bool,
    /// Leave `Accept-Encoding` out (stream routes).
    pub identity: bool,
}

/// A request target that cannot be written on a request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTarget;

impl std::fmt::Display for BadTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request target cannot be written")
    }
}

impl std::error::Error for BadTarget {}

/// Writes the upstream request head for `req` to `out` (HTTP/1.1, ending in the empty line).
pub fn write_head(
    req: &impl RequestHead,
    how: Outbound,
    fwd: &Forwarded,
    out: &mut impl BufMut,
) -> Result<(), BadTarget> {
    let target = req.target();
    if target.is_empty() || target.iter().any(|b| matches!(b, b' ' | b'\r' | b'\n' | 0)) {
        return Err(BadTarget);
    }
    out.put_slice(req.method().as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target);
    out.put_slice(b" HTTP/1.1\r\n");
    let fields = req.fields();
    let connection = connection_of(fields);
    let protocol = how.upgrade.then(|| fields.get("upgrade")).flatten();
    req.each_line(|name, value| {
        if is_hop(name, &connection)
            || fwd.replaces(name)
            || (how.identity && protocol.is_none() && name.eq_ignore_ascii_case(b"accept-encoding"))
        {
            return;
        }
        put_header_line(out, name, value);
    });
    // `Host` is never hop-by-hop, so the client's went out above.
    if !fields.contains("host") {
        if let Some(auth) = req.authority() {
            put_header_line(out, b"Host", auth.as_str().as_bytes());
        }
    }
    if let Some(p) = protocol {
        put_header_line(out, b"Upgrade", p);
        put_header_line(out, b"Connection", b"upgrade");
    }
    fwd.write(out);
    out.put_slice(b"\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use pingora_http::RequestHeader;

    fn req_with(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/x?q=%20", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    const PLAIN: Outbound = Outbound {
        upgrade: false,
        identity: false,
    };
    const STREAM: Outbound = Outbound {
        upgrade: false,
        identity: true,
    };

    /// The head written for `r`, with the forwarding headers of an untrusted peer cut off.
    fn head(r: &impl RequestHead, how: Outbound) -> String {
        let fwd = Forwarded::new(r.fields(), "192.0.2.1".parse().unwrap(), false, &[]);
        let mut out = BytesMut::new();
        write_head(r, how, &fwd, &mut out).expect("writes");
        let text = String::from_utf8(out.to_vec()).expect("text");
        let tail = "x-forwarded-for: 192.0.2.1\r\nx-forwarded-proto: http\r\n\
                    x-real-ip: 192.0.2.1\r\n\r\n";
        text.strip_suffix(tail)
            .expect("forwarding headers last")
            .to_string()
    }

    #[test]
    fn headers_keep_their_case_and_order() {
        let r = req_with(&[("Host", "app"), ("X-Mixed", "1"), ("accept", "*/*")]);
        assert_eq!(
            head(&r, PLAIN),
            "GET /x?q=%20 HTTP/1.1\r\nHost: app\r\nX-Mixed: 1\r\naccept: */*\r\n"
        );
    }

    #[test]
    fn framing_and_host_survive_being_named_in_connection() {
        let r = req_with(&[
            (
                "connection",
                "content-length, Host, transfer-encoding, x-other",
            ),
            ("content-length", "5"),
            ("host", "app"),
            ("x-other", "1"),
        ]);
        assert_eq!(
            head(&r, PLAIN),
            "GET /x?q=%20 HTTP/1.1\r\ncontent-length: 5\r\nhost: app\r\n"
        );
    }

    #[test]
    fn hop_by_hop_and_connection_listed_are_left_out() {
        let r = req_with(&[
            ("Connection", "keep-alive, X-Secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("Proxy-Authorization", "basic x"),
            ("accept-encoding", "gzip"),
            ("x-keep", "1"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
        ]);
        assert_eq!(head(&r, STREAM), "GET /x?q=%20 HTTP/1.1\r\nx-keep: 1\r\n");
        // Only streams lose Accept-Encoding: a plain page may still be compressed.
        assert_eq!(
            head(&r, PLAIN),
            "GET /x?q=%20 HTTP/1.1\r\naccept-encoding: gzip\r\nx-keep: 1\r\n"
        );
    }

    #[test]
    fn upgrade_keeps_the_protocol_switch() {
        let r = req_with(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        let up = Outbound {
            upgrade: true,
            identity: true,
        };
        assert_eq!(
            head(&r, up),
            "GET /x?q=%20 HTTP/1.1\r\nsec-websocket-key: k\r\nUpgrade: websocket\r\n\
             Connection: upgrade\r\n"
        );
        // Without the switch, Upgrade is just another hop-by-hop header.
        assert_eq!(
            head(&r, STREAM),
            "GET /x?q=%20 HTTP/1.1\r\nsec-websocket-key: k\r\n"
        );
    }

    #[test]
    fn h2_authority_becomes_host_and_origin_form() {
        // An HTTP/2 request carries the authority in its URI, not in a Host header.
        let mut r = RequestHeader::build_no_case("POST", b"/", None).unwrap();
        r.set_uri("https://chat.example/api/x?y=1".parse().unwrap());
        r.insert_header("content-type", "application/json").unwrap();
        assert_eq!(
            head(&r, PLAIN),
            "POST /api/x?y=1 HTTP/1.1\r\nContent-Type: application/json\r\nHost: chat.example\r\n"
        );
    }

    #[test]
    fn values_go_upstream_byte_for_byte_even_past_ascii() {
        let wire = bytes::Bytes::from_static(
            b"GET /p HTTP/1.1\r\nX-Name: caf\xc3\xa9 \xff\tend\r\nX-Empty:\r\n\r\n",
        );
        let req = crate::h1::head::parse_request(&wire).expect("parses");
        let fwd = Forwarded::new(&req.lines, "192.0.2.1".parse().unwrap(), false, &[]);
        let mut out = BytesMut::new();
        write_head(&req, PLAIN, &fwd, &mut out).expect("writes");
        let want: &[u8] = b"GET /p HTTP/1.1\r\nX-Name: caf\xc3\xa9 \xff\tend\r\nX-Empty: \r\n";
        assert!(out.starts_with(want), "{:?}", String::from_utf8_lossy(&out));
    }

    #[test]
    fn absolute_form_goes_as_sent() {
        let r = RequestHeader::build("GET", b"http://app/x", None).unwrap();
        assert_eq!(head(&r, PLAIN), "GET http://app/x HTTP/1.1\r\n");
    }

    /// Header names a client might send: hop-by-hop ones, forwarding ones, ones a
    /// `Connection` value may name, and plain ones, in mixed case.
    const NAMES: &[&str] = &[
        "Host",
        "accept",
        "Accept-Encoding",
        "keep-alive",
        "TE",
        "Upgrade",
        "x-a",
        "X-B",
        "x-forwarded-for",
        "X-Real-IP",
        "content-length",
        "Proxy-Authorization",
        "Trailer",
    ];

    proptest::proptest! {
        /// Whatever the client sends, the upstream gets one well-formed head with the same
        /// end-to-end headers, each in its case and all in their order, and no hop-by-hop
        /// ones.
        #[test]
        fn the_head_is_the_request_less_its_hops(
            lines in proptest::collection::vec((0..NAMES.len(), "[ -~]{0,12}"), 0..12),
            named in proptest::collection::vec(0..NAMES.len(), 0..3),
            identity in proptest::bool::ANY,
        ) {
            let mut wire = b"GET /p HTTP/1.1\r\n".to_vec();
            if !named.is_empty() {
                let list: Vec<&str> = named.iter().map(|&i| NAMES[i]).collect();
                wire.extend_from_slice(format!("Connection: {}\r\n", list.join(", ")).as_bytes());
            }
            for (i, value) in &lines {
                wire.extend_from_slice(format!("{}: {}\r\n", NAMES[*i], value.trim()).as_bytes());
            }
            wire.extend_from_slice(b"\r\n");
            let Ok(req) = crate::h1::head::parse_request(&bytes::Bytes::from(wire)) else {
                return Ok(());
            };
            let how = Outbound { upgrade: false, identity };
            let fwd = Forwarded::new(&req.lines, "192.0.2.1".parse().unwrap(), false, &[]);
            let mut out = BytesMut::new();
            write_head(&req, how, &fwd, &mut out).expect("writes");

            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Request::new(&mut slots);
            let end = parsed.parse(&out).expect("parses");
            proptest::prop_assert_eq!(end, httparse::Status::Complete(out.len()));
            let got: Vec<(String, Vec<u8>)> = parsed
                .headers
                .iter()
                .map(|h| (h.name.to_string(), h.value.to_vec()))
                .collect();
            // What should pass: every line but the hop-by-hop and forwarding ones.
            let hop = |n: &str| {
                let n = n.to_ascii_lowercase();
                ["connection", "keep-alive", "te", "upgrade", "proxy-authorization", "trailer"]
                    .contains(&n.as_str())
                    || (named.iter().any(|&i| NAMES[i].eq_ignore_ascii_case(&n))
                        && !["content-length", "host"].contains(&n.as_str()))
                    || n.starts_with("x-forwarded") || n == "x-real-ip"
                    || (identity && n == "accept-encoding")
            };
            let passed: Vec<(String, Vec<u8>)> = lines
                .iter()
                .filter(|(i, _)| !hop(NAMES[*i]))
                .map(|(i, v)| (NAMES[*i].to_string(), v.trim().as_bytes().to_vec()))
                .collect();
            // The lines go in the order they came.
            proptest::prop_assert_eq!(&got[..passed.len()], &passed[..]);
            let tail: Vec<&str> = got[passed.len()..].iter().map(|(n, _)| n.as_str()).collect();
            proptest::prop_assert_eq!(tail, vec!["x-forwarded-for", "x-forwarded-proto", "x-real-ip"]);
        }
    }
}
