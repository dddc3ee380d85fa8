//! One rule at a time, on small configs written to a temporary directory.

use std::path::Path;

use crate::config::{self, Balance, Config};
use crate::nginx::{convert, NginxError};

/// A conversion: the YAML, the notes (paths relative to the config's
/// directory) and the config the YAML loads as.
struct Out {
    yaml: String,
    notes: Vec<String>,
    cfg: Config,
}

fn rel_notes(notes: &[crate::nginx::Note], dir: &Path) -> Vec<String> {
    notes
        .iter()
        .map(|n| {
            format!(
                "{}:{}: {}",
                n.file.strip_prefix(dir).unwrap().display(),
                n.line,
                n.message
            )
        })
        .collect()
}

/// Converts `nginx.conf` (the first file) with the other `files` beside it.
fn try_conv(files: &[(&str, &str)]) -> Result<Out, (NginxError, Vec<String>)> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    match convert(&dir.path().join("nginx.conf")) {
        Ok(c) => {
            let cfg = config::parse(&c.yaml, &dir.path().join("ssegate.yaml"))
                .unwrap_or_else(|e| panic!("{e}\n{}", c.yaml));
            Ok(Out {
                notes: rel_notes(&c.notes, dir.path()),
                yaml: c.yaml,
                cfg,
            })
        }
        Err(e) => {
            let notes = rel_notes(e.notes(), dir.path());
            Err((e, notes))
        }
    }
}

fn conv(text: &str) -> Out {
    try_conv(&[("nginx.conf", text)]).unwrap_or_else(|(e, n)| panic!("{e}: {n:?}"))
}

fn up(o: &Out, host: Option<&str>, path: &str) -> Option<String> {
    o.cfg
        .routes
        .find(host, path)
        .map(|r| r.upstream_name.clone())
}

#[test]
fn proxy_pass_to_an_address_generates_one_upstream_per_address() {
    let o = conv(
        "upstream app_80 { server 10.0.0.1:8080; }\n\
         server { listen 8080;\n\
           location /a/ { proxy_pass http://127.0.0.1:8000; }\n\
           location /b/ { proxy_pass http://127.0.0.1:8000; }\n\
           location /c/ { proxy_pass http://app:9000; }\n\
           location /d/ { proxy_pass http://app; }\n\
           location /e/ { proxy_pass http://APP_80; }\n\
         }\n",
    );
    let names: Vec<&str> = o.cfg.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["app_80", "127.0.0.1_8000", "app_9000", "app_80_2"]);
    assert_eq!(up(&o, None, "/b/x").as_deref(), Some("127.0.0.1_8000"));
    assert_eq!(up(&o, None, "/d/x").as_deref(), Some("app_80_2"));
    assert_eq!(
        up(&o, None, "/e/x").as_deref(),
        Some("app_80"),
        "upstream names ignore case"
    );
    assert!(o.notes.is_empty(), "{:?}", o.notes);
}

#[test]
fn exact_location_loses_to_a_prefix_on_the_same_path() {
    let o = conv(
        "server { listen 80;\n location = / { proxy_pass http://a:1; }\n location / { proxy_pass http://b:1; }\n}\n",
    );
    assert_eq!(up(&o, None, "/x").as_deref(), Some("b_1"));
    assert_eq!(
        o.notes,
        [
            "nginx.conf:2: location = /: exact match translated as a prefix route (it also matches longer paths)",
            "nginx.conf:2: location = /: commented out: path / is already routed by location / (nginx.conf:3); ssegate has one route per host and path",
        ]
    );
    assert!(
        o.yaml.contains("  # - path: /\n  #   upstream: a_1\n"),
        "{}",
        o.yaml
    );
}

