//! Errors in the YAML and its values: each test asserts line, column, key
//! and message.

use super::{edit, err, expect, BASE};

#[test]
fn yaml_syntax_errors() {
    let e = err(&edit("    upstream: backend\n", "    upstream: [backend\n"));
    // libyaml stops at the next key and names where the open sequence began.
    expect(&e, 11, 9, None, "invalid YAML: did not find expected ',' or ']', while parsing a flow sequence at line 10 column 15");
    let e = err(&edit("    upstream: backend\n", "\tupstream: backend\n"));
    expect(&e, 10, 1, None, "invalid YAML");
    let e = err(&edit("  - path: /\n", "  - path: \"/\n"));
    expect(&e, 13, 1, None, "invalid YAML");
}

#[test]
fn unknown_keys_name_the_allowed_ones() {
    let e = err(&format!("{BASE}listne:\n  - addr: 0.0.0.0:8081\n"));
    expect(
        &e,
        13,
        1,
        Some("listne"),
        "unknown field `listne`, expected one of `listen`, `admin`",
    );
    let e = err(&edit("    upstream: backend\n", "    upstreem: backend\n"));
    expect(
        &e,
        10,
        5,
        Some("routes[0].upstreem"),
        "unknown field `upstreem`",
    );
    assert!(
        e.message.contains("`upstream`") && e.message.contains("`max_streams_per_client`"),
        "{e}"
    );
    let e = err(&edit(
        "    upstream: backend\n",
        "    upstream: backend\n    stream: { idle: 5s }\n",
    ));
    expect(
        &e,
        11,
        15,
        Some("routes[0].stream.idle"),
        "expected one of `idle_timeout`, `heartbeat`",
    );
    let e = err(&edit(
        "    servers: [\"127.0.0.1:8000\"]\n",
        "    servers: [\"127.0.0.1:8000\"]\n    weight: 2\n",
    ));
    expect(
        &e,
        6,
        5,
        Some("upstreams.backend.weight"),
        "unknown field `weight`",
    );
}

#[test]
fn wrong_types() {
    let e = err(&format!("{BASE}threads: two\n"));
    expect(
        &e,
        13,
        10,
        Some("threads"),
        "invalid type: string \"two\", expected a whole number",
    );
    let e = err(&edit(
        "    servers: [\"127.0.0.1:8000\"]\n",
        "    servers: \"127.0.0.1:8000\"\n",
    ));
    expect(
        &e,
        5,
        14,
        Some("upstreams.backend.servers"),
        "invalid type: string \"127.0.0.1:8000\", expected a sequence",
    );
    let e = err(&edit(
        "    upstream: backend\n",
        "    upstream: backend\n    stream: { sse_headers: yes }\n",
    ));
    expect(
        &e,
        11,
        28,
        Some("routes[0].stream.sse_headers"),
        "expected a boolean",
    );
    let e = err(&edit(
        "    upstream: backend\n",
        "    upstream: [backend]\n",
    ));
    expect(
        &e,
        10,
        15,
        Some("routes[0].upstream"),
        "invalid type: sequence, expected a string",
    );
    let e = err("- addr: 0.0.0.0:8080\n");
    expect(
        &e,
        1,
        1,
        None,
        "invalid type: sequence, expected a mapping of listen, admin",
    );
    let e = err(&edit(
        "    servers: [\"127.0.0.1:8000\"]\n",
        "    servers: [\"127.0.0.1:8000\"]\n    balance: random\n",
    ));
    expect(
        &e,
        6,
        14,
        Some("upstreams.backend.balance"),
        "unknown variant `random`, expected `least_streams` or `round_robin`",
    );
}

#[test]
fn missing_required_key() {
    let e = err(&edit("    upstream: frontend\n", "    name: root\n"));
    expect(&e, 11, 5, Some("routes[1]"), "missing field `upstream`");
}

#[test]
fn repeated_keys() {
    let e = err(&edit(
        "    upstream: frontend\n",
        "    upstream: frontend\n    upstream: backend\n",
    ));
    expect(
        &e,
        13,
        5,
        Some("routes[1].upstream"),
        "duplicate field `upstream`",
    );
    let e = err(&format!("{BASE}listen: []\n"));
    expect(&e, 13, 1, Some("listen"), "duplicate field `listen`");
}

