//! The fast path of `inspect`: a strict JSON scanner that builds the same `Raw` serde_json
//! would, walking the payload once and building nothing it does not keep.
//!
//! Why hand-written: the lazy-JSON crates are slower than this on payloads this small. On a
//! 300-byte chat chunk (best of 4 runs, one process): `inspect_slow` 757 ns, serde_json's bare
//! validating pass (`IgnoredAny`) 282 ns, sonic-rs `get` of one path 486 ns, `to_object_iter`
//! 554 ns, `get_many` 961 ns, simd-json's tape (with the copy it needs) 662 ns; this scanner
//! with its extraction 248 ns. A lazy getter also stops at its value, and identical results on
//! malformed payloads need the whole payload checked as serde_json checks it.
//!
//! Everything it passes over is validated as serde_json validates it. Whatever it is not sure
//! of (duplicate fields, negative or non-integer numbers where a count is read, escaped keys,
//! unpaired surrogates, deep nesting, malformed JSON...) makes it return `None`, and the caller
//! asks serde_json: `inspect` always gives serde_json's answer.
//!
//! Positions are passed and returned by value, so that they stay in registers.

use std::cell::RefCell;

use serde::de::IgnoredAny;

use super::{Choice, Choices, Node, Raw, Scalar, Usage};
use lex::{classify, Number};

#[path = "lex.rs"]
pub(super) mod lex;

/// Nesting the scanner follows; deeper payloads go to serde_json (whose own limit is 128).
const MAX_DEPTH: u32 = 32;
/// The longest payload the scanner reads, in 64-byte blocks.
const MAX_BLOCKS: usize = 32;
/// The most unread values a template keeps (see `dialect/shape.rs`).
pub(super) const MAX_HOLES: usize = 32;

/// Reads a trimmed payload that starts with `{` into `raw` (a default one) as serde_json
/// would, or `None` when unsure.
pub(super) fn raw<'a>(body: &'a [u8], raw: &mut Raw<'a>) -> Option<()> {
    scan(body, raw, None)
}

/// A value the scanner passed over without reading: its contents may change without changing
/// what the payload says. `start..end` are a string's contents or a count's digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hole {
    pub start: usize,
    pub end: usize,
    /// A string (else a count: plain digits).
    pub string: bool,
}

/// `raw`, adding to `holes` the strings and counts it skips, left to right; they are
/// complete only when this returns `Some`.
pub(super) fn raw_noting_holes<'a>(
    body: &'a [u8],
    raw: &mut Raw<'a>,
    holes: &RefCell<Vec<Hole>>,
) -> Option<()> {
    scan(body, raw, Some(holes))
}

fn scan<'a>(body: &'a [u8], raw: &mut Raw<'a>, holes: Option<&RefCell<Vec<Hole>>>) -> Option<()> {
    // Longer payloads (rare, like a final line with a long `context` array) go to serde_json.
    if body.len() > 64 * MAX_BLOCKS {
        return None;
    }
    // serde_json checks the UTF-8 of most strings it meets; checking all of it up front also
    // lets kept strings be sliced out as `&str` for free.
    let text = std::str::from_utf8(body).ok()?;
    // Bytes are classified 64 at a time up front: strings are most of a payload's bytes, and
    // this way a string is passed over in a few instructions.
    let mut specials = [0u64; MAX_BLOCKS];
    for (i, mask) in specials
        .iter_mut()
        .take(body.len().div_ceil(64))
        .enumerate()
    {
        *mask = classify(body, 64 * i);
    }
    let s = Scanner {
        text,
        bytes: body,
        specials: &specials,
        holes,
    };
    // The body is trimmed: nothing may follow the object.
    (s.top(raw)? == body.len()).then_some(())
}

#[derive(Clone, Copy)]
struct Scanner<'a, 's> {
    text: &'a str,
    bytes: &'a [u8],
    /// Bit i of word b set: byte 64 b + i is `"`, `\` or a control character.
    specials: &'s [u64; MAX_BLOCKS],
    /// Where skipped values are noted, when asked.
    holes: Option<&'s RefCell<Vec<Hole>>>,
}

/// Marks a field of a `#[derive(Deserialize)]` struct as read; serde rejects a duplicate
/// field, so a second one is left to serde_json.
#[inline(always)]
fn once(seen: &mut u16, bit: u16) -> Option<()> {
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    Some(())
}

