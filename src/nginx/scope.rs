//! What a location inherits from its `http`, `server` and parent `location`
//! blocks, by nginx's rules: a directive written at a level replaces the
//! inherited one, and list directives (`allow`/`deny`, `ssl_certificate`)
//! are inherited only by levels that have none of their own.

use super::parse::Directive;
use super::values::{self, Dur};

/// Directives that restrict who may reach a location; `NAME off` lifts an inherited one.
pub(super) const AUTH: [&str; 6] = [
    "auth_basic",
    "auth_request",
    "auth_jwt",
    "auth_digest",
    "auth_ldap",
    "ssl_verify_client",
];

/// Settings in force at one level of the config.
#[derive(Debug, Clone, Default)]
pub struct Scope<'a> {
    /// `proxy_read_timeout` in force.
    pub read_timeout: Option<(Dur, &'a Directive)>,
    /// `proxy_connect_timeout` in force.
    pub connect_timeout: Option<(Dur, &'a Directive)>,
    /// Authentication directives in force (never `off`).
    pub auth: Vec<&'a Directive>,
    /// `allow`/`deny` rules in force.
    pub acl: Vec<&'a Directive>,
    /// Conditional blocks that refuse requests (`if (...) { return 403; }`), inherited.
    pub guards: Vec<&'a Directive>,
    /// `ssl_certificate` files in force.
    pub certs: Vec<&'a Directive>,
    /// `ssl_certificate_key` files in force.
    pub keys: Vec<&'a Directive>,
}

impl<'a> Scope<'a> {
    /// The scope inside a block whose directives are `dirs`.
    pub fn with(&self, dirs: &'a [Directive]) -> Scope<'a> {
        let mut s = self.clone();
        let mut acl = Vec::new();
        let mut certs = Vec::new();
        let mut keys = Vec::new();
        for d in dirs {
            let first = d.arg(0).unwrap_or_default();
            match d.name.as_str() {
                "proxy_read_timeout" => {
                    s.read_timeout = positive(first).map(|v| (v, d));
                }
                "proxy_connect_timeout" => {
                    s.connect_timeout = positive(first).map(|v| (v, d));
                }
                "allow" | "deny" => acl.push(d),
                "ssl_certificate" => certs.push(d),
                "ssl_certificate_key" => keys.push(d),
                "if" if refuses(d.children()) => s.guards.push(d),
                name if AUTH.contains(&name) => {
                    s.auth.retain(|a| a.name != name);
                    if first != "off" {
                        s.auth.push(d);
                    }
                }
                _ => {}
            }
        }
        if !acl.is_empty() {
            s.acl = acl;
        }
        if !certs.is_empty() {
            s.certs = certs;
        }
        if !keys.is_empty() {
            s.keys = keys;
        }
        s
    }

    /// The directives that restrict access here, first the one to name in messages.
    pub fn access(&self) -> Vec<&'a Directive> {
        let mut out: Vec<&Directive> = self.auth.clone();
        // `allow` rules alone refuse nobody; any `deny` does.
        if self.acl.iter().any(|d| d.name == "deny") {
            out.extend(
                self.acl
                    .iter()
                    .copied()
                    .filter(|d| d.name == "deny")
                    .take(1),
            );
        }
        out.extend(self.guards.iter().copied());
        out
    }
}

/// A duration above zero (ssegate refuses zero timeouts), else `None`.
pub fn positive(text: &str) -> Option<Dur> {
    values::duration(text).filter(|d| !d.value.is_zero())
}

/// Whether a block's directives refuse requests: `return` of an error
/// status, `deny`, or authentication (looked for in nested `if`s too).
pub fn refuses(dirs: &[Directive]) -> bool {
    dirs.iter().any(|d| match d.name.as_str() {
        "return" => is_refusal(d),
        "deny" => true,
        "if" | "limit_except" => refuses(d.children()),
        name => AUTH.contains(&name) && d.arg(0) != Some("off"),
    })
}

/// Whether a `return` refuses the request (a 4xx/5xx status, or 444).
pub fn is_refusal(d: &Directive) -> bool {
    d.arg(0)
        .and_then(|c| c.parse::<u16>().ok())
        .is_some_and(|code| code >= 400)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nginx::parse::parse_str;
    use std::path::Path;

    fn names(s: &Scope<'_>) -> Vec<String> {
        s.access().iter().map(|d| d.text()).collect()
    }

    #[test]
    fn inheritance_follows_nginx() {
        let tree = parse_str(
            "auth_basic \"x\"; allow 10.0.0.0/8; deny all; proxy_read_timeout 30s;\n\
             location { auth_basic off; allow all; proxy_read_timeout 10m; }\n\
             location { allow 1.2.3.4; }\n\
             location { if ($bad) { return 403; } }\n\
             location { if ($x) { add_header A b; } }\n",
            Path::new("t.conf"),
        )
        .unwrap();
        let top = Scope::default().with(&tree);
        assert_eq!(names(&top), ["auth_basic x", "deny all"]);
        assert_eq!(
            top.read_timeout.as_ref().map(|t| t.0.text.as_str()),
            Some("30s")
        );
        let loc = |i: usize| {
            top.with(
                tree.iter()
                    .filter(|d| d.name == "location")
                    .nth(i)
                    .unwrap()
                    .children(),
            )
        };
        let open = loc(0);
        assert!(names(&open).is_empty());
        assert_eq!(
            open.read_timeout.as_ref().map(|t| t.0.text.as_str()),
            Some("10m")
        );
        assert_eq!(names(&loc(1)), ["auth_basic x"]);
        assert_eq!(names(&loc(2)), ["auth_basic x", "deny all", "if ($bad)"]);
        assert_eq!(names(&loc(3)), ["auth_basic x", "deny all"]);
    }

    #[test]
    fn refusals() {
        let tree = parse_str(
            "return 301 /x; return 444; return 200 ok; limit_except GET { deny all; }",
            Path::new("t.conf"),
        )
        .unwrap();
        let r: Vec<bool> = tree.iter().map(is_refusal).collect();
        assert_eq!(r, [false, true, false, false]);
        assert!(refuses(tree.get(3..).unwrap()));
        assert!(!refuses(tree.get(..1).unwrap()));
    }
}
