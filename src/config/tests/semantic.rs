//! Errors found after deserialization (names, duplicates, missing parts,
//! values that contradict each other): each asserts line, column, key, message.

use super::{edit, err, expect, BASE};

#[test]
fn unknown_upstream() {
    let e = err(&edit("    upstream: backend\n", "    upstream: backnd\n"));
    expect(&e, 10, 15, Some("routes[0].upstream"), "");
    assert_eq!(
        e.to_string(),
        "conf/ssegate.yaml:10:15: routes[0].upstream: unknown upstream \"backnd\" (known: backend, frontend)"
    );
}

#[test]
fn duplicate_routes() {
    let e = err(&edit("  - path: /\n", "  - path: /api/\n"));
    expect(
        &e,
        11,
        11,
        Some("routes[1].path"),
        "duplicate route: path \"/api/\" with no host is also routes[0]",
    );
    let hosted = edit(
        "  - path: /api/\n",
        "  - host: Chat.Example.com\n    path: /api/\n",
    );
    let dup = hosted.replacen(
        "  - path: /\n",
        "  - host: chat.example.com\n    path: /api/\n",
        1,
    );
    let e = err(&dup);
    expect(
        &e,
        13,
        11,
        Some("routes[1].path"),
        "path \"/api/\" on host \"chat.example.com\" is also routes[0]",
    );
    // Same path on another host, or without host, is no duplicate.
    super::ok(&format!("{hosted}  - path: /api/\n    upstream: backend\n"));
}

#[test]
fn duplicate_upstream_names_and_servers() {
    let e = err(&edit("  frontend:\n", "  backend:\n"));
    expect(
        &e,
        6,
        3,
        Some("upstreams.backend"),
        "`backend` is defined twice",
    );
    let e = err(&edit(
        "[\"127.0.0.1:8000\"]",
        "[\"127.0.0.1:8000\", \"127.0.0.1:8000\"]",
    ));
    expect(
        &e,
        5,
        33,
        Some("upstreams.backend.servers[1]"),
        "server \"127.0.0.1:8000\" is listed twice",
    );
}

#[test]
fn colliding_addresses() {
    let e = err(&edit(
        "  - addr: 0.0.0.0:8080\n",
        "  - addr: 0.0.0.0:8080\n  - addr: 127.0.0.1:8080\n",
    ));
    expect(&e, 3, 11, Some("listen[1].addr"), "collides with listen[0]");
    let e = err(&format!("{BASE}admin: {{ addr: 0.0.0.0:8080 }}\n"));
    expect(
        &e,
        13,
        16,
        Some("admin.addr"),
        "never be on a public listener",
    );
    let e = err(&edit("0.0.0.0:8080", "0.0.0.0:9901"));
    expect(&e, 2, 11, Some("listen[0].addr"), "set admin.addr");
}

#[test]
fn upstream_without_servers() {
    let e = err(&edit(
        "    servers: [\"127.0.0.1:3000\"]\n",
        "    servers: []\n",
    ));
    expect(
        &e,
        7,
        14,
        Some("upstreams.frontend.servers"),
        "upstream \"frontend\" has no servers",
    );
    let e = err(&edit(
        "    servers: [\"127.0.0.1:3000\"]\n",
        "    balance: round_robin\n",
    ));
    expect(
        &e,
        7,
        5,
        Some("upstreams.frontend.servers"),
        "has no servers",
    );
    let e = err(&edit(
        "  frontend:\n    servers: [\"127.0.0.1:3000\"]\n",
        "  frontend:\n",
    ));
    expect(
        &e,
        6,
        3,
        Some("upstreams.frontend.servers"),
        "has no servers",
    );
}

#[test]
fn no_listeners() {
    let e = err(&edit("  - addr: 0.0.0.0:8080\n", ""));
    expect(&e, 1, 1, Some("listen"), "no listeners");
    let e = err(&edit("listen:\n  - addr: 0.0.0.0:8080\n", "listen: []\n"));
    expect(&e, 1, 9, Some("listen"), "no listeners");
    let e = err(&edit("listen:\n  - addr: 0.0.0.0:8080\n", ""));
    expect(&e, 1, 1, Some("listen"), "no listeners");
    let e = err("# nothing yet\n");
    assert_eq!((e.key.as_deref(), e.line), (Some("listen"), None), "{e}");
    assert!(e.message.contains("no listeners"), "{e}");
}

#[test]
fn no_routes() {
    let e = err(BASE.split("routes:").next().unwrap_or_default());
    expect(&e, 1, 1, Some("routes"), "no routes");
}

#[test]
fn heartbeat_not_shorter_than_idle_timeout() {
    let stream = |s: &str| {
        edit(
            "    upstream: backend\n",
            &format!("    upstream: backend\n    stream:\n{s}"),
        )
    };
    let e = err(&stream("      idle_timeout: 15s\n      heartbeat: 15s\n"));
    expect(
        &e,
        13,
        18,
        Some("routes[0].stream.heartbeat"),
        "heartbeat 15s must be shorter than idle_timeout 15s",
    );
    // Against the default idle_timeout (600s).
    let e = err(&stream("      heartbeat: 11m\n"));
    expect(
        &e,
        12,
        18,
        Some("routes[0].stream.heartbeat"),
        "heartbeat 11m must be shorter than idle_timeout 10m",
    );
    let e = err(&stream(
        "      sse_headers: false\n      early_headers: true\n",
    ));
    expect(
        &e,
        13,
        22,
        Some("routes[0].stream.early_headers"),
        "needs sse_headers: true",
    );
}

#[test]
fn blocks_written_without_values() {
    let e = err(&edit(
        "  - addr: 0.0.0.0:8080\n",
        "  - addr: 0.0.0.0:8080\n    tls:\n",
    ));
    expect(&e, 3, 5, Some("listen[0].tls"), "tls needs cert and key");
    let after_frontend = "    servers: [\"127.0.0.1:3000\"]\n";
    let e = err(&edit(
        after_frontend,
        &format!("{after_frontend}    health_check:\n"),
    ));
    expect(
        &e,
        8,
        5,
        Some("upstreams.frontend.health_check"),
        "health_check needs at least a path",
    );
    let e = err(&edit(
        after_frontend,
        &format!("{after_frontend}    keep_warm:\n"),
    ));
    expect(
        &e,
        8,
        5,
        Some("upstreams.frontend.keep_warm"),
        "keep_warm needs at least a path",
    );
}
