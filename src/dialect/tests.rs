use super::*;

/// (text, input tokens, output tokens, end, error) of one event.
type Seen = (Option<String>, Option<u64>, Option<u64>, bool, bool);

fn seen(event_type: &str, data: &str) -> (Dialect, Seen) {
    let p = inspect(event_type, data.as_bytes());
    (
        p.dialect,
        (
            p.text.map(Cow::into_owned),
            p.input_tokens,
            p.output_tokens,
            p.end,
            p.error,
        ),
    )
}

fn text(t: &str) -> Seen {
    (Some(t.into()), None, None, false, false)
}

const NOTHING: Seen = (None, None, None, false, false);
const END: Seen = (None, None, None, true, false);
const ERROR: Seen = (None, None, None, false, true);

#[test]
fn openai_chat_stream_with_usage() {
    // POST /v1/chat/completions with "stream": true, "stream_options": {"include_usage": true}.
    let events = [
        (
            r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            NOTHING,
        ),
        (
            r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            text("Hello"),
        ),
        (
            r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"!\nCaf\u00e9 \ud83d\ude00 \"ok\""},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            text("!\nCafé 😀 \"ok\""),
        ),
        (
            r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
            NOTHING,
        ),
        (
            r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#,
            (None, Some(9), Some(12), false, false),
        ),
        ("[DONE]", END),
    ];
    for (data, want) in events {
        assert_eq!(seen("message", data), (Dialect::OpenAiChat, want), "{data}");
    }
}

#[test]
fn unescaped_text_borrows_and_escaped_text_is_decoded() {
    let plain =
        r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hello"}}]}"#;
    assert!(matches!(
        inspect("message", plain.as_bytes()).text,
        Some(Cow::Borrowed("Hello"))
    ));
    let escaped = r#"{"choices":[{"delta":{"content":"a\tb\u00e9\ud83d\ude00"}}]}"#;
    let p = inspect("message", escaped.as_bytes());
    assert_eq!(p.text.as_deref(), Some("a\tbé😀"));
    assert_eq!(p.text.map(|t| t.chars().count()), Some(5));
}

#[test]
fn openai_chat_tool_call_and_multiple_choices() {
    let tool = r#"{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#;
    assert_eq!(seen("message", tool), (Dialect::OpenAiChat, NOTHING));
    let n2 = r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"ab"}},{"index":1,"delta":{"content":"cd"}}]}"#;
    assert_eq!(seen("message", n2), (Dialect::OpenAiChat, text("abcd")));
}

#[test]
fn openai_completions_stream() {
    let chunk = r#"{"id":"cmpl-7iA7iJjj8V2zOkCGvWF2hAkDWBQZe","object":"text_completion","created":1690759702,"choices":[{"text":"This","index":0,"logprobs":null,"finish_reason":null}],"model":"gpt-3.5-turbo-instruct","system_fingerprint":"fp_44709d6fcb"}"#;
    assert_eq!(
        seen("message", chunk),
        (Dialect::OpenAiCompletions, text("This"))
    );
    let usage = r#"{"id":"cmpl-1","object":"text_completion","created":1690759702,"choices":[],"model":"gpt-3.5-turbo-instruct","usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
    assert_eq!(
        seen("message", usage),
        (
            Dialect::OpenAiCompletions,
            (None, Some(5), Some(7), false, false)
        )
    );
    // A server that omits `object` is still told apart by the choice's shape.
    let bare = r#"{"choices":[{"text":" is","index":0}]}"#;
    assert_eq!(
        seen("message", bare),
        (Dialect::OpenAiCompletions, text(" is"))
    );
}

