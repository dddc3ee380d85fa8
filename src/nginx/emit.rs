//! Writes a [`Plan`] as ssegate YAML: the notes in a header, each entry
//! with a comment that points back to its nginx line, and what is not
//! translated as comments where it would have been.

use std::fmt::Write as _;
use std::path::Path;

use super::parse::one_line;
use super::routes::{RouteOut, State};
use super::translate::Plan;
use super::upstreams::{Balance, Kind, UpstreamOut};

/// Column trailing comments start at.
const COMMENT_COLUMN: usize = 38;
/// Heartbeat suggested in a comment for stream routes (never switched on).
const HEARTBEAT: &str = "15s";
/// Idle timeout of a stream route whose location set no proxy_read_timeout.
const DEFAULT_IDLE: &str = "600s";

/// The YAML for `plan`; `source` names the nginx file in the header, and
/// positions in comments are relative to `base` (the nginx file's directory).
pub fn emit(plan: &Plan, source: &str, base: &Path) -> String {
    let pos = |file: &Path, line: usize| {
        format!(
            "{}:{line}",
            file.strip_prefix(base).unwrap_or(file).display()
        )
    };
    let mut out = Lines::default();
    out.raw(&format!(
        "# ssegate config translated from {source} by `ssegate convert-nginx`."
    ));
    out.raw("# Check it with `ssegate check -c FILE`. Relative TLS paths are read from this");
    out.raw("# file's directory, as nginx read them from its own: keep the two side by side.");
    if !plan.notes.is_empty() {
        out.raw("#");
        out.raw("# Not translated (also printed on stderr):");
        for n in &plan.notes {
            out.raw(&format!("#   {}: {}", pos(&n.file, n.line), n.message));
        }
    }

    out.raw("");
    out.raw("listen:");
    for l in &plan.listeners {
        let origin = pos(&l.origin.0, l.origin.1);
        let why = match l.what.as_str() {
            "server" => format!("{origin}: server without listen: nginx's default *:80"),
            what => format!("{origin}: {what}"),
        };
        out.line(&format!("  - addr: {}", scalar(&l.addr.to_string())), &why);
        if let Some((cert, key)) = &l.tls {
            out.raw(&format!(
                "    tls: {{ cert: {}, key: {} }}",
                scalar(cert),
                scalar(key)
            ));
        }
    }

    out.raw("");
    out.raw("admin:");
    out.line(
        &format!("  addr: {}", plan.admin),
        "/metrics /healthz /streams",
    );

    if let Some(t) = &plan.header_timeout {
        out.raw("");
        out.line(
            &format!("header_timeout: {}", scalar(&t.value.text)),
            &format!("{}: client_header_timeout", pos(&t.origin.0, t.origin.1)),
        );
    }

    out.raw("");
    out.raw("upstreams:");
    for u in &plan.upstreams {
        upstream(&mut out, u, &pos);
    }

    out.raw("");
    out.raw("routes:");
    for r in &plan.routes {
        route(&mut out, r, &pos(&r.origin.0, r.origin.1));
    }
    out.text
}

fn upstream(out: &mut Lines, u: &UpstreamOut, pos: &dyn Fn(&Path, usize) -> String) {
    let origin = match &u.kind {
        Kind::Block(f, l) => format!("{}: upstream {}", pos(f, *l), u.name),
        Kind::Generated(f, l) => format!("{}: from proxy_pass", pos(f, *l)),
        Kind::FailClosed => "answers 502: for access control that is not translated".to_string(),
    };
    if u.servers.is_empty() {
        out.raw(&format!(
            "  # {}: {origin} has no server ssegate can use",
            scalar(&u.name)
        ));
        return;
    }
    out.line(&format!("  {}:", scalar(&u.name)), &origin);
    let servers: Vec<String> = u.servers.iter().map(|s| quoted(s)).collect();
    out.raw(&format!("    servers: [{}]", servers.join(", ")));
    match u.balance {
        Some(Balance::LeastStreams) => out.line("    balance: least_streams", "least_conn"),
        Some(Balance::RoundRobin { why }) => out.line("    balance: round_robin", why),
        None => {}
    }
    if let Some(t) = &u.connect_timeout {
        out.line(
            &format!("    connect_timeout: {}", t.text),
            "the longest proxy_connect_timeout of its locations",
        );
    }
}

