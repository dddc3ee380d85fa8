//! The request a probe sends: the URL's target, and the headers a browser's EventSource or an
//! SDK sends, with the user's over them.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Uri};

use super::error::ProbeError;
use super::ProbeArgs;
use crate::files;

/// Where a probe goes, from its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// `https`.
    pub tls: bool,
    /// Host name or IP (no brackets), for DNS and TLS SNI.
    pub host: String,
    /// Port, from the URL or the scheme.
    pub port: u16,
    /// `Host` header value.
    pub authority: String,
    /// Path and query.
    pub path: String,
}

impl Target {
    /// Parses an `http://` or `https://` URL.
    pub fn parse(url: &str) -> Result<Target, ProbeError> {
        let bad = |why: &str| ProbeError::Input(format!("URL {url:?}: {why}"));
        let uri: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
        let tls = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) => return Err(bad(&format!("scheme {s} is not http or https"))),
            None => return Err(bad("needs http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "credentials in the URL are not sent; use -H 'Authorization: ...'",
            ));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target {
            url: url.to_owned(),
            tls,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            authority: authority.as_str().to_owned(),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        })
    }
}

/// One request to probe with.
#[derive(Clone, Debug)]
pub struct ProbeRequest {
    /// Where.
    pub target: Target,
    /// Method.
    pub method: Method,
    /// Headers in order, defaults included.
    pub headers: Vec<(String, String)>,
    /// Body, if any.
    pub body: Option<Bytes>,
    /// Deadline for everything, from resolving to the body's end.
    pub timeout: Duration,
    /// Skip TLS certificate verification.
    pub insecure: bool,
}

/// Builds the request for `url` from the arguments: the defaults a browser's EventSource or
/// an SDK sends, then the user's headers over them.
pub fn build_request(args: &ProbeArgs, url: &str) -> Result<ProbeRequest, ProbeError> {
    let target = Target::parse(url)?;
    let body = args.data.as_deref().map(read_body).transpose()?;
    let method = match &args.method {
        Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| ProbeError::Input(format!("-X {m}: not an HTTP method")))?,
        None if body.is_some() => Method::POST,
        None => Method::GET,
    };
    if args.timeout.is_zero() {
        return Err(ProbeError::Input(
            "--timeout must be more than 0".to_owned(),
        ));
    }
    let mut headers: Vec<(String, String)> = vec![
        ("Host".into(), target.authority.clone()),
        ("Accept".into(), "text/event-stream".into()),
        // Offered like browsers do, so that a compressing hop shows; both can be decoded.
        ("Accept-Encoding".into(), "gzip, br".into()),
        (
            "User-Agent".into(),
            concat!("ssegate-probe/", env!("CARGO_PKG_VERSION")).into(),
        ),
    ];
    if body.is_some() {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    let mut replaced: Vec<String> = Vec::new();
    for raw in &args.headers {
        let (name, value) = parse_header(raw)?;
        let lower = name.to_ascii_lowercase();
        if !replaced.contains(&lower) {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
            replaced.push(lower);
        }
        if let Some(value) = value {
            headers.push((name, value));
        }
    }
    if let Some(b) = &body {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
        headers.push(("Content-Length".into(), b.len().to_string()));
    }
    Ok(ProbeRequest {
        target,
        method,
        headers,
        body,
        timeout: args.timeout,
        insecure: args.insecure,
    })
}

/// `Name: value` → (name, Some(value)); `Name:` → (name, None), which drops the header.
pub fn parse_header(raw: &str) -> Result<(String, Option<String>), ProbeError> {
    let bad = |why: &str| ProbeError::Input(format!("-H {raw:?}: {why}"));
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| bad("expected `Name: value`"))?;
    let name = name.trim();
    http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("invalid header name"))?;
    let value = value.trim();
    if value.is_empty() {
        return Ok((name.to_owned(), None));
    }
    http::HeaderValue::from_str(value).map_err(|_| bad("invalid header value"))?;
    Ok((name.to_owned(), Some(value.to_owned())))
}