#[test]
fn openai_responses_stream() {
    let r = Dialect::OpenAiResponses;
    let events = [
        (
            "response.created",
            r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654","object":"response","created_at":1741290958,"status":"in_progress","error":null,"incomplete_details":null,"instructions":"You are a helpful assistant.","max_output_tokens":null,"model":"gpt-4.1-2025-04-14","output":[],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":null,"user":null,"metadata":{}}}"#,
            NOTHING,
        ),
        (
            "response.output_item.added",
            r#"{"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_67c9fdcf37fc8190ba82116e33fb28c507b8b0ad4e5eb654","type":"message","status":"in_progress","role":"assistant","content":[]}}"#,
            NOTHING,
        ),
        (
            "response.content_part.added",
            r#"{"type":"response.content_part.added","sequence_number":3,"item_id":"msg_67c9fdcf37fc8190ba82116e33fb28c507b8b0ad4e5eb654","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}"#,
            NOTHING,
        ),
        (
            "response.output_text.delta",
            r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_67c9fdcf37fc8190ba82116e33fb28c507b8b0ad4e5eb654","output_index":0,"content_index":0,"delta":"Hi"}"#,
            text("Hi"),
        ),
        (
            "response.output_text.delta",
            r#"{"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"delta":" th\u00e9re\n"}"#,
            text(" thére\n"),
        ),
        // The full text again: not new output.
        (
            "response.output_text.done",
            r#"{"type":"response.output_text.done","sequence_number":6,"item_id":"msg_1","output_index":0,"content_index":0,"text":"Hi thére\n"}"#,
            NOTHING,
        ),
        (
            "response.completed",
            r#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","object":"response","created_at":1741290958,"status":"completed","error":null,"model":"gpt-4.1-2025-04-14","output":[{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi thére\n","annotations":[]}]}],"text":{"format":{"type":"text"}},"usage":{"input_tokens":37,"input_tokens_details":{"cached_tokens":0},"output_tokens":11,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":48},"user":null,"metadata":{}}}"#,
            (None, Some(37), Some(11), true, false),
        ),
    ];
    for (ty, data, want) in events {
        assert_eq!(seen(ty, data), (r, want), "{data}");
    }
    let failed = r#"{"type":"response.failed","sequence_number":3,"response":{"id":"resp_1","object":"response","status":"failed","error":{"code":"server_error","message":"The model failed to generate a response."},"usage":null}}"#;
    assert_eq!(seen("response.failed", failed), (r, ERROR));
    let error = r#"{"type":"error","code":"ERR_SOMETHING","message":"Something went wrong","param":null,"sequence_number":1}"#;
    assert_eq!(seen("error", error), (Dialect::Unknown, ERROR));
}

#[test]
fn anthropic_messages_stream() {
    let a = Dialect::Anthropic;
    let events = [
        (
            "message_start",
            r#"{"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}"#,
            (None, Some(25), Some(1), false, false),
        ),
        (
            "content_block_start",
            r#"{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}"#,
            NOTHING,
        ),
        ("ping", r#"{"type": "ping"}"#, NOTHING),
        (
            "content_block_delta",
            r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}"#,
            text("Hello"),
        ),
        (
            "content_block_delta",
            r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "! \u00c7a va?\n\ud83d\udc4b"}}"#,
            text("! Ça va?\n👋"),
        ),
        (
            "content_block_stop",
            r#"{"type": "content_block_stop", "index": 0}"#,
            NOTHING,
        ),
        (
            "content_block_delta",
            r#"{"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"location\": \"San Fra"}}"#,
            NOTHING,
        ),
        (
            "content_block_delta",
            r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me solve this"}}"#,
            NOTHING,
        ),
        (
            "message_delta",
            r#"{"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}"#,
            (None, None, Some(15), false, false),
        ),
        ("message_stop", r#"{"type": "message_stop"}"#, END),
    ];
    for (ty, data, want) in events {
        assert_eq!(seen(ty, data), (a, want), "{data}");
    }
    let overloaded =
        r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#;
    assert_eq!(seen("error", overloaded), (Dialect::Unknown, ERROR));
}

