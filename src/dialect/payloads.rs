//! Payloads shaped like each dialect's, with the variations servers and proxies produce.

use proptest::prelude::*;

use super::{list, lit, number, object, string, value, S};

fn usage() -> S {
    prop_oneof![
        4 => object(vec![
            ("prompt_tokens", number(), 0.7),
            ("completion_tokens", number(), 0.7),
            ("total_tokens", number(), 0.5),
            ("input_tokens", number(), 0.5),
            ("output_tokens", number(), 0.5),
            ("prompt_tokens_details", value(), 0.3),
        ]),
        2 => lit("null"),
        1 => value(),
    ]
    .boxed()
}

pub(super) fn openai() -> S {
    let content = prop_oneof![6 => string(), 1 => lit("null"), 1 => value()];
    let delta = prop_oneof![
        6 => object(vec![
            ("role", lit("\"assistant\""), 0.3),
            ("content", content.boxed(), 0.8),
            ("refusal", lit("null"), 0.2),
            ("tool_calls", value(), 0.1),
        ]),
        1 => value(),
    ];
    let logprobs = prop_oneof![4 => lit("null"), 1 => object(vec![("content", value(), 0.9)])];
    let choice = prop_oneof![
        8 => object(vec![
            ("index", number(), 0.8),
            ("delta", delta.boxed(), 0.8),
            ("text", string(), 0.2),
            ("logprobs", logprobs.boxed(), 0.5),
            ("finish_reason", prop_oneof![lit("null"), string()].boxed(), 0.5),
        ]),
        1 => value(),
    ];
    let choices = prop_oneof![8 => list(choice.boxed(), 0..3), 1 => lit("null"), 1 => value()];
    let object_ = prop_oneof![
        lit("\"chat.completion.chunk\""),
        lit("\"text_completion\""),
        string()
    ];
    object(vec![
        ("id", lit("\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\""), 0.8),
        ("object", object_.boxed(), 0.8),
        ("created", number(), 0.6),
        ("model", string(), 0.5),
        ("choices", choices.boxed(), 0.9),
        ("usage", usage(), 0.5),
        ("error", prop_oneof![lit("null"), value()].boxed(), 0.1),
    ])
}

pub(super) fn anthropic() -> S {
    let kind = prop::sample::select(vec![
        "\"content_block_delta\"",
        "\"content_block_delta\"",
        "\"content_block_delta\"",
        "\"message_start\"",
        "\"message_delta\"",
        "\"message_stop\"",
        "\"content_block_start\"",
        "\"content_block_stop\"",
        "\"ping\"",
        "\"error\"",
        "\"other\"",
        "null",
    ])
    .prop_map(str::to_owned);
    let delta_kind = prop_oneof![
        4 => lit("\"text_delta\""),
        1 => lit("\"input_json_delta\""),
        1 => string()
    ];
    let delta = prop_oneof![
        6 => object(vec![
            ("type", delta_kind.boxed(), 0.9),
            ("text", prop_oneof![6 => string(), 1 => value()].boxed(), 0.8),
            ("partial_json", string(), 0.1),
            ("stop_reason", string(), 0.1),
            ("usage", usage(), 0.1),
        ]),
        1 => string(),
        1 => value(),
    ];
    let message = object(vec![
        ("id", string(), 0.5),
        ("content", lit("[]"), 0.5),
        ("usage", usage(), 0.8),
    ]);
    object(vec![
        ("type", kind.boxed(), 0.95),
        ("index", number(), 0.5),
        ("delta", delta.boxed(), 0.7),
        ("message", message, 0.2),
        ("usage", usage(), 0.2),
        ("error", value(), 0.05),
    ])
}

pub(super) fn ollama() -> S {
    let message = prop_oneof![
        6 => object(vec![
            ("role", lit("\"assistant\""), 0.8),
            ("content", prop_oneof![6 => string(), 1 => value()].boxed(), 0.9),
            ("images", lit("null"), 0.3),
        ]),
        1 => value(),
    ];
    let done = prop_oneof![4 => lit("false"), 2 => lit("true"), 1 => value()];
    object(vec![
        ("model", lit("\"llama3.2\""), 0.8),
        (
            "created_at",
            lit("\"2023-08-04T08:52:19.385406455-07:00\""),
            0.8,
        ),
        ("message", message.boxed(), 0.6),
        (
            "response",
            prop_oneof![4 => string(), 1 => value()].boxed(),
            0.4,
        ),
        ("done", done.boxed(), 0.9),
        ("prompt_eval_count", number(), 0.3),
        ("eval_count", number(), 0.3),
        ("context", list(number(), 0..5), 0.1),
        ("error", string(), 0.05),
    ])
}

pub(super) fn responses_and_chunks() -> S {
    let kind = prop::sample::select(vec![
        "\"response.output_text.delta\"",
        "\"response.output_text.delta\"",
        "\"response.completed\"",
        "\"response.failed\"",
        "\"response.created\"",
        "\"chunk\"",
        "\"chunk\"",
        "\"start\"",
        "\"done\"",
        "\"error\"",
    ])
    .prop_map(str::to_owned);
    let response = prop_oneof![
        4 => object(vec![
            ("id", string(), 0.5),
            ("status", string(), 0.5),
            ("usage", usage(), 0.7),
            ("output", value(), 0.3),
        ]),
        1 => value(),
    ];
    object(vec![
        ("type", kind.boxed(), 0.95),
        ("sequence_number", number(), 0.5),
        (
            "delta",
            prop_oneof![6 => string(), 1 => value()].boxed(),
            0.5,
        ),
        (
            "content",
            prop_oneof![6 => string(), 1 => value()].boxed(),
            0.4,
        ),
        ("response", response.boxed(), 0.3),
    ])
}
