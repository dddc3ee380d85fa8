//! Output of a probe: live event lines, the summary, the verdict, `--compare`'s side-by-side
//! table, and the JSON document.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use super::error::ProbeError;
use super::fetch::Exchange;
use super::hops::{compare, HeaderNote, Side};
use super::timeline::EventRecord;
use super::verdict::{end_marker_name, human, longest_gap, BodyEnd, Kind, Verdict};
use crate::dialect::Dialect;

/// A judged response.
pub struct Judged {
    /// The exchange.
    pub exchange: Exchange,
    /// Its verdict.
    pub verdict: Verdict,
    /// Notes on the headers that matter for streaming.
    pub notes: Vec<HeaderNote>,
}

/// How one probe came out.
pub struct Outcome {
    /// The URL probed.
    pub url: String,
    /// The method used.
    pub method: String,
    /// A judged response, or why there is none.
    pub result: Result<Judged, ProbeError>,
}

impl Outcome {
    /// The exit code of this probe alone.
    pub fn exit_code(&self) -> i32 {
        match &self.result {
            Ok(j) => j.verdict.kind().exit_code(),
            Err(e) => e.exit_code(),
        }
    }

    /// This probe as one side of `--compare`.
    pub fn side(&self) -> Side {
        match &self.result {
            Ok(j) => Side::Judged(j.verdict.kind()),
            Err(e) => Side::Failed(e.class()),
        }
    }
}

/// The column heads of the live event lines.
pub fn event_heads(label: &str) -> String {
    format!("{label}{:>9}  {:>9}  {:<14} text", "time", "gap", "event")
}

/// The line printed when the response header arrives.
pub fn head_line(label: &str, status: u16, at: Duration) -> String {
    format!("{label}HTTP {status} after {}", human(at))
}

/// The line printed for each event as it arrives.
pub fn event_line(label: &str, e: &EventRecord) -> String {
    let mut line = format!(
        "{label}{:>9}  {:>9}  {:<14} {}",
        human(e.at),
        format!("+{}", human(e.gap)),
        e.event_type,
        e.preview
    );
    if e.end {
        line.push_str("  <- end marker");
    }
    if e.error {
        line.push_str("  <- error");
    }
    if let (Some(i), Some(o)) = e.tokens {
        let _ = write!(line, "  (usage: {i} in, {o} out)");
    } else if let (None, Some(o)) = e.tokens {
        let _ = write!(line, "  (usage: {o} out)");
    }
    line
}

fn opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), human)
}

