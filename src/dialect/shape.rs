//! The repeated-shape path of [`Inspector`]: a stream's events mostly differ from the last one
//! only in their text and in values nobody reads (an OpenAI chunk repeats its id, model and
//! field order every time; timestamps and sequence numbers change but are never read).
//!
//! After an event whose text is one string of its payload, the inspector keeps that payload
//! as a template: its bytes, where the text string lies, and the strings and counts the
//! scanner passed over unread (the holes). A next event that matches the template byte for
//! byte outside those places, with a valid JSON string or count in each, reads as the last
//! event with the new text, without scanning. This is exact: a JSON parse does not change when
//! one string's contents or one count's digits are swapped for others, and unread values change
//! nothing in the answer, so it is the one `inspect` would give (`dialect/proptests.rs` checks it).

use std::borrow::Cow;
use std::cell::RefCell;

use super::scan::lex::{escape, leading_digits, plain_string, unescape};
use super::scan::{Hole, MAX_HOLES};
use super::{inspect_noting_holes, Payload};

/// Payloads longer than this are not kept (the scanner's own limit).
const MAX_TEMPLATE: usize = 2048;
/// Events whose type is longer than this are not kept as templates.
const MAX_EVENT_TYPE: usize = 64;

/// [`inspect`](super::inspect) for the events of one stream, in order; faster when they repeat
/// a shape.
#[derive(Debug, Default)]
pub struct Inspector {
    template: Option<Template>,
    /// Scratch for the scanner's holes (kept to reuse its allocation).
    holes: Vec<Hole>,
    reused: u64,
}

/// The last event's payload, with the places where the next one may differ.
#[derive(Debug, Default)]
struct Template {
    event_type: String,
    bytes: Vec<u8>,
    /// The text string and the holes, left to right; they never overlap.
    places: Vec<Place>,
    /// Where the text string lies.
    text: Place,
    /// The text's index in `places`.
    text_index: usize,
    /// What the event said besides its text.
    rest: Payload<'static>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Place {
    start: usize,
    end: usize,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Kind {
    #[default]
    Text,
    String,
    Count,
}

impl Inspector {
    /// What `inspect(event_type, data)` returns.
    pub fn inspect<'a>(&mut self, event_type: &str, data: &'a [u8]) -> Payload<'a> {
        let body = data.trim_ascii();
        if let Some(payload) = self
            .template
            .as_ref()
            .and_then(|t| t.read(event_type, body))
        {
            self.reused += 1;
            return payload;
        }
        let holes = RefCell::new(std::mem::take(&mut self.holes));
        let payload = inspect_noting_holes(event_type, data, &holes);
        self.holes = holes.into_inner();
        self.learn(event_type, body, &payload);
        payload
    }

    /// Events read from the template, without a scan.
    pub fn reused(&self) -> u64 {
        self.reused
    }

    /// Keeps `body` as the template if its text is one string of it, borrowed as it is;
    /// otherwise the last template stays (a ping between two deltas does not end the shape).
    fn learn(&mut self, event_type: &str, body: &[u8], payload: &Payload<'_>) {
        let Some(text) = text_place(body, payload) else {
            return;
        };
        let holes = &self.holes;
        let too_big = body.len() > MAX_TEMPLATE || event_type.len() > MAX_EVENT_TYPE;
        if too_big || holes.len() > MAX_HOLES {
            return;
        }
        let t = self.template.get_or_insert_with(Template::default);
        t.event_type.clear();
        t.event_type.push_str(event_type);
        t.bytes.clear();
        t.bytes.extend_from_slice(body);
        t.places.clear();
        let holes = holes.iter().map(|h| Place {
            start: h.start,
            end: h.end,
            kind: if h.string { Kind::String } else { Kind::Count },
        });
        t.places.extend(holes);
        // The text is a read value, so never a hole: it goes between them.
        let at = t.places.partition_point(|p| p.start < text.start);
        t.places.insert(at, text);
        t.text = text;
        t.text_index = at;
        t.rest = Payload {
            dialect: payload.dialect,
            text: None,
            input_tokens: payload.input_tokens,
            output_tokens: payload.output_tokens,
            end: payload.end,
            error: payload.error,
        };
    }
}