#[test]
fn copies_on_other_listeners_merge_and_clashes_keep_the_first() {
    let o = conv(
        "server { listen 80; server_name a.test; location /x/ { proxy_pass http://p:1; } }\n\
         server { listen 81; server_name a.test; location /x/ { proxy_pass http://p:1; } }\n\
         server { listen 82; server_name a.test; location /x/ { proxy_pass http://q:1; } }\n",
    );
    assert_eq!(o.cfg.routes.len(), 1);
    assert_eq!(up(&o, Some("a.test"), "/x/").as_deref(), Some("p_1"));
    assert_eq!(
        o.notes,
        [
            "nginx.conf:1: server: ssegate routes are not per listener: this server's routes are also served on 0.0.0.0:82",
            "nginx.conf:1: server_name a.test: nginx also sent requests for other host names (or a bare IP) to this default server; ssegate answers them 404 unless a route has no host:",
            "nginx.conf:3: location /x/: commented out: host a.test path /x/ is already routed by location /x/ (nginx.conf:1); ssegate has one route per host and path",
        ]
    );
}

#[test]
fn listeners_merge_like_nginx_binds_and_admin_moves_off_them() {
    let o = conv(
        "server { listen 80; listen 127.0.0.1:80; listen 9901; location / { proxy_pass http://a:1; } }\n\
         server { listen 127.0.0.1:80; listen [::1]:9901; location / { proxy_pass http://a:1; } }\n",
    );
    let addrs: Vec<String> = o.cfg.listeners.iter().map(|l| l.addr.to_string()).collect();
    assert_eq!(addrs, ["0.0.0.0:80", "0.0.0.0:9901", "[::1]:9901"]);
    assert_eq!(o.cfg.admin.to_string(), "127.0.0.1:9902");
    assert_eq!(
        o.notes,
        ["nginx.conf:1: listen 0.0.0.0:9901: the admin endpoint moves to 127.0.0.1:9902 (it must not share a public listener)"]
    );
}

#[test]
fn inherited_access_control_fails_closed_and_off_lifts_it() {
    let o = conv(
        "server { listen 80; auth_basic \"Team\";\n\
           location /public/ { auth_basic off; proxy_pass http://a:1; }\n\
           location / { proxy_pass http://a:1; }\n\
           location /api/ { if ($http_x_key != \"s3cret\") { return 403; } auth_basic off; proxy_pass http://a:1; }\n\
           location /gone/ { internal; }\n\
         }\n",
    );
    assert_eq!(up(&o, None, "/public/x").as_deref(), Some("a_1"));
    for closed in ["/", "/private", "/api/x", "/gone/x"] {
        assert_eq!(
            up(&o, None, closed).as_deref(),
            Some("fail_closed"),
            "{closed}"
        );
    }
    assert_eq!(
        o.notes,
        [
            "nginx.conf:3: location /: commented out, and its path answers 502 (fail closed): auth_basic Team (nginx.conf:1) is not translated",
            "nginx.conf:4: location /api/: commented out, and its path answers 502 (fail closed): if ($http_x_key != s3cret ) is not translated",
            "nginx.conf:5: location /gone/: not translated, and its path answers 502 (fail closed): auth_basic Team (nginx.conf:1) is not translated",
        ]
    );
    assert!(
        o.yaml.contains("  # - path: /\n  #   upstream: a_1\n"),
        "{}",
        o.yaml
    );
}

#[test]
fn untranslatable_proxy_pass_is_a_comment() {
    let o = conv(
        "server { listen 80;\n\
           location /s/ { proxy_pass https://secure:443; location /s/in/ { proxy_pass http://a:1; } }\n\
           location /v/ { proxy_pass http://$target; }\n\
           location /u/ { proxy_pass http://unix:/run/app.sock:/; }\n\
           location / { proxy_pass http://a:1; }\n\
         }\n",
    );
    assert_eq!(o.cfg.upstreams.len(), 1);
    assert_eq!(up(&o, None, "/s/x").as_deref(), Some("a_1"));
    assert_eq!(
        o.cfg.routes.find(None, "/s/in/x").map(|r| r.path.as_str()),
        Some("/s/in/")
    );
    assert_eq!(
        o.notes,
        [
            "nginx.conf:2: location /s/: commented out: proxy_pass https://secure:443: https:// upstreams are not translated (ssegate connects to upstreams over plain HTTP)",
            "nginx.conf:3: location /v/: commented out: proxy_pass http://$target: variables in proxy_pass are not translated",
            "nginx.conf:4: location /u/: commented out: proxy_pass http://unix:/run/app.sock:/: unix sockets are not translated",
        ]
    );
    assert!(o.yaml.contains(
        "  # nginx.conf:3: location /v/: commented out: proxy_pass http://$target: variables"
    ));
}