/// The summary rows of a judged response: (name, value, warning).
pub fn rows(j: &Judged) -> Vec<(String, String, Option<&'static str>)> {
    let ex = &j.exchange;
    let tl = &ex.timeline;
    let arrivals = tl.arrivals();
    let reason = http::StatusCode::from_u16(ex.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut rows = vec![("status".to_owned(), format!("{} {reason}", ex.status), None)];
    for n in &j.notes {
        let value = n.value.clone().unwrap_or_else(|| "-".to_owned());
        rows.push((n.name.to_owned(), value, n.warning));
    }
    let tokens = match (tl.input_tokens, tl.output_tokens) {
        (None, None) => "- (no usage block)".to_owned(),
        (i, o) => format!(
            "{} in / {} out",
            i.map_or("-".to_owned(), |n| n.to_string()),
            o.map_or("-".to_owned(), |n| n.to_string())
        ),
    };
    let end_marker = match (tl.end_marker, tl.dialect) {
        (true, _) => "seen".to_owned(),
        (false, Dialect::Unknown) => "none expected (dialect unknown)".to_owned(),
        (false, d) => format!("NOT seen ({} expected)", end_marker_name(d)),
    };
    let body = match &ex.end {
        BodyEnd::Finished => "ended by the server".to_owned(),
        BodyEnd::StoppedAfterEndMarker => format!(
            "still open {} after the end marker; stopped reading",
            human(super::fetch::END_GRACE)
        ),
        BodyEnd::TimedOut(t) => format!("cut by --timeout {}", human(*t)),
        BodyEnd::Broken(e) => format!("broken: {e}"),
    };
    let mut bytes = format!("{} in {} chunks", tl.bytes, tl.chunks);
    if tl.decoded_bytes != tl.bytes {
        let _ = write!(bytes, " ({} decoded)", tl.decoded_bytes);
    }
    let dialect = match tl.dialect {
        Dialect::Unknown => String::new(),
        d => format!(" ({})", d.as_str()),
    };
    rows.extend([
        ("address".to_owned(), ex.addr.to_string(), None),
        ("connect".to_owned(), human(ex.connect), None),
        ("ttfb".to_owned(), human(ex.head_at), None),
        (
            "first event".to_owned(),
            opt(arrivals.first().copied()),
            None,
        ),
        ("first token".to_owned(), opt(tl.first_token), None),
        (
            "events".to_owned(),
            format!("{}{dialect}", arrivals.len()),
            None,
        ),
        ("output chars".to_owned(), tl.output_chars.to_string(), None),
        ("tokens".to_owned(), tokens, None),
        ("end marker".to_owned(), end_marker, None),
        ("body".to_owned(), body, None),
        ("bytes".to_owned(), bytes, None),
        ("duration".to_owned(), human(ex.duration), None),
        (
            "longest gap".to_owned(),
            human(longest_gap(&arrivals)),
            None,
        ),
    ]);
    rows
}

/// The summary and verdict of one probe, as text.
pub fn text(o: &Outcome) -> String {
    let mut out = String::new();
    match &o.result {
        Err(e) => {
            let _ = writeln!(out, "{} {}: {e}", o.method, o.url);
        }
        Ok(j) => {
            let _ = writeln!(out, "\n{} {}", o.method, o.url);
            for (name, value, warning) in rows(j) {
                let _ = match warning {
                    Some(w) => writeln!(out, "  {name:<18} {value:<24} ! {w}"),
                    None => writeln!(out, "  {name:<18} {value}"),
                };
            }
            out.push('\n');
            out.push_str(&verdict_text(&j.verdict));
        }
    }
    out
}

fn verdict_text(v: &Verdict) -> String {
    let mut out = format!("verdict: {} — {}\n", v.kind().as_str(), v.evidence());
    for f in v.findings.iter().skip(1) {
        let _ = writeln!(out, "   also: {} — {}", f.kind.as_str(), f.evidence);
    }
    out
}

/// `--compare`: both summaries side by side, both verdicts, and where streaming is lost.
pub fn compare_text(a: &Outcome, b: &Outcome) -> String {
    let cells = |o: &Outcome| -> Vec<(String, String)> {
        match &o.result {
            Ok(j) => rows(j)
                .into_iter()
                .map(|(n, v, w)| (n, if w.is_some() { format!("{v} (!)") } else { v }))
                .collect(),
            Err(e) => vec![("error".to_owned(), e.class().to_owned())],
        }
    };
    let (ca, cb) = (cells(a), cells(b));
    let width = ca
        .iter()
        .map(|(_, v)| v.chars().count())
        .chain([a.url.chars().count()])
        .max()
        .unwrap_or(0)
        + 2;
    let mut out = format!("\n  {:<18} {:<width$} {}\n", "", "1", "2");
    let _ = writeln!(out, "  {:<18} {:<width$} {}", "url", a.url, b.url);
    let names: Vec<&String> = if ca.len() >= cb.len() {
        ca.iter().map(|(n, _)| n).collect()
    } else {
        cb.iter().map(|(n, _)| n).collect()
    };
    let find = |cells: &[(String, String)], name: &str| {
        cells
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
            .to_owned()
    };
    for name in names {
        let _ = writeln!(
            out,
            "  {name:<18} {:<width$} {}",
            find(&ca, name),
            find(&cb, name)
        );
    }
    out.push('\n');
    for (i, o) in [a, b].iter().enumerate() {
        let _ = match &o.result {
            Ok(j) => write!(out, "{}: {}", i + 1, verdict_text(&j.verdict)),
            Err(e) => writeln!(out, "{}: error — {e}", i + 1),
        };
    }
    let (conclusion, _) = compare(&a.url, &a.side(), &b.url, &b.side());
    let _ = writeln!(out, "\n{conclusion}");
    out
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

fn ms_opt(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(ms(d)))
}

/// One probe as JSON (fields documented in `probe`).
pub fn json(o: &Outcome) -> Value {
    let mut v = json!({
        "url": o.url,
        "method": o.method,
        "exit_code": o.exit_code(),
        "verdict": Value::Null,
        "evidence": Value::Null,
        "findings": [],
        "error": Value::Null,
    });
    match &o.result {
        Err(e) => {
            v["error"] = json!({ "class": e.class(), "message": e.to_string() });
            if let ProbeError::Status { status, body, .. } = e {
                v["status"] = json!(status);
                v["error"]["body"] = json!(body);
            }
        }
        Ok(j) => {
            let ex = &j.exchange;
            let tl = &ex.timeline;
            let arrivals = tl.arrivals();
            let kind: Kind = j.verdict.kind();
            v["verdict"] = json!(kind.id());
            v["evidence"] = json!(j.verdict.evidence());
            v["findings"] = j
                .verdict
                .findings
                .iter()
                .map(|f| json!({ "verdict": f.kind.id(), "evidence": f.evidence }))
                .collect();
            v["status"] = json!(ex.status);
            v["address"] = json!(ex.addr.to_string());
            v["headers"] = j
                .notes
                .iter()
                .map(|n| json!({ "name": n.name, "value": n.value, "warning": n.warning }))
                .collect();
            v["timing_ms"] = json!({
                "connect": ms(ex.connect),
                "ttfb": ms(ex.head_at),
                "first_byte": ms_opt(tl.first_byte),
                "first_event": ms_opt(arrivals.first().copied()),
                "first_token": ms_opt(tl.first_token),
                "duration": ms(ex.duration),
                "longest_gap": ms(longest_gap(&arrivals)),
            });
            v["events"] = json!(arrivals.len());
            v["chunks"] = json!(tl.chunks);
            v["bytes"] = json!(tl.bytes);
            v["decoded_bytes"] = json!(tl.decoded_bytes);
            v["output_chars"] = json!(tl.output_chars);
            v["tokens"] = json!({ "input": tl.input_tokens, "output": tl.output_tokens });
            v["dialect"] = json!(tl.dialect.as_str());
            v["end_marker"] = json!(tl.end_marker);
            v["end"] = match &ex.end {
                BodyEnd::Finished => json!("finished"),
                BodyEnd::StoppedAfterEndMarker => json!("stopped_after_end_marker"),
                BodyEnd::TimedOut(_) => json!("timed_out"),
                BodyEnd::Broken(_) => json!("broken"),
            };
            if let BodyEnd::Broken(e) = &ex.end {
                v["end_error"] = json!(e);
            }
            v["decode_error"] = json!(tl.decode_error);
            v["event_log"] = tl
                .events
                .iter()
                .map(|e| {
                    json!({
                        "at_ms": ms(e.at),
                        "gap_ms": ms(e.gap),
                        "type": e.event_type,
                        "preview": e.preview,
                        "chars": e.text_chars,
                        "end": e.end,
                        "error": e.error,
                    })
                })
                .collect();
        }
    }
    v
}

/// `--compare` as JSON.
pub fn compare_json(a: &Outcome, b: &Outcome, exit_code: i32) -> Value {
    let (conclusion, lost_at) = compare(&a.url, &a.side(), &b.url, &b.side());
    json!({
        "probes": [json(a), json(b)],
        "conclusion": conclusion,
        "lost_at": lost_at,
        "exit_code": exit_code,
    })
}
