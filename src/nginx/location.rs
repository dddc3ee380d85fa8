//! What each directive means for ssegate: handled by the translation,
//! dropped because ssegate already behaves that way (or it does not touch
//! what clients see), or noted as not translated. And the analysis of one
//! `location` block: what serves it, whether it streams, what blocks it.

use super::parse::Directive;
use super::scope::{self, refuses};

/// Directives dropped without a note: ssegate already does what they ask
/// (unbuffered HTTP/1.1 proxying, its own pool and timeouts, no cache unless
/// asked), they only tune nginx itself, or they only take effect through
/// other directives that are judged where they appear (`map`, zones, `set`).
#[rustfmt::skip]
const SILENT: &[&str] = &[
    // nginx's process, events and logs.
    "user", "worker_processes", "worker_connections", "worker_rlimit_nofile",
    "worker_cpu_affinity", "worker_priority", "worker_shutdown_timeout", "pid", "events",
    "load_module", "env", "daemon", "master_process", "pcre_jit", "thread_pool",
    "timer_resolution", "lock_file", "working_directory", "multi_accept", "use", "accept_mutex",
    "accept_mutex_delay", "access_log", "error_log", "log_format", "log_not_found",
    "log_subrequest", "open_log_file_cache", "rewrite_log",
    // I/O and buffer tuning.
    "sendfile", "sendfile_max_chunk", "tcp_nopush", "tcp_nodelay", "aio", "directio",
    "output_buffers", "postpone_output", "open_file_cache", "open_file_cache_valid",
    "open_file_cache_min_uses", "open_file_cache_errors", "types", "default_type",
    "types_hash_max_size", "types_hash_bucket_size", "server_names_hash_bucket_size",
    "server_names_hash_max_size", "variables_hash_max_size", "variables_hash_bucket_size",
    "map_hash_max_size", "map_hash_bucket_size", "client_body_buffer_size",
    "client_header_buffer_size", "large_client_header_buffers", "client_body_temp_path",
    "underscores_in_headers", "ignore_invalid_headers", "merge_slashes", "server_tokens",
    // Client connection timeouts: ssegate keeps its own.
    "keepalive_timeout", "keepalive_requests", "keepalive_time", "keepalive_disable",
    "send_timeout", "client_body_timeout", "reset_timedout_connection",
    "lingering_close", "lingering_time", "lingering_timeout",
    // Proxying details ssegate settles itself: it never buffers or caches
    // unless told, pools upstream connections, and has no send timeout.
    "proxy_http_version", "proxy_buffering", "proxy_request_buffering", "proxy_buffer_size",
    "proxy_buffers", "proxy_busy_buffers_size", "proxy_max_temp_file_size",
    "proxy_temp_file_write_size", "proxy_temp_path", "proxy_send_timeout", "proxy_next_upstream",
    "proxy_next_upstream_tries", "proxy_next_upstream_timeout", "proxy_socket_keepalive",
    "proxy_headers_hash_max_size", "proxy_headers_hash_bucket_size", "proxy_cache_bypass",
    "proxy_no_cache", "proxy_cache_path", "proxy_cache_key", "proxy_cache_valid",
    "proxy_cache_use_stale", "proxy_cache_lock", "proxy_cache_methods", "proxy_cache_min_uses",
    "proxy_cache_revalidate", "proxy_cache_background_update", "proxy_ssl_server_name",
    "proxy_ssl_verify", "proxy_ssl_protocols", "proxy_ssl_name", "proxy_ssl_session_reuse",
    "proxy_ssl_trusted_certificate", "proxy_ssl_ciphers", "chunked_transfer_encoding",
    "absolute_redirect", "port_in_redirect", "server_name_in_redirect",
    // HTTP/2 and TLS tuning (ssegate serves HTTP/2 on TLS listeners).
    "http2", "http2_max_concurrent_streams", "http2_push_preload", "http2_recv_buffer_size",
    "http2_body_preread_size", "http2_chunk_size", "http2_idle_timeout", "ssl_session_cache",
    "ssl_session_timeout", "ssl_session_tickets", "ssl_session_ticket_key",
    "ssl_prefer_server_ciphers", "ssl_dhparam", "ssl_ecdh_curve", "ssl_stapling",
    "ssl_stapling_verify", "ssl_trusted_certificate", "ssl_buffer_size", "ssl_client_certificate",
    "ssl_verify_depth",
    // Only define variables, zones or compression details used elsewhere.
    "map", "geo", "set", "resolver", "resolver_timeout", "limit_req_zone", "limit_conn_zone",
    "limit_req_status", "limit_conn_status", "limit_req_log_level", "limit_conn_log_level",
    "real_ip_header", "real_ip_recursive", "gzip_types", "gzip_vary", "gzip_proxied",
    "gzip_comp_level", "gzip_min_length", "gzip_buffers", "gzip_http_version", "gzip_disable",
    "gzip_static", "charset_types", "source_charset",
    // Access control details: the access decision is taken on the main directive.
    "auth_basic_user_file", "auth_request_set", "satisfy", "allow",
    // Only used by locations that serve files, which are noted themselves.
    "index", "autoindex", "disable_symlinks",
];