#[test]
fn stream_routes_and_timeouts_follow_inheritance() {
    let o = conv(
        "http { proxy_read_timeout 30s; proxy_connect_timeout 4s;\n\
         server { listen 80;\n\
           location /api/ { proxy_pass http://a:1;\n\
             location /api/slow/ { proxy_read_timeout 5m; proxy_pass http://a:1; }\n\
             location /api/quiet/ { proxy_buffering off; proxy_pass http://a:1; }\n\
           }\n\
         } }\n",
    );
    let r = |p: &str| o.cfg.routes.find(None, p).unwrap().clone();
    assert_eq!(
        (
            r("/api/x").read_timeout.as_secs(),
            r("/api/x").stream.is_none()
        ),
        (30, true)
    );
    let slow = r("/api/slow/x").stream.unwrap();
    assert_eq!(
        (slow.idle_timeout.as_secs(), slow.sse_headers),
        (300, false)
    );
    // Inherited 30s stays the idle timeout: nginx cut such streams after 30s too.
    assert_eq!(r("/api/quiet/x").stream.unwrap().idle_timeout.as_secs(), 30);
    assert_eq!(
        o.cfg.upstreams.first().map(|u| u.connect_timeout.as_secs()),
        Some(4)
    );
    let o =
        conv("server { listen 80; location / { proxy_pass http://a:1; proxy_buffering off; } }");
    assert_eq!(
        o.cfg
            .routes
            .find(None, "/")
            .unwrap()
            .stream
            .as_ref()
            .unwrap()
            .idle_timeout
            .as_secs(),
        600
    );
    assert!(o.yaml.contains("idle_timeout: 600s") && o.yaml.contains("# heartbeat: 15s"));
}

#[test]
fn server_names_upstream_methods_and_tls() {
    let o = try_conv(&[
        (
            "nginx.conf",
            "upstream u { ip_hash; server a:1; server b:1 weight=2; server b:1; }\n\
             server { listen 80; server_name .example.com ~^www\\d+ *.x.test; location / { proxy_pass http://u; } }\n\
             server { listen 81; server_name *.wild.test; location / { proxy_pass http://u; } }\n\
             server { listen 443 ssl; ssl_certificate $cert; ssl_certificate_key k.pem; location / { proxy_pass http://u; } }\n",
        ),
    ])
    .unwrap_or_else(|(e, n)| panic!("{e}: {n:?}"));
    assert_eq!(up(&o, Some("example.com"), "/").as_deref(), Some("u"));
    assert_eq!(up(&o, Some("any.host"), "/").as_deref(), Some("u"));
    let u = o.cfg.upstreams.first().unwrap();
    assert_eq!((u.balance, u.servers.len()), (Balance::RoundRobin, 2));
    assert_eq!(
        o.cfg.listeners.len(),
        2,
        "the TLS listener without usable files is left out"
    );
    assert_eq!(
        o.notes,
        [
            "nginx.conf:1: ip_hash: not translated: the servers are balanced round robin",
            "nginx.conf:1: server b:1 weight=2: weight is not translated (ssegate balances by open streams or in turn, without weights or passive health checks)",
            "nginx.conf:1: server b:1: listed twice: kept once",
            "nginx.conf:2: server_name .example.com: the wildcard part *.example.com is not translated",
            "nginx.conf:2: server_name ~^www\\d+: regex server names are not translated",
            "nginx.conf:2: server_name *.x.test: wildcard server names are not translated",
            "nginx.conf:2: server: ssegate routes are not per listener: this server's routes are also served on 0.0.0.0:81",
            "nginx.conf:3: server_name *.wild.test: wildcard server names are not translated",
            "nginx.conf:3: server_name *.wild.test: no exact name left to route by: the server's routes apply to every host",
            "nginx.conf:3: server: ssegate routes are not per listener: this server's routes are also served on 0.0.0.0:80",
            "nginx.conf:4: ssl_certificate $cert: not translated (ssegate needs a file name): the listener is left out",
        ]
    );
}

