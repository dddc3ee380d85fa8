//! The headers that matter for streaming, and `--compare`'s conclusion: which hop loses it.

use super::verdict::Kind;
use crate::sse::Framing;

/// One of the response headers that matter for streaming, with what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderNote {
    /// Header name.
    pub name: &'static str,
    /// Its value (several joined with `, `), if present.
    pub value: Option<String>,
    /// What is wrong with it for a stream, if anything.
    pub warning: Option<&'static str>,
}

/// The headers that matter for streaming, in the order they are reported.
pub const STREAM_HEADERS: [&str; 6] = [
    "Content-Type",
    "Cache-Control",
    "X-Accel-Buffering",
    "Content-Encoding",
    "Transfer-Encoding",
    "Content-Length",
];

/// Notes each of `STREAM_HEADERS`, given how to look a header up.
pub fn header_notes(get: impl Fn(&str) -> Option<String>) -> Vec<HeaderNote> {
    STREAM_HEADERS
        .iter()
        .map(|&name| {
            let value = get(name);
            let warning = header_warning(name, value.as_deref());
            HeaderNote {
                name,
                value,
                warning,
            }
        })
        .collect()
}

fn header_warning(name: &str, value: Option<&str>) -> Option<&'static str> {
    let lower = value.map(str::to_ascii_lowercase);
    let v = lower.as_deref();
    match name {
        "Content-Type" => match v {
            None => Some("missing: a stream is text/event-stream"),
            Some(ct) if Framing::from_content_type(ct).is_none() => {
                Some("not a stream type: EventSource and proxies treat it as a plain response")
            }
            _ => None,
        },
        "Cache-Control" => match v {
            None => Some("missing: send no-cache so that no cache or CDN holds the stream"),
            Some(cc) if !cc.contains("no-cache") && !cc.contains("no-store") => {
                Some("lets caches keep the response: send no-cache")
            }
            _ => None,
        },
        "X-Accel-Buffering" => match v {
            None => Some(
                "missing: an nginx in front buffers unless it says no (or proxy_buffering off)",
            ),
            Some(x) if x.trim() != "no" => Some("nginx buffers the response: send no"),
            _ => None,
        },
        "Content-Encoding" => match v {
            Some(e) if e.trim() != "identity" => {
                Some("compressed: the compressor holds events until its block fills")
            }
            _ => None,
        },
        "Content-Length" => v.map(|_| "a length: the whole body existed before the headers left"),
        _ => None,
    }
}

/// How one side of `--compare` came out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Side {
    /// The probe got a verdict.
    Judged(Kind),
    /// The probe failed; the error class.
    Failed(&'static str),
}

/// `--compare`: where, between the first URL (closer to the app) and the second (through more
/// hops), streaming is lost. Returns the sentence and the URL of the hop it blames.
pub fn compare(a_url: &str, a: &Side, b_url: &str, b: &Side) -> (String, Option<String>) {
    let show = |s: &Side| match s {
        Side::Judged(k) => k.as_str().to_owned(),
        Side::Failed(e) => format!("failed ({e})"),
    };
    let head = format!("{a_url}: {}; {b_url}: {}", show(a), show(b));
    match (a, b) {
        (Side::Judged(Kind::Streamed), Side::Judged(Kind::Streamed)) => {
            (format!("{head} — both stream: no hop between them holds the stream"), None)
        }
        (Side::Judged(Kind::Streamed), Side::Failed(e)) => (
            format!("{head} — {a_url} streams but {b_url} fails ({e}): the hop(s) that {b_url} adds fail"),
            Some(b_url.to_owned()),
        ),
        (Side::Judged(Kind::Streamed), Side::Judged(k)) => {
            let what = match k {
                Kind::Buffered => "buffer the stream",
                Kind::Compressed => "compress the stream",
                Kind::Incomplete => "cut the stream short",
                Kind::NotAStream | Kind::Streamed => "turn it into something that is not a stream",
            };
            (
                format!(
                    "{head} — streaming is lost in the hop(s) that {b_url} adds in front of {a_url}: they {what}"
                ),
                Some(b_url.to_owned()),
            )
        }
        (Side::Judged(k), _) => (
            format!(
                "{head} — the stream is already {} at {a_url}: the app (or a hop behind it) is the first to lose streaming",
                k.as_str()
            ),
            Some(a_url.to_owned()),
        ),
        (Side::Failed(_), _) => (
            format!("{head} — {a_url} could not be probed, so the hops can't be compared"),
            None,
        ),
    }
}