fn read_body(data: &str) -> Result<Bytes, ProbeError> {
    match data.strip_prefix('@') {
        None => Ok(Bytes::copy_from_slice(data.as_bytes())),
        Some("-") => {
            let buf = files::read_limited(std::io::stdin(), files::MAX_BODY)
                .map_err(|e| ProbeError::Input(format!("-d @-: reading standard input: {e}")))?;
            Ok(buf.into())
        }
        Some(path) => files::read(Path::new(path), files::MAX_BODY)
            .map(Bytes::from)
            .map_err(|e| ProbeError::Input(format!("-d @{path}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_path() {
        let t = Target::parse("https://api.example.com/v1/chat?x=1").unwrap();
        assert!(t.tls);
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("api.example.com", 443, "/v1/chat?x=1")
        );
        let t = Target::parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8080, "/")
        );
        assert_eq!(t.authority, "[::1]:8080");
        assert_eq!(Target::parse("HTTP://h").unwrap().port, 80);
        for bad in [
            "ftp://h/",
            "/just/a/path",
            "h:80",
            "http://u:p@h/",
            "http://",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(ProbeError::Input(_))),
                "{bad}"
            );
        }
    }

    fn args(extra: &[&str]) -> ProbeArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            probe: ProbeArgs,
        }
        let mut argv = vec!["probe", "http://h:1/p"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().probe
    }

    fn header<'a>(r: &'a ProbeRequest, name: &str) -> Vec<&'a str> {
        r.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn defaults_are_what_a_browser_or_sdk_sends() {
        let a = args(&[]);
        let r = build_request(&a, &a.url).unwrap();
        assert_eq!(r.method, Method::GET);
        assert_eq!(header(&r, "accept"), ["text/event-stream"]);
        assert_eq!(header(&r, "host"), ["h:1"]);
        assert!(header(&r, "content-type").is_empty());
        assert_eq!(r.timeout, Duration::from_secs(120));

        let a = args(&["-d", "{}", "--timeout", "5s"]);
        let r = build_request(&a, &a.url).unwrap();
        assert_eq!(r.method, Method::POST);
        assert_eq!(header(&r, "content-type"), ["application/json"]);
        assert_eq!(header(&r, "content-length"), ["2"]);
        assert_eq!(r.timeout, Duration::from_secs(5));
    }

    #[test]
    fn user_headers_replace_or_drop_defaults() {
        let a = args(&[
            "-X",
            "put",
            "-d",
            "x",
            "-H",
            "Accept: application/x-ndjson",
            "-H",
            "accept-encoding:",
            "-H",
            "X-A: 1",
            "-H",
            "X-A: 2",
            "-H",
            "content-type: text/plain",
        ]);
        let r = build_request(&a, &a.url).unwrap();
        assert_eq!(r.method, Method::PUT);
        assert_eq!(header(&r, "accept"), ["application/x-ndjson"]);
        assert!(header(&r, "accept-encoding").is_empty());
        assert_eq!(header(&r, "x-a"), ["1", "2"]);
        assert_eq!(header(&r, "content-type"), ["text/plain"]);
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        for extra in [
            &["-H", "no colon"][..],
            &["-H", "bad name: x"],
            &["-d", "@/nonexistent/body.json"],
            &["-X", "GE T"],
            &["--timeout", "0s"],
        ] {
            let a = args(extra);
            let e = build_request(&a, &a.url).unwrap_err();
            assert_eq!(e.exit_code(), 1, "{extra:?}: {e}");
        }
    }

    #[test]
    fn a_body_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("body.json");
        std::fs::write(&path, b"{\"stream\":true}").unwrap();
        let a = args(&["-d", &format!("@{}", path.display())]);
        let r = build_request(&a, &a.url).unwrap();
        assert_eq!(r.body.as_deref(), Some(&b"{\"stream\":true}"[..]));
    }
}