/// Where `payload`'s text lies in `body`, if it is one string's contents without escapes.
fn text_place(body: &[u8], payload: &Payload<'_>) -> Option<Place> {
    let Some(Cow::Borrowed(text)) = &payload.text else {
        return None;
    };
    let start = (text.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let end = start + text.len();
    let quoted = start > 0 && body.get(start - 1) == Some(&b'"') && body.get(end) == Some(&b'"');
    quoted.then_some(Place {
        start,
        end,
        kind: Kind::Text,
    })
}

impl Template {
    /// `body` read through this template, or `None` if it does not fit.
    fn read<'a>(&self, event_type: &str, body: &'a [u8]) -> Option<Payload<'a>> {
        if event_type != self.event_type {
            return None;
        }
        // Most often everything up to the text is as it was (an OpenAI chunk, or a stamp
        // after the text): the walk starts at the text.
        let start = self.text.start;
        let text = if body.get(..start) == self.bytes.get(..start) {
            self.walk(body, self.text_index, start)?
        } else {
            self.walk(body, 0, 0)?
        };
        let rest = &self.rest;
        Some(Payload {
            dialect: rest.dialect,
            text: text.filter(|t: &Cow<'_, str>| !t.is_empty()),
            input_tokens: rest.input_tokens,
            output_tokens: rest.output_tokens,
            end: rest.end,
            error: rest.error,
        })
    }

    /// Matches `body` place by place from `places[first]`, both `body` and the template being
    /// the same up to `start` (where that place begins); its text if it fits.
    fn walk<'a>(&self, body: &'a [u8], first: usize, start: usize) -> Option<Option<Cow<'a, str>>> {
        let mut text = None;
        let (mut from, mut at) = (start, start);
        for place in self.places.get(first..)? {
            let same = self.bytes.get(from..place.start)?;
            at = body
                .get(at..)?
                .strip_prefix(same)
                .map(|_| at + same.len())?;
            let rest = body.get(at..)?;
            let len = match place.kind {
                Kind::Count => count_len(rest)?,
                Kind::Text => {
                    let (len, value) = string_at(rest)?;
                    text = Some(value);
                    len
                }
                Kind::String => match plain_string(rest) {
                    Some(value) => value.len(),
                    None => {
                        let len = string_len(rest)?;
                        let value = rest.get(..len)?;
                        // A hole as it was is valid as it was.
                        if value != self.bytes.get(place.start..place.end)? {
                            contents(value)?;
                        }
                        len
                    }
                },
            };
            at += len;
            from = place.end;
            // Nothing changed past the text (an OpenAI chunk): no more places to match.
            if place.kind == Kind::Text && body.get(at..) == self.bytes.get(from..) {
                return Some(text);
            }
        }
        (body.get(at..)? == self.bytes.get(from..)?).then_some(text)
    }
}

/// The contents of the string at the start of `rest` (up to its closing `"`), decoded, and
/// their length in `rest`.
fn string_at(rest: &[u8]) -> Option<(usize, Cow<'_, str>)> {
    if let Some(plain) = plain_string(rest) {
        return Some((plain.len(), Cow::Borrowed(plain)));
    }
    let len = string_len(rest)?;
    Some((len, contents(rest.get(..len)?)?))
}

/// The length of a string's contents at the start of `rest`: up to its first unescaped `"`.
fn string_len(rest: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let i = memchr::memchr2(b'"', b'\\', rest.get(at..)?)?;
        at += i;
        if rest.get(at) == Some(&b'"') {
            return Some(at);
        }
        // A backslash: the escape's next byte never ends the string (`contents` checks it).
        at += 2;
    }
}