impl<'a> Scanner<'a, '_> {
    /// The top-level object's fields, as `#[derive(Deserialize)] Raw` reads them; the position
    /// after the object.
    fn top(self, raw: &mut Raw<'a>) -> Option<usize> {
        let mut seen = 0u16;
        self.object(0, 1, |at, first, key| {
            let bit = match key {
                b"type" => 1,
                b"object" => 2,
                b"choices" => 4,
                b"usage" => 8,
                b"delta" => 16,
                b"message" => 32,
                b"response" => 64,
                b"content" => 128,
                b"done" => 256,
                b"prompt_eval_count" => 512,
                b"eval_count" => 1024,
                b"error" => 2048,
                _ => return self.skip(at, first, 1),
            };
            once(&mut seen, bit)?;
            let slot = match bit {
                1 => &mut raw.kind,
                2 => &mut raw.object,
                4 => return self.choices(at, first, &mut raw.choices),
                8 => return self.usage(at, first, 1, &mut raw.usage),
                16 => return self.node(at, first, 1, &mut raw.delta),
                32 => return self.node(at, first, 1, &mut raw.message),
                64 => return self.node(at, first, 1, &mut raw.response),
                128 => &mut raw.content,
                256 => &mut raw.done,
                512 => &mut raw.prompt_eval_count,
                1024 => &mut raw.eval_count,
                // `Option<IgnoredAny>`: present unless `null`.
                _ if first == b'n' => return self.literal(at, b"null"),
                _ => {
                    raw.error = Some(IgnoredAny);
                    return self.skip(at, first, 1);
                }
            };
            let (value, after) = self.scalar(at, first, 1)?;
            *slot = value;
            Some(after)
        })
    }

    /// The object at `at` (its `{`), at nesting `depth` (the top level is 1); `field` reads a
    /// value given where it starts, its first byte and its key, and returns the position after
    /// it. Keys with escapes are left to serde_json, since they may spell a known key.
    #[inline(always)]
    fn object(
        self,
        at: usize,
        depth: u32,
        mut field: impl FnMut(usize, u8, &'a [u8]) -> Option<usize>,
    ) -> Option<usize> {
        if depth > MAX_DEPTH || self.bytes.get(at) != Some(&b'{') {
            return None;
        }
        let (mut next, mut at) = self.token(at + 1)?;
        if next == b'}' {
            return Some(at + 1);
        }
        loop {
            if next != b'"' {
                return None;
            }
            let (start, end, escaped) = self.string(at)?;
            let (colon, at_colon) = self.token(end + 1)?;
            if escaped || colon != b':' {
                return None;
            }
            let (first, at_value) = self.token(at_colon + 1)?;
            let after = field(at_value, first, self.bytes.get(start..end)?)?;
            match self.token(after)? {
                (b',', comma) => (next, at) = self.token(comma + 1)?,
                (b'}', close) => return Some(close + 1),
                _ => return None,
            }
        }
    }

    /// The array at `at` (its `[`), at nesting `depth`; `element` reads an element given where
    /// it starts and its first byte, and returns the position after it.
    #[inline(always)]
    fn array(
        self,
        at: usize,
        depth: u32,
        mut element: impl FnMut(usize, u8) -> Option<usize>,
    ) -> Option<usize> {
        if depth > MAX_DEPTH || self.bytes.get(at) != Some(&b'[') {
            return None;
        }
        let (mut next, mut at) = self.token(at + 1)?;
        if next == b']' {
            return Some(at + 1);
        }
        loop {
            let after = element(at, next)?;
            match self.token(after)? {
                (b',', comma) => (next, at) = self.token(comma + 1)?,
                (b']', close) => return Some(close + 1),
                _ => return None,
            }
        }
    }

    /// Passes over the value at `at` (whose first byte is `first`), validating it as serde_json's
    /// `IgnoredAny` does.
    #[inline(always)]
    fn skip(self, at: usize, first: u8, depth: u32) -> Option<usize> {
        match first {
            b'"' => {
                let (start, end, _) = self.string(at)?;
                self.hole(start, end, true);
                Some(end + 1)
            }
            b'n' => self.literal(at, b"null"),
            b'-' | b'0'..=b'9' => {
                let (number, after) = self.number(at)?;
                if let (Number::Count(_), b'0'..=b'9') = (number, first) {
                    self.hole(at, after, false);
                }
                Some(after)
            }
            _ => self.skip_rest(at, first, depth),
        }
    }

    #[inline(always)]
    fn hole(self, start: usize, end: usize, string: bool) {
        if let Some(holes) = self.holes {
            let mut holes = holes.borrow_mut();
            // One past the most a template keeps is enough to tell it has too many.
            if holes.len() <= MAX_HOLES {
                holes.push(Hole { start, end, string });
            }
        }
    }

    /// `skip` for the values rarely skipped in hot payloads; containers recurse through here.
    #[inline(never)]
    fn skip_rest(self, at: usize, first: u8, depth: u32) -> Option<usize> {
        match first {
            b'{' => self.object(at, depth + 1, |at, first, _| {
                self.skip(at, first, depth + 1)
            }),
            b'[' => self.array(at, depth + 1, |at, first| self.skip(at, first, depth + 1)),
            b't' => self.literal(at, b"true"),
            b'f' => self.literal(at, b"false"),
            _ => None,
        }
    }

    /// A `Scalar` field (`deserialize_any`). Numbers other than plain counts go to serde_json,
    /// whose float and negative handling is not worth copying for the rare payload with them.
    #[inline(always)]
    fn scalar(self, at: usize, first: u8, depth: u32) -> Option<(Scalar<'a>, usize)> {
        Some(match first {
            b'"' => {
                let (string, after) = self.string_value(at)?;
                (Scalar::Str(string), after)
            }
            b'n' => (Scalar::Other, self.literal(at, b"null")?),
            b'0'..=b'9' => match self.number(at)? {
                (Number::Count(n), after) => (Scalar::Num(n), after),
                (Number::Other, _) => return None,
            },
            b't' => (Scalar::Bool(true), self.literal(at, b"true")?),
            b'f' => (Scalar::Bool(false), self.literal(at, b"false")?),
            b'{' | b'[' => (Scalar::Other, self.skip_rest(at, first, depth)?),
            _ => return None,
        })
    }

    /// An `Option<Node>` field into `slot` (`None` on entry): `null` is `None`, and of an
    /// object only a few fields are kept.
    fn node(self, at: usize, first: u8, depth: u32, slot: &mut Option<Node<'a>>) -> Option<usize> {
        match first {
            b'n' => self.literal(at, b"null"),
            b'"' => {
                let (string, after) = self.string_value(at)?;
                *slot = Some(Node {
                    string: Some(string),
                    ..Node::default()
                });
                Some(after)
            }
            b'{' => {
                let node = slot.insert(Node::default());
                // Node's hand-written visitor keeps the last of duplicate fields.
                self.object(at, depth + 1, |at, first, key| {
                    let slot = match key {
                        b"type" => &mut node.kind,
                        b"text" => &mut node.text,
                        b"content" => &mut node.content,
                        b"usage" => return self.usage(at, first, depth + 1, &mut node.usage),
                        _ => return self.skip(at, first, depth + 1),
                    };
                    let (value, after) = self.scalar(at, first, depth + 1)?;
                    *slot = value;
                    Some(after)
                })
            }
            b'0'..=b'9' | b't' | b'f' | b'[' => {
                // A number that is not a count, as a float, is left to serde_json.
                let (_, after) = self.scalar(at, first, depth)?;
                *slot = Some(Node::default());
                Some(after)
            }
            _ => None,
        }
    }

    /// An `Option<Box<Usage>>` field into `slot` (`None` on entry); a usage in array form is
    /// left to serde_json.
    fn usage(
        self,
        at: usize,
        first: u8,
        depth: u32,
        slot: &mut Option<Box<Usage<'a>>>,
    ) -> Option<usize> {
        if first == b'n' {
            *slot = None;
            return self.literal(at, b"null");
        }
        let mut usage = Usage::default();
        let mut seen = 0u16;
        let after = self.object(at, depth + 1, |at, first, key| {
            let (bit, slot) = match key {
                b"prompt_tokens" => (1, &mut usage.prompt_tokens),
                b"completion_tokens" => (2, &mut usage.completion_tokens),
                b"input_tokens" => (4, &mut usage.input_tokens),
                b"output_tokens" => (8, &mut usage.output_tokens),
                _ => return self.skip(at, first, depth + 1),
            };
            once(&mut seen, bit)?;
            let (value, after) = self.scalar(at, first, depth + 1)?;
            *slot = value;
            Some(after)
        })?;
        *slot = Some(Box::new(usage));
        Some(after)
    }

    /// The top-level `choices` into `slot`, folded as the serde visitor folds them.
    fn choices(self, at: usize, first: u8, slot: &mut Option<Choices<'a>>) -> Option<usize> {
        if first == b'n' {
            return self.literal(at, b"null");
        }
        let choices = slot.insert(Choices::default());
        self.array(at, 2, |at, _| {
            let mut choice = Choice::default();
            let mut seen = 0u16;
            let after = self.object(at, 3, |at, first, key| match key {
                b"delta" => {
                    once(&mut seen, 1)?;
                    self.node(at, first, 3, &mut choice.delta)
                }
                b"text" => {
                    once(&mut seen, 2)?;
                    let (value, after) = self.scalar(at, first, 3)?;
                    choice.text = value;
                    Some(after)
                }
                _ => self.skip(at, first, 3),
            })?;
            choices.add(choice);
            Some(after)
        })
    }
}
