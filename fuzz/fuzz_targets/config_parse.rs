//! The config loader (`ssegate::config::parse`) on arbitrary text: YAML syntax, serde's
//! model, the key locator used for error positions, and the validation in `resolve`.
//! Checked: no panic, no hang; an error always names the file, and a position it gives is
//! inside the text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let source = Path::new("/nonexistent/fuzz/ssegate.yaml");
    match ssegate::config::parse(text, source) {
        Ok(cfg) => {
            assert!(!cfg.listeners.is_empty(), "a config without a listener");
            let _ = ssegate::config::summary(&cfg);
        }
        Err(e) => {
            assert_eq!(e.file, source);
            if let Some(line) = e.line {
                // YAML breaks lines at CR, LF, CRLF and (1.1) NEL, LS, PS; serde_yaml may
                // point one line past the last one (end of input).
                let breaks = text
                    .replace("\r\n", "\n")
                    .matches(['\r', '\n', '\u{85}', '\u{2028}', '\u{2029}'])
                    .count();
                assert!(line >= 1 && line <= breaks + 2, "{e} (line out of text)");
            }
            let _ = e.to_string();
        }
    }
});
