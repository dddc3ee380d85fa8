//! HTTP/1 message heads: finding where one ends, parsing it into Pingora's header types (so
//! the rules in [`headers`](crate::headers) apply to both paths), and writing one out.

use bytes::{BufMut, Bytes};
use http::{header, HeaderMap, Version};
use pingora_http::{RequestHeader, ResponseHeader};

use super::body::Framing;

/// Most header lines parsed in a response head (Pingora's own limit).
const MAX_HEADERS: usize = 256;
/// Most header lines parsed in a request head (a request with more goes to Pingora).
const MAX_REQUEST_HEADERS: usize = 64;

/// Why a head could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadHead(pub String);

impl std::fmt::Display for BadHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadHead {}

fn bad(what: impl std::fmt::Display) -> BadHead {
    BadHead(what.to_string())
}

/// Where the head in `buf` ends (just past its empty line), scanning from `from`.
pub fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from.min(buf.len());
    while let Some(i) = memchr::memchr(b'\n', &buf[at..]) {
        let nl = at + i;
        // An empty line is "\n" right after "\n", or "\r\n" right after "\n".
        if nl >= 1 && buf[nl - 1] == b'\n' {
            return Some(nl + 1);
        }
        if nl >= 2 && buf[nl - 1] == b'\r' && buf[nl - 2] == b'\n' {
            return Some(nl + 1);
        }
        at = nl + 1;
    }
    None
}

/// Where to resume [`head_end`] after more bytes arrive (a terminator may straddle reads).
pub fn resume_at(len: usize) -> usize {
    len.saturating_sub(3)
}

fn version(v: Option<u8>) -> Version {
    match v {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    }
}

/// Room for the headers a response head gains on its way (framing, SSE), so that adding
/// them does not grow its maps. A request head gains none (the upstream's copy is written
/// straight to the wire), and it is kept for the stream's life: its maps are exact.
const ROOM: usize = 4;

/// Parses a complete request head (header names keep their case on the way out). Names and
/// values are slices of `head`, not copies.
pub fn parse_request(head: &Bytes) -> Result<RequestHeader, BadHead> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("incomplete request head")),
        Err(e) => return Err(bad(e)),
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Err(bad("no request line"));
    };
    let mut out = RequestHeader::build(method, path.as_bytes(), Some(req.headers.len()))
        .map_err(|e| bad(e.etype().as_str()))?;
    out.set_version(version(req.version));
    for h in req.headers.iter() {
        let (name, value) = shared(head, h);
        out.append_header(name, value)
            .map_err(|_| bad("bad header"))?;
    }
    Ok(out)
}

/// A parsed header line as slices of the head it came from.
fn shared(head: &Bytes, h: &httparse::Header<'_>) -> (Bytes, http::HeaderValue) {
    let name = head.slice_ref(h.name.as_bytes());
    (
        name,
        pingora_http::header_value_from_raw(head.slice_ref(h.value)),
    )
}

/// Parses a response head at the start of `buf`: the header and its length, or `None` while
/// it is incomplete. Names and values are slices of `buf`, not copies.
pub fn parse_response(buf: &Bytes) -> Result<Option<(ResponseHeader, usize)>, BadHead> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(bad(e)),
    };
    let code = resp.code.ok_or_else(|| bad("no status"))?;
    let mut out = ResponseHeader::build(code, Some(resp.headers.len() + ROOM))
        .map_err(|_| bad("bad status"))?;
    out.set_version(version(resp.version));
    out.set_reason_phrase(resp.reason)
        .map_err(|_| bad("bad reason phrase"))?;
    for h in resp.headers.iter() {
        let (name, value) = shared(buf, h);
        out.append_header(name, value)
            .map_err(|_| bad("bad header"))?;
    }
    Ok(Some((out, len)))
}

/// The request's body framing: `None` unless it is a single plain Content-Length or none
/// (chunked and other transfer codings are left to Pingora's pipeline).
pub fn request_framing(req: &RequestHeader) -> Option<Framing> {
    if req.headers.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    let mut lengths = req.headers.get_all(header::CONTENT_LENGTH).iter();
    match (lengths.next(), lengths.next()) {
        (None, _) => Some(Framing::Empty),
        (Some(v), None) => match decimal(v)? {
            0 => Some(Framing::Empty),
            n => Some(Framing::Length(n)),
        },
        _ => None,
    }
}

/// A Content-Length value: digits only.
fn decimal(v: &http::HeaderValue) -> Option<u64> {
    v.to_str()
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
}

