//! How the header rules read a request, whichever type holds it: ssegate's own lean head
//! ([`h1::head::Request`](crate::h1::head::Request)) or Pingora's `RequestHeader` (HTTP/2 and
//! the requests the lean path leaves to Pingora). The rules are written once, over these.

use http::uri::Authority;
use http::{HeaderMap, Method, Version};
use pingora_http::{HeaderNameVariant, RequestHeader};

use crate::h1::head::Request;
use crate::h1::lines::Lines;

/// A head's header lines, looked up by name in any case.
pub trait Fields {
    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&[u8]>;
    /// Every value of `name`, in order.
    fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;
    /// Whether `name` is present.
    fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl Fields for HeaderMap {
    fn get(&self, name: &str) -> Option<&[u8]> {
        HeaderMap::get(self, name).map(|v| v.as_bytes())
    }

    fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        HeaderMap::get_all(self, name).iter().map(|v| v.as_bytes())
    }

    fn contains(&self, name: &str) -> bool {
        self.contains_key(name)
    }
}

impl Fields for Lines {
    fn get(&self, name: &str) -> Option<&[u8]> {
        Lines::get(self, name)
    }

    fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        Lines::get_all(self, name)
    }

    fn contains(&self, name: &str) -> bool {
        Lines::contains(self, name)
    }
}

/// A request head as the rules read it.
pub trait RequestHead {
    /// How its header lines are held.
    type Fields: Fields;
    /// The request method.
    fn method(&self) -> &Method;
    /// The HTTP version it came in.
    fn version(&self) -> Version;
    /// Its header lines.
    fn fields(&self) -> &Self::Fields;
    /// The target's path (what routes match on).
    fn path(&self) -> &str;
    /// The target on the upstream's request line: origin-form for an HTTP/2 request (whose
    /// target carried a scheme), else the bytes the client sent.
    fn target(&self) -> &[u8];
    /// The authority an HTTP/2 request carries instead of a `Host` header.
    fn authority(&self) -> Option<&Authority>;
    /// Every header line, name in the case it came in, in order (Pingora's type keeps the
    /// lines of one name together).
    fn each_line(&self, f: impl FnMut(&[u8], &[u8]));

    /// The host the request is for: `Host`, or the HTTP/2 authority's host.
    fn host(&self) -> Option<&str> {
        self.fields()
            .get("host")
            .and_then(visible)
            .or_else(|| self.authority().map(|a| a.host()))
    }
}

/// A header value as text, if it is ASCII. Both head types hold values without control
/// characters (tabs aside) already, so this is what `HeaderValue::to_str` checks, less the
/// byte-by-byte walk.
pub fn visible(v: &[u8]) -> Option<&str> {
    if !v.is_ascii() {
        return None;
    }
    std::str::from_utf8(v).ok()
}

impl RequestHead for RequestHeader {
    type Fields = HeaderMap;

    fn method(&self) -> &Method {
        &self.method
    }

    fn version(&self) -> Version {
        self.version
    }

    fn fields(&self) -> &HeaderMap {
        &self.headers
    }

    fn path(&self) -> &str {
        self.uri.path()
    }

    fn target(&self) -> &[u8] {
        match self.authority() {
            Some(_) => self
                .uri
                .path_and_query()
                .map_or(b"/", |pq| pq.as_str().as_bytes()),
            None => self.raw_path(),
        }
    }

    fn authority(&self) -> Option<&Authority> {
        // Only a target with a scheme (HTTP/2, or absolute-form) has one; an absolute-form
        // HTTP/1 target goes upstream as sent, so only HTTP/2 counts here.
        self.uri.scheme().and(self.uri.authority())
    }

    fn each_line(&self, mut f: impl FnMut(&[u8], &[u8])) {
        let _ = self.map(|name, value| {
            match name {
                HeaderNameVariant::Case(n) => f(n.as_slice(), value.as_bytes()),
                HeaderNameVariant::Titled(n) => f(n.as_bytes(), value.as_bytes()),
            }
            Ok(())
        });
    }
}

impl RequestHead for Request {
    type Fields = Lines;

    fn method(&self) -> &Method {
        &self.method
    }

    fn version(&self) -> Version {
        self.version
    }

    fn fields(&self) -> &Lines {
        &self.lines
    }

    fn path(&self) -> &str {
        Request::path(self)
    }

