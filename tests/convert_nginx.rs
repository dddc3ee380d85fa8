//! `ssegate convert-nginx` through the real binary: the classic SSE setup
//! converts to the expected YAML and notes, and `ssegate check` accepts it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn ssegate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssegate"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

/// Copies a fixture directory (the YAML has to sit beside its TLS files, as nginx.conf does).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn classic_setup_converts_and_passes_check() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nginx/classic");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture, dir.path());

    let out = ssegate(dir.path(), &["convert-nginx", "nginx.conf"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let yaml = text(&out.stdout);
    let expected = std::fs::read_to_string(fixture.join("expected.yaml")).unwrap();
    assert_eq!(yaml, expected);
    assert_eq!(
        stderr,
        "nginx.conf:17: gzip on: ssegate does not compress responses\n\
         nginx.conf:31: server_name chat.example.com: nginx also sent requests for other host names (or a bare IP) to this default server; ssegate answers them 404 unless a route has no host:\n\
         nginx.conf:37: client_max_body_size 20m: ssegate does not limit request bodies\n"
    );

    let config = dir.path().join("ssegate.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let check = ssegate(dir.path(), &["check", "-c", config.to_str().unwrap()]);
    let summary = text(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    assert!(summary.contains("  0.0.0.0:443 tls cert="), "{summary}");
    assert!(
        summary.contains(
            "host=chat.example.com path=/api/chat/stream/ name=/api/chat/stream/ upstream=backend stream(idle_timeout=10m heartbeat=off sse_headers=true"
        ),
        "{summary}"
    );
}

#[test]
fn errors_exit_1_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("nginx.conf"),
        "http {\n    include sites/*.conf;\n}\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("sites")).unwrap();
    std::fs::write(
        dir.path().join("sites/app.conf"),
        "server {\n    listen 80\n}\n",
    )
    .unwrap();
    let out = ssegate(dir.path(), &["convert-nginx", "nginx.conf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "ssegate: sites/app.conf:3: unexpected \"}\": \"listen\" needs a \";\"\n"
    );

    // Nothing to route: the notes say why, then the error.
    std::fs::write(
        dir.path().join("sites/app.conf"),
        "server {\n    listen 80;\n    root /srv/www;\n}\n",
    )
    .unwrap();
    let out = ssegate(dir.path(), &["convert-nginx", "nginx.conf"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "sites/app.conf:3: root /srv/www: ssegate serves no files\n\
         ssegate: no location could be translated into a route\n"
    );
}
