//! nginx argument values turned into ssegate ones: durations, listen
//! addresses, upstream servers, `proxy_pass` URLs and server names. Each
//! refusal is a short reason that ends up in a note.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// A duration read from nginx and the text ssegate gets for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dur {
    /// The value.
    pub value: Duration,
    /// As written for ssegate (`600s`, `10m`, `250ms`).
    pub text: String,
}

/// Parses nginx time (`600`, `600s`, `10m`, `1h 30m`, `500ms`, `1d`); a bare
/// number is seconds. The unit written in nginx is kept when ssegate has it.
pub fn duration(text: &str) -> Option<Dur> {
    let t = text.trim();
    let mut total: u64 = 0;
    let mut parts = 0;
    let mut single = None;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let unit = ["ms", "s", "m", "h", "d", "w", "M", "y"]
            .into_iter()
            .find(|u| rest.starts_with(u))
            .unwrap_or("");
        let ms: u64 = match unit {
            "ms" => 1,
            "" | "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "M" => 30 * 86_400_000,
            _ => 365 * 86_400_000,
        };
        rest = rest.get(unit.len()..)?.trim_start();
        // A bare number is only allowed last, as in nginx.
        if unit.is_empty() && !rest.is_empty() {
            return None;
        }
        total = total.checked_add(n.checked_mul(ms)?)?;
        parts += 1;
        single = Some((n, if unit.is_empty() { "s" } else { unit }));
    }
    if parts == 0 {
        return None;
    }
    let text = match single {
        Some((n, unit)) if parts == 1 && matches!(unit, "ms" | "s" | "m" | "h") => {
            format!("{n}{unit}")
        }
        _ if total % 1000 != 0 => format!("{total}ms"),
        _ if total % 3_600_000 == 0 => format!("{}h", total / 3_600_000),
        _ if total % 60_000 == 0 => format!("{}m", total / 60_000),
        _ => format!("{}s", total / 1000),
    };
    Some(Dur {
        value: Duration::from_millis(total),
        text,
    })
}

/// A translated `listen` address, with a caveat when it is not exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Why the address is only close to nginx's, if it is.
    pub caveat: Option<String>,
}

/// Translates the address of `listen` (`80`, `*:80`, `127.0.0.1:8080`, `[::]:443`).
pub fn listen(arg: &str) -> Result<Listen, String> {
    let exact = |addr| Listen { addr, caveat: None };
    if arg.starts_with("unix:") {
        return Err("unix sockets are not translated".to_string());
    }
    if let Some(rest) = arg.strip_prefix('[') {
        let (ip, port) = match rest.split_once(']') {
            Some((ip, "")) => (ip, 80),
            Some((ip, p)) => (ip, port(p.strip_prefix(':').unwrap_or(p))?),
            None => return Err("unclosed [ in the address".to_string()),
        };
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("{ip} is not an IPv6 address"))?;
        return Ok(exact(SocketAddr::new(IpAddr::V6(ip), port)));
    }
    if arg.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(exact(SocketAddr::new(
            Ipv4Addr::UNSPECIFIED.into(),
            port(arg)?,
        )));
    }
    let (host, p) = match arg.rsplit_once(':') {
        Some((h, p)) => (h, port(p)?),
        None => (arg, 80),
    };
    if host == "*" {
        return Ok(exact(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), p)));
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(exact(SocketAddr::new(ip.into(), p)));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(Listen {
            addr: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), p),
            caveat: Some("localhost is translated as 127.0.0.1 (nginx also binds ::1)".to_string()),
        });
    }
    Err(format!(
        "{host} is a host name: ssegate listens on IP addresses"
    ))
}

fn port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{p} is not a port")),
    }
}

/// An upstream server `host[:port]` as ssegate writes it (`default_port` when absent).
pub fn server(addr: &str, default_port: u16) -> Result<String, String> {
    if addr.starts_with("unix:") {
        return Err("unix sockets are not translated".to_string());
    }
    if let Some(rest) = addr.strip_prefix('[') {
        let (ip, p) = match rest.split_once(']') {
            Some((ip, "")) => (ip, default_port),
            Some((ip, p)) => (ip, port(p.strip_prefix(':').unwrap_or(p))?),
            None => return Err("unclosed [ in the address".to_string()),
        };
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("{ip} is not an IPv6 address"))?;
        return Ok(format!("[{ip}]:{p}"));
    }
    let (host, p) = match addr.rsplit_once(':') {
        Some((h, p)) => (h, port(p)?),
        None => (addr, default_port),
    };
    if !hostname_ok(host) {
        return Err(format!("{host} is not a host name or IP address"));
    }
    Ok(format!("{host}:{p}"))
}

/// Whether `host` is a DNS name or IPv4 address ssegate accepts.
fn hostname_ok(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Where a `proxy_pass` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: String,
    /// Host as written (an upstream name or an address), brackets kept.
    pub host: String,
    /// Port, when written.
    pub port: Option<u16>,
    /// The URI part (`/v2/`), when written.
    pub uri: Option<String>,
}

