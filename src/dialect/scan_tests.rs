//! The scanner on the payloads it is built for and on the traps around them: each payload must
//! read as serde_json reads it, and take the fast path or fall back as stated.

use super::*;

/// Checks `data` against serde_json; true when the scanner read it without falling back.
fn fast(data: &str) -> bool {
    for event_type in ["message", "content_block_delta", "done", "error"] {
        assert_eq!(
            inspect(event_type, data.as_bytes()),
            inspect_slow(event_type, data.as_bytes()),
            "{data}"
        );
    }
    let mut raw = Raw::default();
    let taken = scan::raw(data.trim().as_bytes(), &mut raw).is_some();
    if taken {
        let serde: Raw<'_> = serde_json::from_slice(data.trim().as_bytes()).unwrap();
        assert_eq!(raw, serde, "{data}");
    }
    taken
}

fn text(data: &str) -> Option<String> {
    inspect("message", data.as_bytes())
        .text
        .map(Cow::into_owned)
}

#[test]
fn hot_shapes_take_the_fast_path() {
    for data in [
        r#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"content":" Caf\u00e9 \"ok\"\n"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":10000,"total_tokens":10019,"prompt_tokens_details":{"cached_tokens":0}}}"#,
        r#"{"id":"cmpl-7","object":"text_completion","created":1690759702,"choices":[{"text":"This","index":0,"logprobs":null,"finish_reason":null}],"model":"gpt-3.5-turbo-instruct"}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"na\u00efve 👋"}}"#,
        r#"{"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "usage": {"input_tokens": 25, "output_tokens": 1}}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
        r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The"},"done":false}"#,
        r#"{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","response":"","done":true,"context":[1,2,3],"total_duration":10706818083,"prompt_eval_count":26,"eval_count":259}"#,
        r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}"#,
        r#"{"type":"response.completed","response":{"id":"resp_1","status":"completed","usage":{"input_tokens":37,"output_tokens":11,"total_tokens":48}}}"#,
        r#"{"type":"chunk","content":"Bonjour \u00e0 tous\n"}"#,
        "{}",
    ] {
        assert!(fast(data), "fell back: {data}");
    }
}

#[test]
fn only_content_at_its_place_is_text() {
    // `content` under logprobs, inside a string, or at the top level of a chat chunk.
    let logprobs = r#"{"choices":[{"delta":{"content":"a"},"logprobs":{"content":[{"token":"b","content":"c"}]}}],"content":"d"}"#;
    assert!(fast(logprobs));
    assert_eq!(text(logprobs).as_deref(), Some("a"));
    let quoted = r#"{"choices":[{"delta":{"role":"{\"content\":\"x\"}","x":"\"content\":"}}]}"#;
    assert!(fast(quoted));
    assert_eq!(text(quoted), None);
    let nested =
        r#"{"choices":[{"delta":{"tool_calls":[{"content":"x"}]},"message":{"content":"y"}}]}"#;
    assert!(fast(nested));
    assert_eq!(text(nested), None);
    let several =
        r#"{"choices":[{"delta":{"content":"ab"}},{"delta":{}},{"delta":{"content":"cd"}}]}"#;
    assert!(fast(several));
    assert_eq!(text(several).as_deref(), Some("abcd"));
}