#[test]
fn values_with_line_breaks_stay_inside_comments() {
    let o = conv(
        "server { listen 80;\n location /motd/ { return 200 \"line 1\nline 2\"; }\n location / { proxy_pass http://a:1; } }\n",
    );
    let why = "location /motd/: not translated: return 200 \"line 1\\nline 2\" answers itself (ssegate sends no redirects or fixed responses)";
    assert_eq!(o.notes, [format!("nginx.conf:2: {why}")]);
    assert!(
        o.yaml.contains(&format!("  # nginx.conf:2: {why}\n")),
        "{}",
        o.yaml
    );
}

#[test]
fn errors_name_the_file_and_line() {
    let err = |files: &[(&str, &str)]| match try_conv(files) {
        Err((e, notes)) => (e.to_string(), notes),
        Ok(o) => panic!("converted:\n{}", o.yaml),
    };
    let (e, _) = err(&[
        ("nginx.conf", "http {\n include conf.d/*.conf;\n}\n"),
        ("conf.d/a.conf", "server {\n listen 80\n}\n"),
    ]);
    assert!(
        e.ends_with("conf.d/a.conf:3: unexpected \"}\": \"listen\" needs a \";\""),
        "{e}"
    );
    let (e, _) = err(&[(
        "nginx.conf",
        "upstream a { server x:1; }\nupstream A { server y:1; }\n",
    )]);
    assert!(
        e.ends_with("nginx.conf:2: upstream \"A\" is defined twice"),
        "{e}"
    );
    let (e, notes) = err(&[(
        "nginx.conf",
        "server { listen 80; root /srv/www; location /x/ { return 301 /y; } }\n",
    )]);
    assert_eq!(e, "no location could be translated into a route");
    assert_eq!(
        notes,
        [
            "nginx.conf:1: root /srv/www: ssegate serves no files",
            "nginx.conf:1: location /x/: not translated: return 301 /y answers itself (ssegate sends no redirects or fixed responses)",
        ]
    );
    let (e, notes) = err(&[(
        "nginx.conf",
        "server { listen 443 ssl; location / { proxy_pass http://a:1; } }\n",
    )]);
    assert_eq!(e, "no listener could be translated");
    assert_eq!(notes, ["nginx.conf:1: listen 443 ssl: listener left out: no ssl_certificate and ssl_certificate_key for it"]);
    let missing = convert(Path::new("/nonexistent/nginx.conf")).unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("/nonexistent/nginx.conf: cannot read the nginx config: "),
        "{missing}"
    );
}

#[test]
fn client_header_timeout_becomes_the_longest_header_timeout() {
    let o = conv(
        "http { client_header_timeout 30s;\n\
         server { listen 80; location / { proxy_pass http://a:1; } }\n\
         server { listen 81; client_header_timeout 1m;\n\
           location / { proxy_pass http://a:1; } }\n\
         server { listen 82; client_header_timeout soon; location / { proxy_pass http://a:1; } }\n\
         }\n",
    );
    assert_eq!(o.cfg.header_timeout.as_secs(), 60);
    assert!(
        o.yaml.contains("header_timeout: 1m")
            && o.yaml.contains("# nginx.conf:3: client_header_timeout"),
        "{}",
        o.yaml
    );
    assert_eq!(
        o.notes,
        vec![
            "nginx.conf:1: client_header_timeout 30s: ssegate has one header_timeout for all servers; it takes the longest, 1m".to_string(),
            "nginx.conf:5: client_header_timeout soon: not translated: not a duration above zero".to_string(),
        ]
    );
    // Without it, ssegate's own default stands.
    let o = conv("server { listen 80; location / { proxy_pass http://a:1; } }");
    assert!(!o.yaml.contains("header_timeout"));
    assert_eq!(o.cfg.header_timeout.as_secs(), 10);
}