/// Splits a `proxy_pass` URL; refuses variables and unix sockets.
pub fn target(url: &str) -> Result<Target, String> {
    if url.contains('$') {
        return Err("variables in proxy_pass are not translated".to_string());
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url} is not an http:// URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("{scheme}:// is not translated"));
    }
    if rest.starts_with("unix:") {
        return Err("unix sockets are not translated".to_string());
    }
    let (authority, uri) = match rest.find('/') {
        Some(i) => (
            rest.get(..i).unwrap_or_default(),
            rest.get(i..).map(str::to_string),
        ),
        None => (rest, None),
    };
    let (host, port) = if authority.starts_with('[') {
        match authority.rsplit_once("]:") {
            Some((h, p)) => (format!("{h}]"), Some(port(p)?)),
            None => (authority.to_string(), None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(port(p)?)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url} has no host"));
    }
    Ok(Target {
        scheme,
        host,
        port,
        uri,
    })
}

/// What a `server_name` entry becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// Any host (`_`, `""`): routes without `host:`.
    Any,
    /// One exact host, lowercased.
    Exact(String),
    /// `.example.com`: the exact part is kept, the wildcard part is not.
    ExactAndWildcard(String),
}

/// Translates one `server_name` entry.
pub fn server_name(name: &str) -> Result<Name, String> {
    if name.is_empty() || name == "_" {
        return Ok(Name::Any);
    }
    if name.starts_with('~') {
        return Err("regex server names are not translated".to_string());
    }
    if name.contains('*') {
        return Err("wildcard server names are not translated".to_string());
    }
    if name.contains('$') {
        return Err("variables in server_name are not translated".to_string());
    }
    let lower = name.to_ascii_lowercase();
    let (wild, exact) = match lower.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let exact = exact.strip_suffix('.').unwrap_or(exact);
    let ok = hostname_ok(exact)
        || exact
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok());
    if !ok {
        return Err(format!("{name} is not a host name ssegate can match"));
    }
    Ok(if wild {
        Name::ExactAndWildcard(exact.to_string())
    } else {
        Name::Exact(exact.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(t: &str) -> Option<(u64, String)> {
        duration(t).map(|d| (d.value.as_millis() as u64, d.text))
    }

    #[test]
    fn nginx_durations() {
        assert_eq!(d("600s"), Some((600_000, "600s".into())));
        assert_eq!(d("600"), Some((600_000, "600s".into())));
        assert_eq!(d("10m"), Some((600_000, "10m".into())));
        assert_eq!(d("1h"), Some((3_600_000, "1h".into())));
        assert_eq!(d("250ms"), Some((250, "250ms".into())));
        assert_eq!(d("1d"), Some((86_400_000, "24h".into())));
        assert_eq!(d("1h 30m"), Some((5_400_000, "90m".into())));
        assert_eq!(d("1m30s"), Some((90_000, "90s".into())));
        assert_eq!(d("1s500ms"), Some((1_500, "1500ms".into())));
        assert_eq!(d("0"), Some((0, "0s".into())));
        for bad in ["", "s", "10x", "5 5", "-1s", "99999999999999999999"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn listen_addresses() {
        let a = |t: &str| listen(t).map(|l| l.addr.to_string());
        assert_eq!(a("80").as_deref(), Ok("0.0.0.0:80"));
        assert_eq!(a("*:8080").as_deref(), Ok("0.0.0.0:8080"));
        assert_eq!(a("127.0.0.1").as_deref(), Ok("127.0.0.1:80"));
        assert_eq!(a("127.0.0.1:8443").as_deref(), Ok("127.0.0.1:8443"));
        assert_eq!(a("[::]:80").as_deref(), Ok("[::]:80"));
        assert_eq!(a("[::1]").as_deref(), Ok("[::1]:80"));
        assert!(listen("localhost:81").unwrap().caveat.is_some());
        assert_eq!(a("localhost:81").as_deref(), Ok("127.0.0.1:81"));
        for bad in [
            "unix:/run/x.sock",
            "example.com:80",
            "0",
            "70000",
            "[zz]:80",
            "[::1",
        ] {
            assert!(listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn servers_and_targets() {
        assert_eq!(server("app", 80).as_deref(), Ok("app:80"));
        assert_eq!(server("10.0.0.2:8000", 80).as_deref(), Ok("10.0.0.2:8000"));
        assert_eq!(server("[::1]:9000", 80).as_deref(), Ok("[::1]:9000"));
        assert!(server("unix:/tmp/g.sock", 80).is_err());
        assert!(server("a b", 80).is_err());
        let t = target("http://backend").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.uri), ("backend", None, None));
        let t = target("http://127.0.0.1:8000/v2/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", Some(8000)));
        assert_eq!(t.uri.as_deref(), Some("/v2/"));
        let t = target("HTTPS://[::1]:8443").unwrap();
        assert_eq!(
            (t.scheme.as_str(), t.host.as_str(), t.port),
            ("https", "[::1]", Some(8443))
        );
        for bad in [
            "http://$up",
            "backend",
            "ftp://x",
            "http://unix:/s.sock:/",
            "http://:80",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_names() {
        assert_eq!(server_name("_"), Ok(Name::Any));
        assert_eq!(server_name(""), Ok(Name::Any));
        assert_eq!(
            server_name("Chat.Example.com."),
            Ok(Name::Exact("chat.example.com".into()))
        );
        assert_eq!(
            server_name(".example.com"),
            Ok(Name::ExactAndWildcard("example.com".into()))
        );
        for bad in ["*.example.com", "~^www\\d+", "$hostname", "a..b"] {
            assert!(server_name(bad).is_err(), "{bad}");
        }
    }
}