#[test]
fn what_serde_json_reads_differently_falls_back() {
    for data in [
        // An escaped key is the same key to serde_json.
        r#"{"type":"chunk","cont\u0065nt":"x"}"#,
        // Duplicate fields of derived structs are errors to serde_json.
        r#"{"type":"chunk","type":"chunk","content":"x"}"#,
        r#"{"choices":[{"delta":{"content":"a"},"delta":{}}]}"#,
        r#"{"usage":{"prompt_tokens":1,"prompt_tokens":2},"choices":[]}"#,
        // Counts that are not plain integers, or too long for the scanner to be sure.
        r#"{"choices":[],"usage":{"prompt_tokens":9.0,"completion_tokens":-1}}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":1e2,"completion_tokens":18446744073709551615}}"#,
        // Unpaired surrogates: an error in a string serde_json reads, not in one it skips.
        r#"{"type":"chunk","content":"\ud800"}"#,
        r#"{"type":"chunk","content":"x","id":"\udc00\ud800"}"#,
        // A usage in array form, which derive reads by position.
        r#"{"choices":[],"usage":[3,4]}"#,
    ] {
        assert!(!fast(data), "not left to serde_json: {data}");
    }
    // Invalid UTF-8 in a skipped string, which serde_json does not check.
    let invalid_utf8 = b"{\"type\":\"chunk\",\"content\":\"x\",\"id\":\"\xff\"}";
    assert_eq!(
        inspect("message", invalid_utf8),
        inspect_slow("message", invalid_utf8)
    );
    assert_eq!(inspect("message", invalid_utf8).text.as_deref(), Some("x"));
}

#[test]
fn node_fields_keep_the_last_duplicate_like_serde_json() {
    let twice =
        r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"a","text":"b"}}"#;
    assert!(fast(twice));
    assert_eq!(text(twice).as_deref(), Some("b"));
}

#[test]
fn malformed_payloads_are_nothing_on_both_paths() {
    for data in [
        r#"{"type":"chunk","content":"x"} x"#,
        r#"{"type":"chunk","content":"x",}"#,
        r#"{"type":"chunk","content":"x""#,
        r#"{"type":"chunk","content":"a	b"}"#,
        r#"{"type":"chunk","content":"\x"}"#,
        r#"{"type":"chunk","content":"\u12"}"#,
        r#"{"type":"chunk","content":"x","n":01}"#,
        r#"{"type":"chunk","content":"x","n":1.}"#,
        r#"{"type":"chunk","content":"x","n":-}"#,
        r#"{"type":"chunk","content":"x","n":nul}"#,
        r#"{"type":"chunk" "content":"x"}"#,
        r#"{"type":"chunk","content":"x","a":[1,]}"#,
        r#"{"type":"chunk","content":"x","a":{"b"}}"#,
        "{\"type\":\"chunk\",\u{c}\"content\":\"x\"}",
    ] {
        assert!(!fast(data), "accepted: {data}");
        assert_eq!(
            inspect("message", data.as_bytes()).dialect,
            Dialect::Unknown
        );
    }
}

#[test]
fn whitespace_deep_nesting_and_long_payloads() {
    let spaced =
        " {\n\t\"type\" : \"chunk\" ,\r\n \"content\" :\"x\" , \"a\" : [ 1 , { } , [ ] ] } ";
    assert!(fast(spaced));
    assert_eq!(text(spaced).as_deref(), Some("x"));
    // Nesting past the scanner's limit goes to serde_json, which skips it without one.
    let deep = format!(
        r#"{{"type":"chunk","content":"x","a":{}1{}}}"#,
        "[".repeat(40),
        "]".repeat(40)
    );
    assert!(!fast(&deep));
    assert_eq!(text(&deep).as_deref(), Some("x"));
    let shallow = format!(
        r#"{{"type":"chunk","content":"x","a":{}1{}}}"#,
        "[".repeat(20),
        "]".repeat(20)
    );
    assert!(fast(&shallow));
    // A final Ollama line with a long context array.
    let context = vec!["128006"; 600].join(",");
    let long = format!(
        r#"{{"model":"m","response":"","done":true,"context":[{context}],"eval_count":3}}"#
    );
    assert!(!fast(&long));
    assert_eq!(inspect("message", long.as_bytes()).output_tokens, Some(3));
    // Strings that cross 64-byte blocks, with escapes across the boundaries (at 63 and 125).
    let crossing = format!(
        r#"{{"type":"chunk","content":"{}\n\"{}\u00e9"}}"#,
        "a".repeat(36),
        "b".repeat(58)
    );
    assert_eq!(crossing.find('\\'), Some(63));
    assert!(fast(&crossing));
    assert_eq!(text(&crossing).map(|t| t.chars().count()), Some(97));
}
