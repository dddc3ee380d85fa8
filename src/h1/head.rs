//! HTTP/1 message heads: finding where one ends, parsing it into ssegate's own head types
//! (header lines kept as spans of the head, see [`lines`](super::lines)), and writing one out.

use std::mem::MaybeUninit;

use bytes::{BufMut, Bytes};
use http::{Method, StatusCode, Version};

use super::body::Framing;
use super::lines::{Lines, Text};
use crate::headers::view::Fields;

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

/// A request head as the client sent it.
#[derive(Clone, Debug)]
pub struct Request {
    /// The request method.
    pub method: Method,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    target: Text,
    /// Where the path ends in the target (at its query, if any).
    path_len: usize,
    /// The header lines, in their order and case.
    pub lines: Lines,
}

impl Request {
    /// The request target, as sent.
    pub fn target(&self) -> &[u8] {
        self.lines.text(&self.target)
    }

    /// The target's path (without the query).
    pub fn path(&self) -> &str {
        // The parser only lets visible ASCII through, so this never falls back.
        std::str::from_utf8(&self.target()[..self.path_len]).unwrap_or("/")
    }
}

/// A response head: an upstream's as it came (less what the relay changes), or ssegate's own.
#[derive(Clone, Debug)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The version the upstream answered with (ssegate's own answers say HTTP/1.1).
    pub version: Version,
    /// The reason phrase as sent; `None` writes the status's standard one.
    reason: Option<Text>,
    /// The header lines, in their order and case.
    pub lines: Lines,
}

impl Response {
    /// A response of ssegate's own, with room for `n` header lines.
    pub fn new(status: u16, n: usize) -> Result<Self, BadHead> {
        Ok(Response {
            status: StatusCode::from_u16(status).map_err(|_| bad("bad status"))?,
            version: Version::HTTP_11,
            reason: None,
            lines: Lines::with_capacity(Bytes::new(), n),
        })
    }

    /// The reason phrase to write.
    pub fn reason(&self) -> &[u8] {
        match &self.reason {
            Some(r) => self.lines.text(r),
            None => self
                .status
                .canonical_reason()
                .unwrap_or_default()
                .as_bytes(),
        }
    }
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
/// them does not grow its lines. A request head gains none (the upstream's copy is written
/// straight to the wire), and it is kept for the stream's life: its lines are exact.
const ROOM: usize = 4;

/// Parses a complete request head (header names keep their case on the way out). Names and
/// values are spans of `head`, not copies.
pub fn parse_request(head: &Bytes) -> Result<Request, BadHead> {
    // Uninitialised slots: zeroing 64 of them (2 KiB) cost more than parsing a short head.
    let mut slots = [const { MaybeUninit::uninit() }; MAX_REQUEST_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, head, &mut slots)
    {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("incomplete request head")),
        Err(e) => return Err(bad(e)),
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Err(bad("no request line"));
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| bad("bad method"))?;
    let mut lines = Lines::with_capacity(head.clone(), req.headers.len());
    for h in req.headers.iter() {
        lines.push_span(h.name.as_bytes(), h.value);
    }
    Ok(Request {
        method,
        version: version(req.version),
        target: lines.span(path.as_bytes()),
        path_len: path.find(['?', '#']).unwrap_or(path.len()),
        lines,
    })
}

/// Parses a response head at the start of `buf`: the head and its length, or `None` while
/// it is incomplete. Names and values are spans of `buf`, not copies.
pub fn parse_response(buf: &Bytes) -> Result<Option<(Response, usize)>, BadHead> {
    // Uninitialised slots, as for requests (256 zeroed ones are 8 KiB).
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(bad(e)),
    };
    let code = resp.code.ok_or_else(|| bad("no status"))?;
    let status = StatusCode::from_u16(code).map_err(|_| bad("bad status"))?;
    // Only the head: the body's bytes that came with it are not kept by the head's spans.
    let mut lines = Lines::with_capacity(buf.slice(..len), resp.headers.len() + ROOM);
    for h in resp.headers.iter() {
        lines.push_span(h.name.as_bytes(), h.value);
    }
    let reason = resp
        .reason
        .filter(|r| Some(*r) != status.canonical_reason())
        .map(|r| lines.span(r.as_bytes()));
    let out = Response {
        status,
        version: version(resp.version),
        reason,
        lines,
    };
    Ok(Some((out, len)))
}

