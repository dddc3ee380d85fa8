//! `ssegate convert-nginx` (`ssegate::nginx::convert`) on arbitrary nginx config text,
//! written to a file in an empty temporary directory (relative includes find nothing there).
//! Checked: no panic, no hang; a conversion that succeeds emits YAML that parses as YAML,
//! and that ssegate's own config loader reads without panicking.
//!
//! Inputs naming device or kernel files (`/dev/`, `/proc/`, `/sys/`) are skipped: an
//! `include /dev/zero;` would make the converter read forever; the operator's own config
//! is trusted that far.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
}

fuzz_target!(|input: &[u8]| {
    if ["/dev/", "/proc/", "/sys/"]
        .iter()
        .any(|p| input.windows(p.len()).any(|w| w == p.as_bytes()))
    {
        return;
    }
    let path = dir().path().join("nginx.conf");
    std::fs::write(&path, input).expect("write the input");
    match ssegate::nginx::convert(&path) {
        Ok(conv) => {
            if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(&conv.yaml) {
                panic!("convert-nginx emitted invalid YAML ({e}):\n{}", conv.yaml);
            }
            let _ = ssegate::config::parse(&conv.yaml, &dir().path().join("ssegate.yaml"));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