/// How a directive outside the location analysis is treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Dropped: ssegate already does it, or it has no effect on clients.
    Silent,
    /// Not translated, for this reason.
    Note(String),
}

/// Classifies a directive that no level handles itself.
pub fn classify(d: &Directive) -> Class {
    let name = d.name.as_str();
    let arg = d.arg(0).unwrap_or_default();
    let note = |s: &str| Class::Note(s.to_string());
    if SILENT.contains(&name) {
        return Class::Silent;
    }
    match name {
        "gzip" | "brotli" | "zstd" if arg == "off" => Class::Silent,
        "gzip" | "brotli" | "zstd" => note("ssegate does not compress responses"),
        "client_max_body_size" if arg == "0" => Class::Silent,
        "client_max_body_size" => note("ssegate does not limit request bodies"),
        "ssl_protocols" => {
            let mut v: Vec<&str> = d.args.iter().map(String::as_str).collect();
            v.sort_unstable();
            if v == ["TLSv1.2", "TLSv1.3"] {
                Class::Silent
            } else {
                note("ssegate serves TLS 1.2 and 1.3")
            }
        }
        "ssl_ciphers" | "ssl_conf_command" | "ssl_password_file" => {
            note("TLS settings are not translated (ssegate uses rustls's defaults)")
        }
        "add_header" | "add_trailer" | "expires" | "more_set_headers" | "more_clear_headers" => {
            note("response headers are not translated")
        }
        "proxy_set_header" => match standard_header(d) {
            true => Class::Silent,
            false => note("not translated (ssegate sets Host, X-Real-IP, X-Forwarded-For and X-Forwarded-Proto itself and passes the other request headers through)"),
        },
        "proxy_hide_header" | "proxy_pass_header" | "proxy_ignore_headers" | "proxy_pass_request_headers"
        | "proxy_pass_request_body" | "more_set_input_headers" | "more_clear_input_headers" => {
            note("header rewriting is not translated")
        }
        "proxy_redirect" if matches!(arg, "off" | "default") => Class::Silent,
        "proxy_redirect" => note("Location rewriting is not translated"),
        "proxy_cookie_path" | "proxy_cookie_domain" | "proxy_cookie_flags" => {
            note("cookie rewriting is not translated")
        }
        "proxy_cache" | "proxy_store" if arg == "off" => Class::Silent,
        "proxy_cache" | "proxy_store" => note("ssegate does not cache"),
        "proxy_intercept_errors" if arg == "off" => Class::Silent,
        "proxy_intercept_errors" | "error_page" | "recursive_error_pages" => {
            note("error pages are not translated")
        }
        "limit_req" | "limit_conn" | "limit_rate" | "limit_rate_after" => note(
            "rate limits are not translated (max_streams and max_streams_per_client limit open streams)",
        ),
        "sub_filter" | "sub_filter_once" | "sub_filter_types" | "sub_filter_last_modified"
        | "ssi" | "addition_types" => note("response rewriting is not translated"),
        "set_real_ip_from" => {
            note("not translated: ssegate reads client addresses from X-Forwarded-For of trusted_proxies")
        }
        "charset" if arg == "off" => Class::Silent,
        "charset" => note("not translated (ssegate passes Content-Type on as the upstream sent it)"),
        "rewrite" => note("rewrites are not translated"),
        "root" | "alias" | "try_files" => note("ssegate serves no files"),
        "if" => note("if blocks are not translated"),
        "stream" | "mail" => note("TCP, UDP and mail proxying is not translated"),
        _ => note("not translated"),
    }
}

/// Whether `proxy_set_header` asks for what ssegate does anyway.
fn standard_header(d: &Directive) -> bool {
    let value = d.arg(1).unwrap_or_default();
    match d.arg(0).unwrap_or_default().to_ascii_lowercase().as_str() {
        "host" => matches!(value, "$host" | "$http_host" | "$host:$server_port"),
        "x-real-ip" => value == "$remote_addr",
        "x-forwarded-for" => matches!(value, "$proxy_add_x_forwarded_for" | "$remote_addr"),
        "x-forwarded-proto" => value == "$scheme",
        "upgrade" => value == "$http_upgrade",
        // Hop-by-hop: ssegate manages upstream connections and upgrades itself.
        "connection" | "x-accel-buffering" => true,
        _ => false,
    }
}