/// The request's body framing: `None` unless it is a single plain Content-Length or none
/// (chunked and other transfer codings are left to Pingora's pipeline).
pub fn request_framing(req: &Request) -> Option<Framing> {
    if req.lines.contains("transfer-encoding") {
        return None;
    }
    let mut lengths = req.lines.get_all("content-length");
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
fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Whether a message's body is chunked: its last transfer coding is `chunked`.
pub fn chunked(fields: &impl Fields) -> bool {
    fields
        .get("transfer-encoding")
        .and_then(|te| te.rsplit(|b| *b == b',').next())
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// The response's body framing (RFC 9112 6.3). A response with both Transfer-Encoding and
/// Content-Length loses the latter, as Pingora does.
pub fn response_framing(resp: &mut Response, head_request: bool) -> Result<Framing, BadHead> {
    let status = resp.status.as_u16();
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    if resp.lines.contains("transfer-encoding") {
        resp.lines.remove("content-length");
        return Ok(if chunked(&resp.lines) {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut lengths = resp.lines.get_all("content-length");
    if let Some(v) = lengths.next() {
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
pub fn response_to_wire(resp: &Response, extra: &[(&str, &[u8])], out: &mut impl BufMut) {
    out.put_slice(match resp.version {
        Version::HTTP_10 => b"HTTP/1.0 ",
        _ => b"HTTP/1.1 ",
    });
    out.put_slice(resp.status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(resp.reason());
    out.put_slice(b"\r\n");
    for (name, value) in resp.lines.iter() {
        put_header_line(out, name, value);
    }
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
            b"POST /v1/chat?x=%20 HTTP/1.1\r\nX-Mixed-Case: v\r\nempty:\r\n\r\n",
        ))
        .expect("parses");
        assert_eq!(req.method, http::Method::POST);
        assert_eq!(req.target(), b"/v1/chat?x=%20");
        assert_eq!(req.path(), "/v1/chat");
        assert_eq!(req.version, Version::HTTP_11);
        let lines: Vec<(&[u8], &[u8])> = req.lines.iter().collect();
        assert_eq!(lines, [(&b"X-Mixed-Case"[..], &b"v"[..]), (b"empty", b"")]);
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
            let mut l = Lines::default();
            l.append("Transfer-Encoding", v);
            chunked(&l)
        };
        assert!(te("chunked") && te("Chunked") && te("gzip, chunked") && te("gzip,chunked "));
        assert!(!te("chunked, gzip") && !te("gzip"));
        assert!(!chunked(&Lines::default()));
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let framing = |h: &[u8], head: bool| {
            let (mut r, _) = parse_response(&bytes(h))
                .expect("parses")
                .expect("complete");
            response_framing(&mut r, head).map(|f| (f, r.lines.contains("content-length")))
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
        let mut with_body = raw.to_vec();
        with_body.extend_from_slice(b"data: body\n\n");
        let (resp, len) = parse_response(&bytes(&with_body))
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

    #[test]
    fn reason_phrases_go_out_as_they_came_or_standard() {
        let wire = |raw: &[u8]| {
            let (resp, _) = parse_response(&bytes(raw))
                .expect("parses")
                .expect("complete");
            let mut out = BytesMut::new();
            response_to_wire(&resp, &[], &mut out);
            out
        };
        assert_eq!(
            &wire(b"HTTP/1.0 404 \r\n\r\n")[..],
            b"HTTP/1.0 404 \r\n\r\n"
        );
        assert_eq!(
            &wire(b"HTTP/1.1 200 OK\r\n\r\n")[..],
            b"HTTP/1.1 200 OK\r\n\r\n"
        );
        let mut own = Response::new(429, 1).expect("status");
        own.lines.append("retry-after", "1");
        let mut out = BytesMut::new();
        response_to_wire(&own, &[], &mut out);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\n\r\n"
        );
        assert!(Response::new(1000, 0).is_err());
    }

    proptest::proptest! {
        /// A response head goes out byte for byte as it came, whatever its status, reason
        /// and lines, and the bytes after it are not part of it.
        #[test]
        fn response_heads_round_trip(
            status in 200u16..600,
            reason in "([A-Za-z][A-Za-z ]{0,12})?",
            lines in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,10}", "[!-~]([ -~]{0,10}[!-~])?"), 0..8),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..20),
        ) {
            let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
            for (n, v) in &lines {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let mut wire = head.clone().into_bytes();
            wire.extend_from_slice(&body);
            let (resp, len) = parse_response(&bytes(&wire)).expect("parses").expect("complete");
            proptest::prop_assert_eq!(len, head.len());
            proptest::prop_assert_eq!(resp.lines.len(), lines.len());
            let mut out = BytesMut::new();
            response_to_wire(&resp, &[], &mut out);
            proptest::prop_assert_eq!(&out[..], head.as_bytes());
        }
    }
}
