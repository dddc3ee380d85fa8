//! What the upstream is told about the client: `X-Forwarded-For`, `X-Forwarded-Proto` and
//! `X-Real-IP`, trusting what a peer says only when the peer is a trusted proxy.

use std::io::Write;
use std::net::IpAddr;

use bytes::BufMut;
use http::header::HeaderValue;
use ipnet::IpNet;
use pingora_http::RequestHeader;

use super::view::Fields;
use crate::h1::head::put_header_line;

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_REAL_IP: &str = "x-real-ip";

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

/// [`client_ip`] of a request: its `X-Forwarded-For` lines are only read from a trusted peer.
pub fn client_of(peer: IpAddr, headers: &impl Fields, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let xff = joined(headers, X_FORWARDED_FOR);
    client_ip(peer, xff.as_deref(), trusted)
}

/// All values of a header joined with ", " (a header may be sent several times).
fn joined(headers: &impl Fields, name: &str) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for v in headers.get_all(name) {
        let o = out.get_or_insert_with(Vec::new);
        if !o.is_empty() {
            o.extend_from_slice(b", ");
        }
        o.extend_from_slice(v);
    }
    out
}

/// An address as text. An IPv4 one, the common case, is written octet by octet: through the
/// formatting machinery it cost about 800 instructions more per request (callgrind), a
/// fortieth of a plain request's.
fn text(ip: IpAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                put_decimal(octet, &mut out);
            }
        }
        // Writing to a Vec cannot fail.
        IpAddr::V6(_) => drop(write!(out, "{ip}")),
    }
    out
}

/// `n` in decimal, without leading zeros.
fn put_decimal(n: u8, out: &mut Vec<u8>) {
    if n >= 100 {
        out.push(b'0' + n / 100);
    }
    if n >= 10 {
        out.push(b'0' + n / 10 % 10);
    }
    out.push(b'0' + n % 10);
}

/// The forwarding headers one request gets: `X-Forwarded-For` (appended to only when the
/// peer is trusted, else replaced), `X-Forwarded-Proto` (kept from a trusted peer) and
/// `X-Real-IP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    xff: Vec<u8>,
    /// `None`: the same as `xff` (an untrusted peer is itself the client).
    real_ip: Option<Vec<u8>>,
    /// `None`: the trusted peer's own value is kept.
    proto: Option<&'static [u8]>,
}

impl Forwarded {
    /// The headers for a request from `peer` with these headers.
    pub fn new(headers: &impl Fields, peer: IpAddr, tls: bool, trusted: &[IpNet]) -> Self {
        let scheme: &'static [u8] = if tls { b"https" } else { b"http" };
        let peer_text = text(peer);
        if !is_trusted(peer, trusted) {
            return Forwarded {
                xff: peer_text,
                real_ip: None,
                proto: Some(scheme),
            };
        }
        let old = joined(headers, X_FORWARDED_FOR);
        let real = client_ip(peer, old.as_deref(), trusted);
        let xff = match old {
            Some(mut v) if !v.is_empty() => {
                v.extend_from_slice(b", ");
                v.extend_from_slice(&peer_text);
                v
            }
            _ => peer_text,
        };
        Forwarded {
            xff,
            real_ip: Some(text(real)),
            proto: (!headers.contains(X_FORWARDED_PROTO)).then_some(scheme),
        }
    }

    fn real_ip(&self) -> &[u8] {
        self.real_ip.as_deref().unwrap_or(&self.xff)
    }

    /// Whether a request header of this name (any case) gives way to these.
    pub fn replaces(&self, name: &[u8]) -> bool {
        name.eq_ignore_ascii_case(X_FORWARDED_FOR.as_bytes())
            || name.eq_ignore_ascii_case(X_REAL_IP.as_bytes())
            || (self.proto.is_some() && name.eq_ignore_ascii_case(X_FORWARDED_PROTO.as_bytes()))
    }

    /// Sets them on a request header.
    pub fn apply(&self, req: &mut RequestHeader) {
        set(req, X_FORWARDED_FOR, &self.xff);
        if let Some(proto) = self.proto {
            set(req, X_FORWARDED_PROTO, proto);
        }
        set(req, X_REAL_IP, self.real_ip());
    }

