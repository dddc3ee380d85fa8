//! Model output text, token usage and end markers read from one event's payload.
//!
//! Payloads are parsed with serde_json only as far as needed: unknown fields are skipped
//! without being built, and strings without escapes borrow from the event's bytes.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The API family an event's payload belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// Not recognised: not JSON, or another shape.
    #[default]
    Unknown,
    /// OpenAI chat completions (`choices[].delta.content`), as also served by LM Studio, vLLM, llama.cpp.
    OpenAiChat,
    /// OpenAI legacy completions (`choices[].text`).
    OpenAiCompletions,
    /// OpenAI Responses API (`response.*` events).
    OpenAiResponses,
    /// Anthropic messages API.
    Anthropic,
    /// Ollama `/api/chat` and `/api/generate`.
    Ollama,
    /// Plain `{"type":"chunk","content":"..."}` events.
    Chunk,
}

impl Dialect {
    /// A stable lower-case name for logs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Unknown => "unknown",
            Dialect::OpenAiChat => "openai_chat",
            Dialect::OpenAiCompletions => "openai_completions",
            Dialect::OpenAiResponses => "openai_responses",
            Dialect::Anthropic => "anthropic",
            Dialect::Ollama => "ollama",
            Dialect::Chunk => "chunk",
        }
    }

    /// Whether this dialect ends a normal stream with an end marker.
    pub fn has_end_marker(self) -> bool {
        self != Dialect::Unknown
    }
}

/// What one event carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload<'a> {
    /// The dialect this event is recognisably of (`Unknown` for pings of unknown shape etc.).
    pub dialect: Dialect,
    /// Model output text in this event, `None` if none (empty text counts as none).
    pub text: Option<Cow<'a, str>>,
    /// Input (prompt) tokens reported by this event.
    pub input_tokens: Option<u64>,
    /// Output (completion) tokens reported by this event; Anthropic's are cumulative.
    pub output_tokens: Option<u64>,
    /// This event is the end marker of its stream.
    pub end: bool,
    /// This event reports an in-stream error.
    pub error: bool,
}

/// Read one event: `event_type` is the SSE `event:` field (`"message"` by default).
pub fn inspect<'a>(event_type: &str, data: &'a [u8]) -> Payload<'a> {
    let mut payload = Payload {
        end: event_type == "done",
        error: event_type == "error",
        ..Payload::default()
    };
    let body = data.trim_ascii();
    if body == b"[DONE]" {
        payload.dialect = Dialect::OpenAiChat;
        payload.end = true;
        return payload;
    }
    // Every known payload is a JSON object: anything else skips the JSON parser.
    if body.first() != Some(&b'{') {
        return payload;
    }
    if let Ok(raw) = serde_json::from_slice::<Raw<'a>>(body) {
        raw.read_into(&mut payload);
    }
    payload.text = payload.text.filter(|t| !t.is_empty());
    payload
}

/// The union of the top-level fields every dialect uses.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Raw<'a> {
    #[serde(rename = "type", borrow)]
    kind: Scalar<'a>,
    #[serde(borrow)]
    object: Scalar<'a>,
    #[serde(borrow)]
    choices: Option<Choices<'a>>,
    #[serde(borrow)]
    usage: Option<Box<Usage<'a>>>,
    /// A string (Responses) or an object (Anthropic).
    #[serde(borrow)]
    delta: Option<Node<'a>>,
    /// Ollama's chat message, or Anthropic's message_start message.
    #[serde(borrow)]
    message: Option<Node<'a>>,
    /// Ollama's generated text, or the Responses API response object.
    #[serde(borrow)]
    response: Option<Node<'a>>,
    /// The chunk dialect's text.
    #[serde(borrow)]
    content: Scalar<'a>,
    /// Ollama's end flag; its presence is what marks an Ollama line.
    #[serde(borrow)]
    done: Scalar<'a>,
    #[serde(borrow)]
    prompt_eval_count: Scalar<'a>,
    #[serde(borrow)]
    eval_count: Scalar<'a>,
    /// Present and not null on OpenAI and Ollama error payloads.
    error: Option<IgnoredAny>,
}

impl<'a> Raw<'a> {
    fn read_into(self, p: &mut Payload<'a>) {
        p.error |= self.error.is_some();
        let object = self.object.as_str().unwrap_or_default();
        if self.choices.is_some()
            || object.starts_with("chat.completion")
            || object == "text_completion"
        {
            let choices = self.choices.unwrap_or_default();
            let completions = object == "text_completion" || (choices.completion && !choices.chat);
            p.dialect = if completions {
                Dialect::OpenAiCompletions
            } else {
                Dialect::OpenAiChat
            };
            p.text = choices.text;
            if let Some(u) = self.usage {
                p.input_tokens = u.prompt_tokens.num().or(u.input_tokens.num());
                p.output_tokens = u.completion_tokens.num().or(u.output_tokens.num());
            }
            return;
        }
        match self.kind.as_str().unwrap_or_default() {
            kind if kind.starts_with("response.") => {
                p.dialect = Dialect::OpenAiResponses;
                match kind {
                    "response.output_text.delta" => p.text = self.delta.and_then(|d| d.string),
                    "response.completed" => p.end = true,
                    "response.failed" => p.error = true,
                    _ => {}
                }
                if let Some(u) = self.response.and_then(|r| r.usage) {
                    p.input_tokens = u.input_tokens.num();
                    p.output_tokens = u.output_tokens.num();
                }
            }
            kind @ ("message_start"
            | "message_delta"
            | "message_stop"
            | "content_block_start"
            | "content_block_delta"
            | "content_block_stop"
            | "ping") => {
                p.dialect = Dialect::Anthropic;
                let usage = match kind {
                    "content_block_delta" => {
                        let delta = self.delta.unwrap_or_default();
                        if delta.kind.as_str() == Some("text_delta") {
                            p.text = delta.text.into_str();
                        }
                        None
                    }
                    "message_start" => self.message.and_then(|m| m.usage),
                    "message_delta" => self.usage,
                    "message_stop" => {
                        p.end = true;
                        None
                    }
                    _ => None,
                };
                if let Some(u) = usage {
                    p.input_tokens = u.input_tokens.num();
                    p.output_tokens = u.output_tokens.num();
                }
            }
            kind @ ("start" | "chunk" | "done") => {
                p.dialect = Dialect::Chunk;
                match kind {
                    "chunk" => p.text = self.content.into_str(),
                    "done" => p.end = true,
                    _ => {}
                }
            }
            // An error shape shared by several dialects: it says nothing of the dialect.
            "error" => p.error = true,
            _ => {
                if let Scalar::Bool(done) = self.done {
                    p.dialect = Dialect::Ollama;
                    p.end |= done;
                    p.text = match (self.message, self.response) {
                        (Some(m), _) => m.content.into_str(),
                        (None, Some(r)) => r.string,
                        (None, None) => None,
                    };
                    p.input_tokens = self.prompt_eval_count.num();
                    p.output_tokens = self.eval_count.num();
                }
            }
        }
    }
}

