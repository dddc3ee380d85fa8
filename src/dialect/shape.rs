//! The repeated-shape path of [`Inspector`]: a stream's events mostly differ from the last one
//! only in their text (an OpenAI chunk repeats its id, model, creation time and field order
//! every time; Anthropic's and the chunk dialect's deltas likewise).
//!
//! After an event whose text is one string of its payload, the inspector keeps the bytes
//! before and after that string. A next event with the same bytes around a valid JSON string
//! reads as that event with the new string as its text, without scanning the rest. This is
//! exact: swapping one string's contents for other valid contents changes nothing else in a
//! JSON parse, so the answer is the one `inspect` would give (`dialect/proptests.rs` checks it).

use std::borrow::Cow;

use super::scan::lex::{escape, unescape};
use super::{inspect, Payload};

/// Payloads longer than this are not remembered (the scanner's own limit).
const MAX_SHAPE: usize = 2048;

/// [`inspect`] for the events of one stream, in order; faster when they repeat a shape.
#[derive(Debug, Default)]
pub struct Inspector {
    shape: Option<Shape>,
    reused: u64,
}

/// The last event's payload around its text string.
#[derive(Debug)]
struct Shape {
    event_type: String,
    /// Up to and including the string's opening quote.
    before: Vec<u8>,
    /// From the string's closing quote.
    after: Vec<u8>,
    /// What the event said besides its text.
    rest: Payload<'static>,
}

impl Inspector {
    /// What `inspect(event_type, data)` returns.
    pub fn inspect<'a>(&mut self, event_type: &str, data: &'a [u8]) -> Payload<'a> {
        let body = data.trim_ascii();
        if let Some(payload) = self.shape.as_ref().and_then(|s| s.read(event_type, body)) {
            self.reused += 1;
            return payload;
        }
        let payload = inspect(event_type, data);
        self.learn(event_type, body, &payload);
        payload
    }

    /// Events read from the remembered shape, without a scan.
    pub fn reused(&self) -> u64 {
        self.reused
    }

    /// Remembers `body`'s shape if its text is one string of it, borrowed as it is.
    fn learn(&mut self, event_type: &str, body: &[u8], payload: &Payload<'_>) {
        let Some(Cow::Borrowed(text)) = &payload.text else {
            self.shape = None;
            return;
        };
        let start = (text.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
        let end = start.wrapping_add(text.len());
        let quoted = start > 0
            && end < body.len()
            && body.get(start - 1) == Some(&b'"')
            && body.get(end) == Some(&b'"');
        if !quoted || body.len() > MAX_SHAPE {
            self.shape = None;
            return;
        }
        let shape = self.shape.get_or_insert_with(|| Shape {
            event_type: String::new(),
            before: Vec::new(),
            after: Vec::new(),
            rest: Payload::default(),
        });
        shape.event_type.clear();
        shape.event_type.push_str(event_type);
        shape.before.clear();
        shape.before.extend_from_slice(&body[..start]);
        shape.after.clear();
        shape.after.extend_from_slice(&body[end..]);
        shape.rest = Payload {
            dialect: payload.dialect,
            text: None,
            input_tokens: payload.input_tokens,
            output_tokens: payload.output_tokens,
            end: payload.end,
            error: payload.error,
        };
    }
}

impl Shape {
    /// `body` read as this shape with another text, or `None` if it is not of this shape.
    fn read<'a>(&self, event_type: &str, body: &'a [u8]) -> Option<Payload<'a>> {
        let rest = body.strip_prefix(self.before.as_slice())?;
        let inner = rest.strip_suffix(self.after.as_slice())?;
        if event_type != self.event_type {
            return None;
        }
        let text = contents(inner)?;
        let rest = &self.rest;
        Some(Payload {
            dialect: rest.dialect,
            text: Some(text).filter(|t| !t.is_empty()),
            input_tokens: rest.input_tokens,
            output_tokens: rest.output_tokens,
            end: rest.end,
            error: rest.error,
        })
    }
}

/// `inner` decoded as the contents of a JSON string (between its quotes), checked as the
/// scanner checks strings: valid UTF-8, no bare quote or control character, valid escapes.
fn contents(inner: &[u8]) -> Option<Cow<'_, str>> {
    let text = std::str::from_utf8(inner).ok()?;
    let mut escaped = false;
    let mut at = 0;
    while let Some(i) = inner
        .get(at..)?
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
    {
        let special = inner.get(at + i..)?;
        if special.first() != Some(&b'\\') {
            return None;
        }
        let (_, len) = escape(special)?;
        escaped = true;
        at += i + len;
    }
    Some(if escaped {
        Cow::Owned(unescape(text)?)
    } else {
        Cow::Borrowed(text)
    })
}
