//! Model output text, token usage and end markers read from one event's payload.
//!
//! A strict scanner (`dialect/scan.rs`) reads the common payloads into the same `Raw` that
//! serde_json would build, about three times faster; whatever it is unsure of is parsed with
//! serde_json, only as far as needed: unknown fields are skipped without being built, and
//! strings without escapes borrow from the event's bytes.

use std::borrow::Cow;
use std::cell::RefCell;

use serde::de::IgnoredAny;
use serde::Deserialize;

#[path = "dialect/de.rs"]
mod de;
#[path = "dialect/scan.rs"]
mod scan;
#[path = "dialect/shape.rs"]
mod shape;

pub use shape::Inspector;

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
    // Whatever the scanner is unsure of goes to serde_json: both paths give the same `Raw`
    // (`dialect/proptests.rs` checks it).
    read(event_type, data, |body, raw| {
        scan::raw(body, raw).is_some() || parse(body, raw)
    })
}

/// `inspect`, also noting in `holes` the values it passed over unread; `holes` is left empty
/// unless the scanner read the whole payload.
fn inspect_noting_holes<'a>(
    event_type: &str,
    data: &'a [u8],
    holes: &RefCell<Vec<scan::Hole>>,
) -> Payload<'a> {
    holes.borrow_mut().clear();
    read(event_type, data, |body, raw| {
        scan::raw_noting_holes(body, raw, holes).is_some() || {
            holes.borrow_mut().clear();
            parse(body, raw)
        }
    })
}

/// `inspect` through serde_json alone: the reference the fast path is tested and benched against.
pub fn inspect_slow<'a>(event_type: &str, data: &'a [u8]) -> Payload<'a> {
    read(event_type, data, parse)
}

/// serde_json's reading of `body` into `raw`; false when it is not valid.
fn parse<'a>(body: &'a [u8], raw: &mut Raw<'a>) -> bool {
    match serde_json::from_slice(body) {
        Ok(parsed) => {
            *raw = parsed;
            true
        }
        Err(_) => false,
    }
}

/// What both paths share: `parse` reads a trimmed JSON object into a default `Raw`, false
/// when it is not valid (what it left in `Raw` then is dropped).
fn read<'a>(
    event_type: &str,
    data: &'a [u8],
    parse: impl FnOnce(&'a [u8], &mut Raw<'a>) -> bool,
) -> Payload<'a> {
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
    let mut raw = Raw::default();
    if parse(body, &mut raw) {
        raw.read_into(&mut payload);
    }
    payload.text = payload.text.filter(|t| !t.is_empty());
    payload
}

/// The union of the top-level fields every dialect uses.
#[derive(Debug, Default, PartialEq, Deserialize)]
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
    /// What `Raw` says, taking the values it hands over (by reference: `Raw` is large).
    fn read_into(&mut self, p: &mut Payload<'a>) {
        p.error |= self.error.is_some();
        let object = self.object.as_str().unwrap_or_default();
        if self.choices.is_some()
            || object.starts_with("chat.completion")
            || object == "text_completion"
        {
            let choices = self.choices.take().unwrap_or_default();
            let completions = object == "text_completion" || (choices.completion && !choices.chat);
            p.dialect = if completions {
                Dialect::OpenAiCompletions
            } else {
                Dialect::OpenAiChat
            };
            p.text = choices.text;
            if let Some(u) = self.usage.take() {
                p.input_tokens = u.prompt_tokens.num().or(u.input_tokens.num());
                p.output_tokens = u.completion_tokens.num().or(u.output_tokens.num());
            }
            return;
        }
        match self.kind.as_str().unwrap_or_default() {
            kind if kind.starts_with("response.") => {
                p.dialect = Dialect::OpenAiResponses;
                match kind {
                    "response.output_text.delta" => {
                        p.text = self.delta.take().and_then(|d| d.string)
                    }
                    "response.completed" => p.end = true,
                    "response.failed" => p.error = true,
                    _ => {}
                }
                if let Some(u) = self.response.take().and_then(|r| r.usage) {
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
                        let delta = self.delta.take().unwrap_or_default();
                        if delta.kind.as_str() == Some("text_delta") {
                            p.text = delta.text.into_str();
                        }
                        None
                    }
                    "message_start" => self.message.take().and_then(|m| m.usage),
                    "message_delta" => self.usage.take(),
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
                    "chunk" => p.text = std::mem::take(&mut self.content).into_str(),
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
                    p.text = match (self.message.take(), self.response.take()) {
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
#[derive(Debug, Default, PartialEq, Deserialize)]
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
#[derive(Debug, Default, PartialEq)]
struct Choices<'a> {
    text: Option<Cow<'a, str>>,
    chat: bool,
    completion: bool,
}

impl<'a> Choices<'a> {
    /// Fold one more choice in (shared by the serde visitor and the scanner).
    fn add(&mut self, choice: Choice<'a>) {
        if let Some(delta) = choice.delta {
            self.chat = true;
            append(&mut self.text, delta.content.into_str());
        }
        if let Some(text) = choice.text.into_str() {
            self.completion = true;
            append(&mut self.text, Some(text));
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Choice<'a> {
    #[serde(borrow)]
    delta: Option<Node<'a>>,
    #[serde(borrow)]
    text: Scalar<'a>,
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
#[derive(Debug, Default, PartialEq)]
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

/// A value that is a string in one dialect and an object in another; only a few fields are kept.
#[derive(Debug, Default, PartialEq)]
struct Node<'a> {
    string: Option<Cow<'a, str>>,
    kind: Scalar<'a>,
    text: Scalar<'a>,
    content: Scalar<'a>,
    usage: Option<Box<Usage<'a>>>,
}

#[cfg(test)]
#[path = "dialect/proptests.rs"]
mod proptests;
#[cfg(test)]
#[path = "dialect/scan_tests.rs"]
mod scan_tests;
#[cfg(test)]
#[path = "dialect/tests.rs"]
mod tests;