/// The length of a count (plain digits, no leading zero, at most 19) at the start of `rest`.
fn count_len(rest: &[u8]) -> Option<usize> {
    let len = leading_digits(rest);
    let valid = (1..=19).contains(&len) && (len == 1 || rest.first() != Some(&b'0'));
    valid.then_some(len)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{inspect, Dialect};

    /// Feeds `events` in order; each must read as `inspect` reads it. Returns how many reused.
    fn feed(events: &[(&str, String)]) -> u64 {
        let mut inspector = Inspector::default();
        for (event_type, data) in events {
            assert_eq!(
                inspector.inspect(event_type, data.as_bytes()),
                inspect(event_type, data.as_bytes()),
                "{data}"
            );
        }
        inspector.reused()
    }

    #[test]
    fn unread_counts_and_strings_may_change_between_events() {
        // The bench's chunks carry their send time; Ollama's a timestamp string; the
        // Responses API a sequence number.
        let chat = |i: u64, text: &str| {
            let data = format!(
                r#"{{"id":"chatcmpl-x","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"{text}"}}}}],"t":{}}}"#,
                1_732_000_000_000 + i * 7919
            );
            ("message", data)
        };
        let events: Vec<_> = (0..50).map(|i| chat(i, &format!("tok{i}"))).collect();
        assert_eq!(feed(&events), 49);

        let ollama = |i: u64, text: &str| {
            let data = format!(
                r#"{{"model":"llama3.2","created_at":"2024-07-22T20:0{}:19.9{i}Z","message":{{"role":"assistant","content":"{text}"}},"done":false}}"#,
                i % 10
            );
            ("message", data)
        };
        let events: Vec<_> = (0..20).map(|i| ollama(i, " word")).collect();
        assert_eq!(feed(&events), 19);

        let responses = |i: u64, text: &str| {
            let data = format!(
                r#"{{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"{text}","sequence_number":{i}}}"#
            );
            ("response.output_text.delta", data)
        };
        let events: Vec<_> = (1..20).map(|i| responses(i, "Hi")).collect();
        assert_eq!(feed(&events), 18);

        // Values changing on both sides of the text.
        let both = |i: u64, text: &str| {
            let data = format!(
                r#"{{"created_at":"2024-07-22T20:00:19.9{i}Z","message":{{"content":"{text}"}},"done":false,"seq":{i}}}"#
            );
            ("message", data)
        };
        let events: Vec<_> = (10..30).map(|i| both(i, "w")).collect();
        assert_eq!(feed(&events), 19);
    }

    #[test]
    fn an_event_without_text_leaves_the_template() {
        let delta = |text: &str| {
            let data = format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#
            );
            ("content_block_delta", data)
        };
        let ping = ("ping", r#"{"type": "ping"}"#.to_string());
        let events = [delta("a"), ping.clone(), delta("b"), ping, delta("c")];
        assert_eq!(feed(&events), 2, "b and c are read from a's template");
    }

    #[test]
    fn read_values_and_structure_must_match() {
        let usage = |n: u64| {
            let data = format!(
                r#"{{"object":"chat.completion.chunk","choices":[{{"delta":{{"content":"x"}}}}],"usage":{{"prompt_tokens":3,"completion_tokens":{n}}}}}"#
            );
            ("message", data)
        };
        // Token counts are read: a new count is a new payload, never a reused one.
        assert_eq!(feed(&[usage(1), usage(2), usage(3)]), 0);
        let mut inspector = Inspector::default();
        for n in 1..4 {
            let (t, data) = usage(n);
            assert_eq!(inspector.inspect(t, data.as_bytes()).output_tokens, Some(n));
        }

        let chunk = |body: &str| ("message", body.to_string());
        let events = [
            chunk(r#"{"type":"chunk","content":"a","n":1}"#),
            chunk(r#"{"type":"chunk","content":"b","n":2}"#),
            // A count that is not a count, a string where a count was, a broken string.
            chunk(r#"{"type":"chunk","content":"c","n":2.5}"#),
            chunk(r#"{"type":"chunk","content":"d","n":"2"}"#),
            chunk(r#"{"type":"chunk","content":"e\","n":3}"#),
            chunk(r#"{"type":"chunk","content":"\ud800","n":4}"#),
            chunk(r#"{"type":"chunk","content":"f","n":05}"#),
            chunk(r#"{"type":"chunk","content":"caf\u00e9 \"q\"","n":6}"#),
            chunk(r#"{"type":"done","content":"g","n":7}"#),
        ];
        // Only b fits the template; each misfit is read in full (and drops or replaces it).
        assert_eq!(feed(&events), 1);
        let mut inspector = Inspector::default();
        let texts: Vec<_> = events
            .iter()
            .map(|(t, d)| inspector.inspect(t, d.as_bytes()))
            .map(|p| (p.dialect, p.text.map(|t| t.into_owned()), p.end))
            .collect();
        assert_eq!(
            texts[7],
            (Dialect::Chunk, Some("caf\u{e9} \"q\"".into()), false)
        );
        assert_eq!(texts[8], (Dialect::Chunk, None, true));
    }
}
