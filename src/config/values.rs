//! Parsers for the scalar values of the config file. Each returns a message
//! that quotes the bad value and says what is expected instead.

use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

/// Methods that are usually meant when written in lowercase.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// A duration such as `250ms`, `15s`, `5m`, `1h`; zero allowed.
pub fn duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!(
            "invalid duration \"{text}\": it cannot be negative"
        ));
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "invalid duration \"{text}\": a unit is needed, e.g. {t}s or {t}ms"
        ));
    }
    let d = humantime::parse_duration(t)
        .map_err(|e| format!("invalid duration \"{text}\": {e} (write e.g. 250ms, 15s, 5m, 1h)"))?;
    // `now + d` panics past the range of `Instant` (about 292 billion years, within reach
    // of humantime): every timer deadline is computed that way.
    if d > MAX_DURATION {
        return Err(format!("invalid duration \"{text}\": at most 100 years"));
    }
    Ok(d)
}

/// The longest duration accepted: 100 years of 365.25 days, as humantime counts them.
const MAX_DURATION: Duration = Duration::from_secs(3_155_760_000);

/// A duration that must be above zero (timeouts, intervals, heartbeat).
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    if d.is_zero() {
        return Err(format!(
            "invalid duration \"{text}\": it must be above zero"
        ));
    }
    Ok(d)
}

/// A socket address to listen on, `IP:port` (`[::]:8080` for IPv6).
pub fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text.trim().parse().map_err(|_| {
        format!("invalid address \"{text}\": expected IP:port, e.g. 0.0.0.0:8080 or [::]:8080")
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "invalid address \"{text}\": port 0 is not a fixed port"
        ));
    }
    Ok(addr)
}

/// An upstream server `host:port`; the host is checked for syntax only,
/// never resolved (container hostnames may not exist yet).
pub fn server(text: &str) -> Result<String, String> {
    let t = text.trim();
    let bad = |why: &str| format!("invalid server \"{text}\": {why}");
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let (ip, port) = rest
            .split_once("]:")
            .ok_or_else(|| bad("expected [IPv6]:port"))?;
        ip.parse::<Ipv6Addr>()
            .map_err(|_| bad("not an IPv6 address between the brackets"))?;
        (None, port)
    } else {
        let (host, port) = t
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port, e.g. 127.0.0.1:8000 or backend:8000"))?;
        if host.contains(':') {
            return Err(bad("an IPv6 address needs brackets: [::1]:8000"));
        }
        (Some(host), port)
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        if !hostname_ok(host) {
            return Err(bad(
                "the host may hold only letters, digits, '-', '_' and '.'",
            ));
        }
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(t.to_string()),
        _ => Err(bad("the port must be a number from 1 to 65535")),
    }
}

/// Whether `host` is a plausible DNS name or IPv4 address.
fn hostname_ok(host: &str) -> bool {
    host.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// A CIDR such as `10.0.0.0/8`; a bare address means that address alone.
pub fn cidr(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    match t.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(IpNet::from(ip)),
        Err(_) => Err(format!(
            "invalid CIDR \"{text}\": expected e.g. 10.0.0.0/8, fd00::/8 or 192.0.2.7"
        )),
    }
}

/// A route path prefix: starts with `/`, no query, fragment, space or control.
pub fn route_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!("invalid path \"{text}\": it must start with '/'"));
    }
    if let Some(c) = text.chars().find(|c| matches!(c, '?' | '#')) {
        return Err(format!(
            "invalid path \"{text}\": '{c}' never matches, routes match the path without query"
        ));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "invalid path \"{text}\": it holds a space or control character"
        ));
    }
    Ok(text.to_string())
}

/// A request target for health checks and keep-warm: `/path`, query allowed.
pub fn request_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!("invalid path \"{text}\": it must start with '/'"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "invalid path \"{text}\": it holds a space or control character"
        ));
    }
    Ok(text.to_string())
}

/// A route host: lowercased, no port, IPv6 literals kept in brackets.
pub fn host(text: &str) -> Result<String, String> {
    let t = text.trim().to_ascii_lowercase();
    if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return match inner.parse::<Ipv6Addr>() {
            Ok(_) => Ok(t),
            Err(_) => Err(format!(
                "invalid host \"{text}\": not an IPv6 address between the brackets"
            )),
        };
    }
    if t.parse::<Ipv6Addr>().is_ok() {
        return Ok(format!("[{t}]"));
    }
    if t.contains(':') {
        return Err(format!(
            "invalid host \"{text}\": write it without port, the Host header is matched without its port"
        ));
    }
    let t = t.strip_suffix('.').unwrap_or(&t);
    if !hostname_ok(t) {
        return Err(format!(
            "invalid host \"{text}\": expected a host name such as chat.example.com (no wildcards)"
        ));
    }
    Ok(t.to_string())
}