/// Read timeouts this long only make sense for streams and long polls.
pub const LONG_READ: std::time::Duration = std::time::Duration::from_secs(300);

/// What one location holds.
#[derive(Debug, Default)]
pub struct Analysis<'a> {
    /// Its `proxy_pass`.
    pub proxy_pass: Option<&'a Directive>,
    /// The first thing that keeps a proxied location from being a route.
    pub blocker: Option<String>,
    /// What serves the location when it has no `proxy_pass`.
    pub content: Option<String>,
    /// Its own refusals: `internal`, `return 403`, `limit_except` with `deny`.
    pub refusals: Vec<&'a Directive>,
    /// It declares SSE (`text/event-stream`, `X-Accel-Buffering`).
    pub sse: bool,
    /// It turns buffering off, or raises proxy_read_timeout to a stream's.
    pub streams: bool,
    /// Nested locations.
    pub nested: Vec<&'a Directive>,
    /// Its other untranslated directives, with the reason.
    pub notes: Vec<(&'a Directive, String)>,
}

/// Analyses the directives of one location (not its nested ones).
pub fn analyze(dirs: &[Directive]) -> Analysis<'_> {
    let mut a = Analysis::default();
    a.sse = dirs.iter().any(declares_sse);
    a.streams = a.sse
        || dirs.iter().any(|d| match d.name.as_str() {
            "proxy_buffering" => d.arg(0) == Some("off"),
            "proxy_read_timeout" => {
                scope::positive(d.arg(0).unwrap_or_default()).is_some_and(|t| t.value >= LONG_READ)
            }
            _ => false,
        });
    for d in dirs {
        let arg = d.arg(0).unwrap_or_default();
        let header = arg.to_ascii_lowercase();
        let value = d.arg(1).unwrap_or_default().to_ascii_lowercase();
        match d.name.as_str() {
            "location" => a.nested.push(d),
            "proxy_pass" => a.proxy_pass = Some(d),
            "proxy_read_timeout" | "proxy_connect_timeout" => {
                if scope::positive(arg).is_none() {
                    a.notes
                        .push((d, "not translated: not a duration above zero".to_string()));
                }
            }
            // Judged with the location's scope (inherited too).
            "auth_basic" | "auth_request" | "auth_jwt" | "auth_digest" | "auth_ldap" | "deny"
            | "ssl_verify_client" => {}
            "if" if refuses(d.children()) => {}
            "return" if scope::is_refusal(d) => a.refusals.push(d),
            "internal" => a.refusals.push(d),
            "limit_except" if refuses(d.children()) => a.refusals.push(d),
            "limit_except" => {}
            "return" => set(
                &mut a,
                d,
                "answers itself (ssegate sends no redirects or fixed responses)",
                true,
            ),
            "rewrite" => set(
                &mut a,
                d,
                "changes the path (ssegate forwards it unchanged)",
                true,
            ),
            "try_files" => set(&mut a, d, "serves files (ssegate serves none)", true),
            "root" | "alias" => set(&mut a, d, "serves files (ssegate serves none)", false),
            "fastcgi_pass" | "uwsgi_pass" | "scgi_pass" | "grpc_pass" | "memcached_pass"
            | "stub_status" | "empty_gif" | "js_content" | "perl" | "mirror" => set(
                &mut a,
                d,
                "is not proxy_pass (only proxy_pass is translated)",
                true,
            ),
            // ssegate sets these on SSE stream routes itself.
            "add_header" if header == "x-accel-buffering" => {}
            "add_header" if header == "cache-control" && value == "no-cache" && a.sse => {}
            "add_header" if header == "content-type" && value.contains("text/event-stream") => {}
            // ssegate drops it on stream routes, so gzip cannot hold a stream back.
            "proxy_set_header" if header == "accept-encoding" && a.streams => {}
            "proxy_set_header" if header == "accept" && value.contains("text/event-stream") => {}
            _ => {
                if let Class::Note(why) = classify(d) {
                    a.notes.push((d, why));
                }
            }
        }
    }
    a
}

/// Records what serves the location; `blocks` = it also keeps a `proxy_pass` from applying.
fn set(a: &mut Analysis<'_>, d: &Directive, why: &str, blocks: bool) {
    let what = format!("{} {why}", d.text());
    if blocks && a.blocker.is_none() {
        a.blocker = Some(what.clone());
    }
    if a.content.is_none() {
        a.content = Some(what);
    }
}

/// Whether a directive (or an `if` inside) names `text/event-stream` or `X-Accel-Buffering`.
fn declares_sse(d: &Directive) -> bool {
    d.args.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        a.contains("text/event-stream") || a == "x-accel-buffering"
    }) || (d.name == "if" && d.children().iter().any(declares_sse))
}