    fn target(&self) -> &[u8] {
        Request::target(self)
    }

    fn authority(&self) -> Option<&Authority> {
        None
    }

    fn each_line(&self, mut f: impl FnMut(&[u8], &[u8])) {
        self.lines.iter().for_each(|(n, v)| f(n, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_of_head_read_alike() {
        let wire = bytes::Bytes::from_static(
            b"GET /a/b?q=1 HTTP/1.1\r\nHost: app:8080\r\nX-Two: 1\r\nx-two: 2\r\n\r\n",
        );
        let ours = crate::h1::head::parse_request(&wire).expect("parses");
        let mut theirs = RequestHeader::build("GET", b"/a/b?q=1", None).expect("builds");
        theirs.append_header("Host", "app:8080").expect("host");
        theirs.append_header("X-Two", "1").expect("x");
        theirs.append_header("x-two", "2").expect("x");
        fn read(h: &impl RequestHead) -> (String, String, Option<String>, Vec<Vec<u8>>) {
            let mut lines = Vec::new();
            h.each_line(|n, v| lines.push([n, b": ", v].concat()));
            let twos = h.fields().get_all("X-TWO").map(<[u8]>::to_vec).collect();
            assert!(h.fields().contains("host") && !h.fields().contains("x-one"));
            assert_eq!(lines.len(), 3);
            (
                h.path().to_string(),
                String::from_utf8_lossy(h.target()).into_owned(),
                h.host().map(str::to_string),
                twos,
            )
        }
        assert_eq!(read(&ours), read(&theirs));
        assert_eq!(read(&ours).0, "/a/b");
    }

    #[test]
    fn an_h2_request_goes_upstream_in_origin_form_with_its_authority_as_host() {
        let mut h2 = RequestHeader::build_no_case("GET", b"/", None).expect("builds");
        h2.set_uri("https://chat.example:8443/api?x=1".parse().expect("uri"));
        assert_eq!(h2.target(), b"/api?x=1");
        assert_eq!(h2.host(), Some("chat.example"));
        let absolute = RequestHeader::build("GET", b"http://app/x", None).expect("builds");
        assert_eq!(absolute.target(), b"http://app/x");
        assert_eq!(visible(b"a\xff"), None);
        assert_eq!(visible(b"app:80"), Some("app:80"));
    }

    /// Header names a request might carry, in mixed case, some of them twice.
    const NAMES: &[&str] = &[
        "Host",
        "host",
        "Content-Length",
        "X-Forwarded-For",
        "x-forwarded-for",
        "Connection",
        "accept",
        "X-A",
    ];

    /// Every answer `f` gives about `name`, through the trait.
    fn answers(f: &impl Fields, name: &str) -> (Option<Vec<u8>>, Vec<Vec<u8>>, bool) {
        let all = f.get_all(name).map(<[u8]>::to_vec).collect();
        (f.get(name).map(<[u8]>::to_vec), all, f.contains(name))
    }

    proptest::proptest! {
        /// Whatever lines a request carries, both kinds of head answer every lookup alike.
        #[test]
        fn lookups_agree_with_pingoras_header_map(
            lines in proptest::collection::vec((0..NAMES.len(), "[!-~]([ -~]{0,10}[!-~])?"), 0..10),
            path in "/[a-z]{0,6}(\\?[a-z=&]{0,6})?",
        ) {
            let mut wire = format!("GET {path} HTTP/1.1\r\n");
            let mut theirs = RequestHeader::build("GET", path.as_bytes(), None).expect("builds");
            for (i, value) in &lines {
                wire.push_str(&format!("{}: {value}\r\n", NAMES[*i]));
                theirs.append_header(NAMES[*i], value.as_str()).expect("appends");
            }
            wire.push_str("\r\n");
            let ours = crate::h1::head::parse_request(&bytes::Bytes::from(wire)).expect("parses");
            for name in NAMES {
                proptest::prop_assert_eq!(answers(ours.fields(), name), answers(theirs.fields(), name));
            }
            proptest::prop_assert_eq!(ours.host(), theirs.host());
            proptest::prop_assert_eq!(ours.path(), theirs.path());
            proptest::prop_assert_eq!(ours.target(), theirs.target());
            let mut count = 0;
            ours.each_line(|_, _| count += 1);
            proptest::prop_assert_eq!(count, lines.len());
        }
    }
}