/// Whether a message's body is chunked: its last transfer coding is `chunked`.
pub fn chunked(headers: &HeaderMap) -> bool {
    headers
        .get(header::TRANSFER_ENCODING)
        .and_then(|te| te.as_bytes().rsplit(|b| *b == b',').next())
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// The response's body framing (RFC 9112 6.3). A response with both Transfer-Encoding and
/// Content-Length loses the latter, as Pingora does.
pub fn response_framing(resp: &mut ResponseHeader, head_request: bool) -> Result<Framing, BadHead> {
    let status = resp.status.as_u16();
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    if resp.headers.contains_key(header::TRANSFER_ENCODING) {
        resp.remove_header(&header::CONTENT_LENGTH);
        return Ok(if chunked(&resp.headers) {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut lengths = resp.headers.get_all(header::CONTENT_LENGTH).iter();
    let first = lengths.next();
    if let Some(v) = first {
        let n = decimal(v).ok_or_else(|| bad("bad Content-Length"))?;
        if lengths.any(|o| decimal(o) != Some(n)) {
            return Err(bad("conflicting Content-Length"));
        }
        return Ok(Framing::Length(n));
    }
    Ok(Framing::UntilClose)
}

/// Writes one header line (`name: value` and CRLF).
pub fn put_header_line(out: &mut impl BufMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Writes a response head (status line, headers, then the `extra` lines, empty line).
pub fn response_to_wire(resp: &ResponseHeader, extra: &[(&str, &[u8])], out: &mut impl BufMut) {
    out.put_slice(match resp.version {
        Version::HTTP_10 => b"HTTP/1.0 ",
        _ => b"HTTP/1.1 ",
    });
    out.put_slice(resp.status.as_str().as_bytes());
    out.put_u8(b' ');
    if let Some(reason) = resp.get_reason_phrase() {
        out.put_slice(reason.as_bytes());
    }
    out.put_slice(b"\r\n");
    resp.header_to_h1_wire(out);
    for (name, value) in extra {
        put_header_line(out, name.as_bytes(), value);
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn bytes(b: &[u8]) -> Bytes {
        Bytes::copy_from_slice(b)
    }

    #[test]
    fn head_ends_are_found_across_reads_and_line_styles() {
        let h = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        assert_eq!(head_end(h, 0), Some(h.len() - 4));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\nx", 0), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
        // Resuming near the end still sees a terminator split between reads.
        let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r".to_vec();
        assert_eq!(head_end(&buf, 0), None);
        let from = resume_at(buf.len());
        buf.push(b'\n');
        assert_eq!(head_end(&buf, from), Some(buf.len()));
    }

    #[test]
    fn requests_keep_their_header_case_and_raw_path() {
        let req = parse_request(&bytes(
            b"POST /v1/chat?x=%20 HTTP/1.1\r\nX-Mixed-Case: v\r\n\r\n",
        ))
        .expect("parses");
        assert_eq!(req.method, http::Method::POST);
        assert_eq!(req.raw_path(), b"/v1/chat?x=%20");
        assert_eq!(req.version, Version::HTTP_11);
        let mut wire = BytesMut::new();
        req.header_to_h1_wire(&mut wire);
        assert_eq!(&wire[..], b"X-Mixed-Case: v\r\n");
        assert!(parse_request(&bytes(b"GARBAGE\r\n\r\n")).is_err());
    }

    #[test]
    fn request_bodies_the_lean_path_reads() {
        let framing = |h: &[u8]| request_framing(&parse_request(&bytes(h)).expect("parses"));
        assert_eq!(framing(b"GET / HTTP/1.1\r\n\r\n"), Some(Framing::Empty));
        assert_eq!(
            framing(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n"),
            Some(Framing::Length(12))
        );
        for h in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
        ] {
            assert_eq!(framing(h), None, "{}", String::from_utf8_lossy(h));
        }
        let many: String = (0..70).map(|i| format!("x-{i}: v\r\n")).collect();
        assert!(parse_request(&bytes(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes())).is_err());
    }

    #[test]
    fn chunked_means_the_last_coding_is_chunked() {
        let te = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::TRANSFER_ENCODING, http::HeaderValue::from_static(v));
            chunked(&h)
        };
        assert!(te("chunked") && te("Chunked") && te("gzip, chunked") && te("gzip,chunked "));
        assert!(!te("chunked, gzip") && !te("gzip"));
        assert!(!chunked(&HeaderMap::new()));
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let framing = |h: &[u8], head: bool| {
            let (mut r, _) = parse_response(&bytes(h))
                .expect("parses")
                .expect("complete");
            response_framing(&mut r, head).map(|f| (f, r.headers.contains_key("content-length")))
        };
        let ok = |f| Ok((f, false));
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            Ok((Framing::Length(5), true))
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
                false
            ),
            ok(Framing::Chunked)
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\n\r\n", false),
            ok(Framing::UntilClose)
        );
        assert_eq!(
            framing(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            ok(Framing::Empty)
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
            Ok((Framing::Empty, true))
        );
        assert!(framing(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            false
        )
        .is_err());
    }

    #[test]
    fn responses_round_trip_through_the_wire() {
        let raw = b"HTTP/1.1 200 Fine\r\nContent-Type: text/event-stream\r\nx-lower: 1\r\n\r\n";
        let (resp, len) = parse_response(&bytes(raw))
            .expect("parses")
            .expect("complete");
        assert_eq!(len, raw.len());
        let mut out = BytesMut::new();
        response_to_wire(&resp, &[], &mut out);
        assert_eq!(&out[..], &raw[..]);
        out.clear();
        response_to_wire(&resp, &[("Date", b"today")], &mut out);
        assert!(out.ends_with(b"x-lower: 1\r\nDate: today\r\n\r\n"));
        assert!(matches!(
            parse_response(&bytes(b"HTTP/1.1 200 OK\r\n")),
            Ok(None)
        ));
    }
}