/// Token counts under any of the dialects' names.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Usage<'a> {
    #[serde(borrow)]
    prompt_tokens: Scalar<'a>,
    #[serde(borrow)]
    completion_tokens: Scalar<'a>,
    #[serde(borrow)]
    input_tokens: Scalar<'a>,
    #[serde(borrow)]
    output_tokens: Scalar<'a>,
}

/// OpenAI `choices`, folded while parsing so that no `Vec` is built.
#[derive(Debug, Default)]
struct Choices<'a> {
    text: Option<Cow<'a, str>>,
    chat: bool,
    completion: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Choice<'a> {
    #[serde(borrow)]
    delta: Option<Node<'a>>,
    #[serde(borrow)]
    text: Scalar<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Choices<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Choices<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of choices")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Choices<'a>, A::Error> {
                let mut out = Choices::default();
                while let Some(choice) = seq.next_element::<Choice<'a>>()? {
                    if let Some(delta) = choice.delta {
                        out.chat = true;
                        append(&mut out.text, delta.content.into_str());
                    }
                    if let Some(text) = choice.text.into_str() {
                        out.completion = true;
                        append(&mut out.text, Some(text));
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// Several choices (`n > 1`) all count as output.
fn append<'a>(acc: &mut Option<Cow<'a, str>>, more: Option<Cow<'a, str>>) {
    let Some(more) = more.filter(|m| !m.is_empty()) else {
        return;
    };
    match acc {
        Some(acc) => acc.to_mut().push_str(&more),
        None => *acc = Some(more),
    }
}

/// A leaf value read leniently: a value of another type is skipped instead of failing the event.
#[derive(Debug, Default)]
enum Scalar<'a> {
    #[default]
    Other,
    Str(Cow<'a, str>),
    Num(u64),
    Bool(bool),
}

impl<'a> Scalar<'a> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    fn into_str(self) -> Option<Cow<'a, str>> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    fn num(&self) -> Option<u64> {
        match self {
            Scalar::Num(n) => Some(*n),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor(PhantomData))
    }
}

struct ScalarVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
    type Value = Scalar<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Num(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'a>, E> {
        Ok(u64::try_from(v).map_or(Scalar::Other, Scalar::Num))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar<'a>, E> {
        // Some servers write counts as floats; `as` saturates.
        Ok(if v >= 0.0 {
            Scalar::Num(v as u64)
        } else {
            Scalar::Other
        })
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar<'a>, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar<'a>, A::Error> {
        IgnoredAny.visit_map(map).map(|_| Scalar::Other)
    }
}

/// A value that is a string in one dialect and an object in another; only a few fields are kept.
#[derive(Debug, Default)]
struct Node<'a> {
    string: Option<Cow<'a, str>>,
    kind: Scalar<'a>,
    text: Scalar<'a>,
    content: Scalar<'a>,
    usage: Option<Box<Usage<'a>>>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum NodeKey {
    Type,
    Text,
    Content,
    Usage,
    #[serde(other)]
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Node<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Node<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'a>, A::Error> {
                let mut node = Node::default();
                while let Some(key) = map.next_key::<NodeKey>()? {
                    match key {
                        NodeKey::Type => node.kind = map.next_value()?,
                        NodeKey::Text => node.text = map.next_value()?,
                        NodeKey::Content => node.content = map.next_value()?,
                        NodeKey::Usage => node.usage = map.next_value()?,
                        NodeKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(node)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'a>, E> {
                Ok(Node {
                    string: Some(Cow::Borrowed(v)),
                    ..Node::default()
                })
            }
            fn visit_str<E>(self, v: &str) -> Result<Node<'a>, E> {
                Ok(Node {
                    string: Some(Cow::Owned(v.to_owned())),
                    ..Node::default()
                })
            }
            fn visit_string<E>(self, v: String) -> Result<Node<'a>, E> {
                Ok(Node {
                    string: Some(Cow::Owned(v)),
                    ..Node::default()
                })
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node<'a>, E> {
                Ok(Node::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node<'a>, E> {
                Ok(Node::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node<'a>, E> {
                Ok(Node::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node<'a>, E> {
                Ok(Node::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Node<'a>, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Node::default())
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

#[cfg(test)]
#[path = "dialect/tests.rs"]
mod tests;