/// An HTTP method: an RFC 9110 token; standard methods must be uppercase.
pub fn method(text: &str) -> Result<String, String> {
    const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~";
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || TCHAR.contains(&b))
    {
        return Err(format!(
            "invalid method \"{text}\": expected a token such as GET or POST"
        ));
    }
    let upper = text.to_ascii_uppercase();
    if upper != text && STANDARD_METHODS.contains(&upper.as_str()) {
        return Err(format!(
            "invalid method \"{text}\": methods are case-sensitive, write {upper}"
        ));
    }
    Ok(text.to_string())
}

/// A name (route name, upstream name): not empty, no control characters.
pub fn label(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("the name is empty".to_string());
    }
    if text.chars().any(char::is_control) {
        return Err(format!(
            "invalid name {text:?}: it holds a control character"
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        assert!(positive_duration("0s").unwrap_err().contains("above zero"));
        assert!(duration("-1s").unwrap_err().contains("negative"));
        assert!(duration("5").unwrap_err().contains("unit is needed"));
        assert!(duration("5x").unwrap_err().contains("\"5x\""));
        assert!(duration("").is_err());
        // Regression: such a timeout panicked every stream request (Instant overflow).
        assert!(duration("10000000000000000000s")
            .unwrap_err()
            .contains("at most 100 years"));
        assert_eq!(duration("100y"), Ok(Duration::from_secs(3_155_760_000)));
    }

    #[test]
    fn servers() {
        assert_eq!(server("127.0.0.1:8000").as_deref(), Ok("127.0.0.1:8000"));
        assert_eq!(server("backend:8000").as_deref(), Ok("backend:8000"));
        assert_eq!(server("[::1]:8000").as_deref(), Ok("[::1]:8000"));
        for bad in [
            "backend", ":80", "a:0", "a:99999", "a:x", "::1:80", "[::1]", "[zz]:80", "a b:80",
            "a..b:80",
        ] {
            assert!(server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_and_cidrs() {
        assert!(listen_addr("0.0.0.0:8080").is_ok());
        assert!(listen_addr("[::]:8443").is_ok());
        for bad in ["localhost:80", "0.0.0.0", "0.0.0.0:0", "1.2.3.4:70000"] {
            assert!(listen_addr(bad).is_err(), "{bad}");
        }
        assert_eq!(
            cidr("10.1.2.3/8").map(|n| n.to_string()).as_deref(),
            Ok("10.0.0.0/8")
        );
        assert_eq!(
            cidr("192.0.2.7").map(|n| n.to_string()).as_deref(),
            Ok("192.0.2.7/32")
        );
        assert_eq!(
            cidr("fd00::/8").map(|n| n.to_string()).as_deref(),
            Ok("fd00::/8")
        );
        assert!(cidr("10.0.0.0/33").is_err());
        assert!(cidr("ten").is_err());
    }

    #[test]
    fn paths_hosts_methods_names() {
        assert!(route_path("/api/").is_ok());
        for bad in ["api/", "", "/a?b", "/a#b", "/a b"] {
            assert!(route_path(bad).is_err(), "{bad}");
        }
        assert!(request_path("/healthz?full=1").is_ok());
        assert!(request_path("healthz").is_err());
        assert_eq!(host("Chat.Example.COM").as_deref(), Ok("chat.example.com"));
        assert_eq!(host("example.com.").as_deref(), Ok("example.com"));
        assert_eq!(host("::1").as_deref(), Ok("[::1]"));
        assert_eq!(host("[::1]").as_deref(), Ok("[::1]"));
        for bad in ["example.com:80", "*.example.com", "", "[::1]:80"] {
            assert!(host(bad).is_err(), "{bad}");
        }
        assert_eq!(method("POST").as_deref(), Ok("POST"));
        assert_eq!(method("PROPFIND").as_deref(), Ok("PROPFIND"));
        assert!(method("post").unwrap_err().contains("write POST"));
        assert!(method("GE T").is_err());
        assert!(method("").is_err());
        assert!(label("chat").is_ok());
        assert!(label(" ").is_err());
        assert!(label("a\nb").is_err());
    }
}