/// Splits `location =/x` style arguments into modifier and path.
pub fn split_modifier(arg: &str) -> (&str, &str) {
    for m in ["=", "~*", "~", "^~"] {
        if let Some(rest) = arg.strip_prefix(m) {
            return (m, rest);
        }
    }
    match arg.starts_with('@') {
        true => ("@", arg),
        false => ("", arg),
    }
}

/// Whether ssegate accepts `path` as a route path.
pub fn valid_path(path: &str) -> bool {
    path.starts_with('/')
        && !path
            .chars()
            .any(|c| matches!(c, '?' | '#') || c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nginx::parse::parse_str;
    use std::path::Path;

    fn tree(t: &str) -> Vec<Directive> {
        parse_str(t, Path::new("t.conf")).unwrap()
    }

    #[test]
    fn classic_sse_location_is_a_quiet_stream() {
        let t = tree(
            "proxy_pass http://backend; proxy_buffering off; proxy_cache off; proxy_read_timeout 600s;\n\
             proxy_http_version 1.1; add_header X-Accel-Buffering no; add_header Cache-Control no-cache;\n\
             proxy_set_header Host $host; proxy_set_header Connection ''; proxy_set_header Accept-Encoding '';",
        );
        let a = analyze(&t);
        assert!(a.sse && a.streams);
        assert!(a.proxy_pass.is_some());
        assert!(a.notes.is_empty(), "{:?}", a.notes);
        assert!(a.blocker.is_none() && a.content.is_none() && a.refusals.is_empty());
    }

    #[test]
    fn stream_signals() {
        let streams = |t: &str| {
            let t = tree(t);
            let a = analyze(&t);
            (a.streams, a.sse)
        };
        assert_eq!(streams("proxy_buffering off;"), (true, false));
        assert_eq!(streams("proxy_read_timeout 10m;"), (true, false));
        assert_eq!(streams("proxy_read_timeout 120s;"), (false, false));
        assert_eq!(
            streams("if ($http_accept ~ text/event-stream) { set $s 1; }"),
            (true, true)
        );
        assert_eq!(
            streams("proxy_buffering on; add_header X-Frame-Options DENY;"),
            (false, false)
        );
    }

    #[test]
    fn blockers_content_refusals_and_notes() {
        let t = tree(
            "proxy_pass http://b; rewrite ^/a/(.*)$ /$1 break; return 301 /x; internal;\n\
             limit_except GET { deny all; } add_header X-Frame-Options DENY; gzip on; foo bar;\n\
             proxy_set_header X-Forwarded-Host $host; proxy_read_timeout 0;",
        );
        let a = analyze(&t);
        assert_eq!(
            a.blocker.as_deref(),
            Some("rewrite ^/a/(.*)$ /$1 break changes the path (ssegate forwards it unchanged)")
        );
        let refusals: Vec<String> = a.refusals.iter().map(|d| d.name.clone()).collect();
        assert_eq!(refusals, ["internal", "limit_except"]);
        let notes: Vec<String> = a
            .notes
            .iter()
            .map(|(d, w)| format!("{}: {w}", d.name))
            .collect();
        assert_eq!(
            notes,
            [
                "add_header: response headers are not translated",
                "gzip: ssegate does not compress responses",
                "foo: not translated",
                "proxy_set_header: not translated (ssegate sets Host, X-Real-IP, X-Forwarded-For and X-Forwarded-Proto itself and passes the other request headers through)",
                "proxy_read_timeout: not translated: not a duration above zero",
            ]
        );
        let t = tree("alias /srv/static/; expires 30d;");
        let a = analyze(&t);
        assert_eq!(
            a.content.as_deref(),
            Some("alias /srv/static/ serves files (ssegate serves none)")
        );
        assert!(a.blocker.is_none());
    }

    #[test]
    fn classification() {
        let c = |t: &str| classify(&tree(t)[0]);
        assert_eq!(c("sendfile on;"), Class::Silent);
        assert_eq!(c("ssl_protocols TLSv1.3 TLSv1.2;"), Class::Silent);
        assert!(matches!(c("ssl_protocols TLSv1 TLSv1.2;"), Class::Note(_)));
        assert_eq!(c("gzip off;"), Class::Silent);
        assert_eq!(
            c("proxy_set_header X-Forwarded-Proto $scheme;"),
            Class::Silent
        );
        assert!(matches!(
            c("proxy_set_header Host $proxy_host;"),
            Class::Note(_)
        ));
        assert_eq!(c("client_max_body_size 0;"), Class::Silent);
        assert_eq!(c("proxy_cache off;"), Class::Silent);
        assert!(matches!(c("proxy_cache zone;"), Class::Note(_)));
    }
}