fn route(out: &mut Lines, r: &RouteOut, origin: &str) {
    let body = |out: &mut Lines, prefix: &str| {
        if let Some(h) = &r.host {
            out.raw(&format!("{prefix}  host: {}", scalar(h)));
        }
        if let Some(u) = &r.upstream {
            out.raw(&format!("{prefix}  upstream: {}", scalar(u)));
        }
        if let Some(t) = &r.read_timeout {
            out.line(
                &format!("{prefix}  read_timeout: {}", t.text),
                "proxy_read_timeout",
            );
        }
        if let Some(s) = &r.stream {
            out.raw(&format!("{prefix}  stream:"));
            let (idle, why) = match &s.idle_timeout {
                Some(t) => (t.text.as_str(), "proxy_read_timeout"),
                None => (
                    DEFAULT_IDLE,
                    "no proxy_read_timeout in nginx (its default was 60s)",
                ),
            };
            out.line(&format!("{prefix}    idle_timeout: {idle}"), why);
            if !s.sse_headers {
                out.line(
                    &format!("{prefix}    sse_headers: false"),
                    "nginx set no SSE headers; true would relabel HTML responses as text/event-stream",
                );
            }
            if s.idle_timeout
                .as_ref()
                .is_none_or(|t| t.value.as_secs() > 15)
            {
                out.line(
                    &format!("{prefix}    # heartbeat: {HEARTBEAT}"),
                    "suggested: \": keep-alive\" after 15s of silence (nginx sent none)",
                );
            }
        }
    };
    match &r.state {
        State::Active => {
            out.line(
                &format!("  - path: {}", scalar(&r.path)),
                &format!("{origin}: {}", r.what),
            );
            body(out, "  ");
        }
        State::Disabled(why) => {
            out.raw(&format!("  # {origin}: {}: commented out: {why}", r.what));
            out.raw(&format!("  # - path: {}", scalar(&r.path)));
            body(out, "  # ");
        }
        State::Closing(why) => {
            out.line(
                &format!("  - path: {}", scalar(&r.path)),
                &format!("{origin}: {}: {why}", r.what),
            );
            body(out, "  ");
        }
        State::Skipped(why) => out.raw(&format!("  # {origin}: {}: {why}", r.what)),
    }
}

/// YAML text built line by line.
#[derive(Default)]
struct Lines {
    text: String,
}

impl Lines {
    /// A line as it is; a line break inside it (from a config value in a
    /// comment) is escaped, since it would end the comment.
    fn raw(&mut self, line: &str) {
        self.text.push_str(one_line(line).trim_end());
        self.text.push('\n');
    }

    /// A line with a trailing comment, aligned when it fits.
    fn line(&mut self, line: &str, comment: &str) {
        let pad = COMMENT_COLUMN.saturating_sub(line.chars().count()).max(1);
        self.raw(&format!("{line}{:pad$}# {comment}", ""));
    }
}

/// `s` as a YAML scalar: plain when that reads back as the same string, else double-quoted.
fn scalar(s: &str) -> String {
    let safe = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-' | ':'))
        && !s.starts_with(['-', ':', '.'])
        && !s.ends_with(':')
        && !s.contains("::")
        && s.parse::<f64>().is_err()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "" | "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    match safe {
        true => s.to_string(),
        false => quoted(s),
    }
}

/// `s` double-quoted with YAML escapes.
fn quoted(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04x}", u32::from(c));
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_back_as_strings() {
        for s in [
            "/api/",
            "backend",
            "127.0.0.1_8000",
            "0.0.0.0:80",
            "[::]:80",
            "8000",
            "1.5",
            "yes",
            "",
            "a b",
            "-x",
            "/a,b",
            "x:",
            "a\"b\\",
            "chat.example.com",
            "certs/server.crt",
            "::1",
        ] {
            let y = format!("k: {}\n", scalar(s));
            let v: std::collections::BTreeMap<String, String> = serde_yaml::from_str(&y).unwrap();
            assert_eq!(v.get("k").map(String::as_str), Some(s), "{y}");
        }
        assert_eq!(scalar("/api/"), "/api/");
        assert_eq!(scalar("[::]:80"), "\"[::]:80\"");
        assert_eq!(scalar("8000"), "\"8000\"");
    }

    #[test]
    fn comments_align() {
        let mut l = Lines::default();
        l.line("  - addr: 0.0.0.0:80", "x");
        l.line(&"y".repeat(50), "z");
        assert_eq!(
            l.text,
            format!(
                "  - addr: 0.0.0.0:80{}# x\n{} # z\n",
                " ".repeat(18),
                "y".repeat(50)
            )
        );
    }
}