#[test]
fn bad_durations() {
    let with = |stream: &str| {
        edit(
            "    upstream: backend\n",
            &format!("    upstream: backend\n{stream}"),
        )
    };
    let e = err(&with("    read_timeout: 5x\n"));
    expect(
        &e,
        11,
        19,
        Some("routes[0].read_timeout"),
        "invalid duration \"5x\"",
    );
    let e = err(&with("    stream:\n      idle_timeout: -1s\n"));
    expect(
        &e,
        12,
        21,
        Some("routes[0].stream.idle_timeout"),
        "invalid duration \"-1s\": it cannot be negative",
    );
    let e = err(&with("    stream: { heartbeat: 0s }\n"));
    expect(
        &e,
        11,
        26,
        Some("routes[0].stream.heartbeat"),
        "invalid duration \"0s\": it must be above zero",
    );
    let e = err(&with("    read_timeout: 60\n"));
    expect(
        &e,
        11,
        19,
        Some("routes[0].read_timeout"),
        "a unit is needed, e.g. 60s",
    );
    let e = err(&format!("{BASE}shutdown_grace: soon\n"));
    expect(
        &e,
        13,
        17,
        Some("shutdown_grace"),
        "invalid duration \"soon\"",
    );
    let e = err(&edit(
        "    servers: [\"127.0.0.1:3000\"]\n",
        "    servers: [\"127.0.0.1:3000\"]\n    connect_timeout: 0s\n",
    ));
    expect(
        &e,
        8,
        22,
        Some("upstreams.frontend.connect_timeout"),
        "above zero",
    );
    let e = err(&edit(
        "    servers: [\"127.0.0.1:3000\"]\n",
        "    servers: [\"127.0.0.1:3000\"]\n    health_check: { path: /healthz, interval: 0ms }\n",
    ));
    expect(
        &e,
        8,
        47,
        Some("upstreams.frontend.health_check.interval"),
        "above zero",
    );
    let e = err(&format!("{BASE}header_timeout: 0s\n"));
    expect(&e, 13, 17, Some("header_timeout"), "above zero");
    // Zero grace is meaningful: exit at once.
    assert!(super::ok(&format!("{BASE}shutdown_grace: 0s\n"))
        .shutdown_grace
        .is_zero());
}

#[test]
fn bad_listen_and_admin_addresses() {
    let e = err(&edit("0.0.0.0:8080", "0.0.0.0:80800"));
    expect(
        &e,
        2,
        11,
        Some("listen[0].addr"),
        "invalid address \"0.0.0.0:80800\": expected IP:port",
    );
    let e = err(&edit("0.0.0.0:8080", "localhost:8080"));
    expect(
        &e,
        2,
        11,
        Some("listen[0].addr"),
        "invalid address \"localhost:8080\"",
    );
    let e = err(&format!("{BASE}admin:\n  addr: 127.0.0.1\n"));
    expect(
        &e,
        14,
        9,
        Some("admin.addr"),
        "invalid address \"127.0.0.1\"",
    );
}

#[test]
fn bad_servers() {
    for (server, why) in [
        ("backend", "expected host:port"),
        ("127.0.0.1:0", "port must be a number from 1 to 65535"),
        ("::1:8000", "needs brackets"),
        ("back end:8000", "may hold only letters"),
    ] {
        let e = err(&edit("\"127.0.0.1:8000\"", &format!("\"{server}\"")));
        expect(&e, 5, 15, Some("upstreams.backend.servers[0]"), why);
        assert!(
            e.message.contains(&format!("invalid server \"{server}\"")),
            "{e}"
        );
    }
}

#[test]
fn bad_cidr() {
    let e = err(&format!(
        "{BASE}trusted_proxies: [10.0.0.0/8, 10.0.0.0/33]\n"
    ));
    expect(
        &e,
        13,
        31,
        Some("trusted_proxies[1]"),
        "invalid CIDR \"10.0.0.0/33\"",
    );
}

#[test]
fn route_paths_and_hosts() {
    let e = err(&edit("  - path: /api/\n", "  - path: api/\n"));
    expect(
        &e,
        9,
        11,
        Some("routes[0].path"),
        "invalid path \"api/\": it must start with '/'",
    );
    let e = err(&edit("  - path: /api/\n", "  - path: /api?x=1\n"));
    expect(&e, 9, 11, Some("routes[0].path"), "without query");
    let e = err(&edit(
        "  - path: /api/\n",
        "  - host: example.com:8080\n    path: /api/\n",
    ));
    expect(&e, 9, 11, Some("routes[0].host"), "without port");
    let e = err(&edit(
        "  - path: /api/\n",
        "  - name: \"\"\n    path: /api/\n",
    ));
    expect(&e, 9, 11, Some("routes[0].name"), "the name is empty");
}

#[test]
fn threads_zero() {
    let e = err(&format!("{BASE}threads: 0\n"));
    expect(&e, 13, 10, Some("threads"), "it must be at least 1");
    let e = err(&format!("{BASE}threads: -2\n"));
    expect(&e, 13, 10, Some("threads"), "it must be at least 1");
    let e = err(&edit(
        "    upstream: frontend\n",
        "    upstream: frontend\n    max_streams: 0\n",
    ));
    expect(&e, 13, 18, Some("routes[1].max_streams"), "at least 1");
}

#[test]
fn keep_warm_values() {
    let kw = |body: &str| {
        edit(
            "    servers: [\"127.0.0.1:3000\"]\n",
            &format!("    servers: [\"127.0.0.1:3000\"]\n    keep_warm:\n{body}"),
        )
    };
    let e = err(&kw("      path: /v1/models\n      body: '{}'\n"));
    expect(
        &e,
        10,
        13,
        Some("upstreams.frontend.keep_warm.body"),
        "a body needs a method such as POST (method is GET)",
    );
    let e = err(&kw(
        "      method: post\n      path: /v1/chat/completions\n",
    ));
    expect(
        &e,
        9,
        15,
        Some("upstreams.frontend.keep_warm.method"),
        "write POST",
    );
    let e = err(&kw("      method: \"PO ST\"\n      path: /x\n"));
    expect(
        &e,
        9,
        15,
        Some("upstreams.frontend.keep_warm.method"),
        "expected a token",
    );
    let e = err(&kw("      method: POST\n"));
    expect(
        &e,
        9,
        7,
        Some("upstreams.frontend.keep_warm"),
        "missing field `path`",
    );
}