    /// Writes them as HTTP/1 header lines.
    pub fn write(&self, out: &mut impl BufMut) {
        put_header_line(out, X_FORWARDED_FOR.as_bytes(), &self.xff);
        if let Some(proto) = self.proto {
            put_header_line(out, X_FORWARDED_PROTO.as_bytes(), proto);
        }
        put_header_line(out, X_REAL_IP.as_bytes(), self.real_ip());
    }
}

fn set(req: &mut RequestHeader, name: &'static str, value: &[u8]) {
    if let Ok(v) = HeaderValue::from_bytes(value) {
        // Only fails on invalid names, and these are constants.
        let _ = req.insert_header(name, v);
    }
}

/// Sets the forwarding headers on a request header (see [`Forwarded`]).
pub fn set_forwarded(req: &mut RequestHeader, peer: IpAddr, tls: bool, trusted: &[IpNet]) {
    Forwarded::new(&req.headers, peer, tls, trusted).apply(req);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    proptest::proptest! {
        #[test]
        fn addresses_read_as_std_writes_them(v4: u32, v6: u128) {
            for ip in [IpAddr::from(v4.to_be_bytes()), IpAddr::from(v6.to_be_bytes())] {
                proptest::prop_assert_eq!(text(ip), ip.to_string().into_bytes());
            }
        }
    }

    #[test]
    fn every_octet_reads_as_std_writes_it() {
        for n in 0..=255u8 {
            let ip = IpAddr::from([n, 0, 10, n]);
            assert_eq!(text(ip), ip.to_string().into_bytes());
        }
    }

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
            ("x-forwarded-for", "198.51.100.7"),
            ("X-Forwarded-For", "10.1.1.1"),
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
        assert_eq!(r.headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(get(&r, "x-real-ip"), "198.51.100.7");
        assert_eq!(get(&r, "x-forwarded-proto"), "https");
    }

    #[test]
    fn the_wire_form_says_the_same() {
        let r = req_with(&[("x-forwarded-for", "198.51.100.7")]);
        let trusted = nets(&["10.0.0.0/8"]);
        let mut out = BytesMut::new();
        Forwarded::new(&r.headers, "10.0.0.2".parse().unwrap(), true, &trusted).write(&mut out);
        assert_eq!(
            &out[..],
            b"x-forwarded-for: 198.51.100.7, 10.0.0.2\r\nx-forwarded-proto: https\r\n\
              x-real-ip: 198.51.100.7\r\n"
        );
        let fwd = Forwarded::new(&r.headers, "::1".parse().unwrap(), false, &trusted);
        let mut out = BytesMut::new();
        fwd.write(&mut out);
        assert_eq!(
            &out[..],
            b"x-forwarded-for: ::1\r\nx-forwarded-proto: http\r\nx-real-ip: ::1\r\n"
        );
        assert!(fwd.replaces(b"X-Forwarded-For") && fwd.replaces(b"x-real-ip"));
        assert!(fwd.replaces(b"X-Forwarded-Proto") && !fwd.replaces(b"x-other"));
    }

    #[test]
    fn both_kinds_of_head_get_the_same_headers() {
        let wire = bytes::Bytes::from_static(
            b"GET /x HTTP/1.1\r\nX-Forwarded-For: 198.51.100.7\r\n\
              x-forwarded-for: 10.1.1.1\r\nX-Forwarded-Proto: https\r\n\r\n",
        );
        let ours = crate::h1::head::parse_request(&wire).unwrap();
        let theirs = req_with(&[
            ("X-Forwarded-For", "198.51.100.7"),
            ("x-forwarded-for", "10.1.1.1"),
            ("X-Forwarded-Proto", "https"),
        ]);
        let t = nets(&["10.0.0.0/8"]);
        for peer in ["10.0.0.2", "8.8.8.8"] {
            let peer: IpAddr = peer.parse().unwrap();
            let fwd = Forwarded::new(&ours.lines, peer, false, &t);
            assert_eq!(fwd, Forwarded::new(&theirs.headers, peer, false, &t));
            let client = client_of(peer, &ours.lines, &t);
            assert_eq!(client, client_of(peer, &theirs.headers, &t));
        }
        assert_eq!(
            client_of("10.0.0.2".parse().unwrap(), &ours.lines, &t),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
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
        let r = req_with(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            client_of(peer, &r.headers, &t),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_of("8.8.8.8".parse().unwrap(), &r.headers, &t),
            "8.8.8.8".parse::<IpAddr>().unwrap()
        );
    }
}