#[test]
fn ollama_chat_and_generate_lines() {
    let o = Dialect::Ollama;
    let lines = [
        (
            r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The","images":null},"done":false}"#,
            text("The"),
        ),
        (
            r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":" caf\u00e9\n"},"done":false}"#,
            text(" café\n"),
        ),
        (
            r#"{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546000,"eval_count":282,"eval_duration":4535599000}"#,
            (None, Some(26), Some(282), true, false),
        ),
        (
            r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","response":"The","done":false}"#,
            text("The"),
        ),
        (
            r#"{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","response":"","done":true,"context":[1,2,3],"total_duration":10706818083,"load_duration":6338219291,"prompt_eval_count":26,"prompt_eval_duration":130079000,"eval_count":259,"eval_duration":4232710000}"#,
            (None, Some(26), Some(259), true, false),
        ),
    ];
    for (data, want) in lines {
        assert_eq!(seen("message", data), (o, want), "{data}");
    }
    assert_eq!(
        seen("message", r#"{"error":"model 'llama9' not found"}"#),
        (Dialect::Unknown, ERROR)
    );
}

#[test]
fn chunk_dialect() {
    let c = Dialect::Chunk;
    assert_eq!(
        seen("message", r#"{"type":"start","id":"c1"}"#),
        (c, NOTHING)
    );
    assert_eq!(
        seen(
            "message",
            r#"{"type":"chunk","content":"Bonjour \u00e0 tous\n"}"#
        ),
        (c, text("Bonjour à tous\n"))
    );
    assert_eq!(seen("message", r#"{"type":"done"}"#), (c, END));
    assert_eq!(
        seen(
            "message",
            r#"{"type":"error","message":"upstream model crashed"}"#
        ),
        (Dialect::Unknown, ERROR)
    );
}

#[test]
fn event_type_done_and_error() {
    assert_eq!(seen("done", "{}"), (Dialect::Unknown, END));
    assert_eq!(seen("done", ""), (Dialect::Unknown, END));
    assert_eq!(
        seen("error", "upstream timed out"),
        (Dialect::Unknown, ERROR)
    );
    assert_eq!(
        seen(
            "message",
            r#"{"error":{"message":"The server had an error","type":"server_error"}}"#
        ),
        (Dialect::Unknown, ERROR)
    );
    assert_eq!(
        seen("message", r#"{"error":null,"x":1}"#),
        (Dialect::Unknown, NOTHING)
    );
}

#[test]
fn unknown_payloads_carry_nothing() {
    for data in [
        "",
        "hello",
        "[1,2]",
        "{not json",
        r#"{"foo":"bar"}"#,
        r#"{"type":"other","content":"x"}"#,
        "  [DONE]x",
    ] {
        assert_eq!(seen("message", data), (Dialect::Unknown, NOTHING), "{data}");
    }
    // Whitespace around the end marker is tolerated.
    assert_eq!(seen("message", " [DONE]\n"), (Dialect::OpenAiChat, END));
}

#[test]
fn odd_field_types_do_not_lose_the_event() {
    let floats = r#"{"choices":[],"object":"chat.completion.chunk","usage":{"prompt_tokens":9.0,"completion_tokens":-1}}"#;
    assert_eq!(
        seen("message", floats),
        (Dialect::OpenAiChat, (None, Some(9), None, false, false))
    );
    // Only a text_delta is output, whatever other delta types may carry.
    let other = r#"{"type":"content_block_delta","delta":{"type":"citations_delta","text":"x"}}"#;
    assert_eq!(seen("message", other), (Dialect::Anthropic, NOTHING));
    let odd = r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":7}}"#;
    assert_eq!(seen("message", odd), (Dialect::Anthropic, NOTHING));
}

#[test]
fn names_and_end_markers() {
    let all = [
        Dialect::Unknown,
        Dialect::OpenAiChat,
        Dialect::OpenAiCompletions,
        Dialect::OpenAiResponses,
        Dialect::Anthropic,
        Dialect::Ollama,
        Dialect::Chunk,
    ];
    let names: Vec<_> = all.iter().map(|d| d.as_str()).collect();
    assert_eq!(
        names,
        [
            "unknown",
            "openai_chat",
            "openai_completions",
            "openai_responses",
            "anthropic",
            "ollama",
            "chunk"
        ]
    );
    assert!(all
        .iter()
        .all(|d| d.has_end_marker() == (*d != Dialect::Unknown)));
}
