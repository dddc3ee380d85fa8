//! The scanner's lexical layer: whitespace, literals, numbers and strings, whose ends are
//! found with a bitmask of the bytes that can end or interrupt a string.

use std::borrow::Cow;

use wide::u8x16;

use super::Scanner;

/// A JSON number: a count serde_json reads as a `u64`, or any other valid number.
pub(super) enum Number {
    Count(u64),
    Other,
}

impl<'a> Scanner<'a, '_> {
    /// The first byte at or after `at` that is not JSON whitespace, and where it is.
    #[inline(always)]
    pub(super) fn token(self, at: usize) -> Option<(u8, usize)> {
        let b = *self.bytes.get(at)?;
        if b > b' ' {
            return Some((b, at));
        }
        self.token_after_space(at)
    }

    #[inline(never)]
    fn token_after_space(self, mut at: usize) -> Option<(u8, usize)> {
        while let b' ' | b'\n' | b'\t' | b'\r' = *self.bytes.get(at)? {
            at += 1;
        }
        Some((*self.bytes.get(at)?, at))
    }

    /// `word` at `at`; the position after it.
    #[inline(always)]
    pub(super) fn literal(self, at: usize, word: &[u8]) -> Option<usize> {
        let end = at + word.len();
        (self.bytes.get(at..end)? == word).then_some(end)
    }

    /// The number at `at`, checked against JSON's grammar as serde_json checks it; the position
    /// after it.
    #[inline(always)]
    pub(super) fn number(self, start: usize) -> Option<(Number, usize)> {
        let negative = *self.bytes.get(start)? == b'-';
        let mut at = start + usize::from(negative);
        let mut count = 0u64;
        match *self.bytes.get(at)? {
            b'0' => at += 1,
            b'1'..=b'9' => {
                while let Some(&d @ b'0'..=b'9') = self.bytes.get(at) {
                    // Wraps only past 19 digits, which are not taken for a count below.
                    count = count.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                    at += 1;
                }
            }
            _ => return None,
        }
        // Up to 19 digits always fit a u64; longer counts are left to serde_json.
        let plain = !negative && at - start <= 19;
        if let Some(b'.' | b'e' | b'E') = self.bytes.get(at) {
            return Some((Number::Other, self.fraction_and_exponent(at)?));
        }
        Some((
            if plain {
                Number::Count(count)
            } else {
                Number::Other
            },
            at,
        ))
    }

    #[inline(never)]
    fn fraction_and_exponent(self, mut at: usize) -> Option<usize> {
        if self.bytes.get(at) == Some(&b'.') {
            at = self.digits(at + 1)?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(at) {
                at += 1;
            }
            at = self.digits(at)?;
        }
        Some(at)
    }

    /// One digit or more at `start`; the position after them.
    fn digits(self, start: usize) -> Option<usize> {
        let mut at = start;
        while let Some(b'0'..=b'9') = self.bytes.get(at) {
            at += 1;
        }
        (at > start).then_some(at)
    }

    /// The string at `at`, decoded; it borrows from the payload when it has no escapes.
    pub(super) fn string_value(self, at: usize) -> Option<(Cow<'a, str>, usize)> {
        let (start, end, escaped) = self.string(at)?;
        let raw = self.text.get(start..end)?;
        let value = if escaped {
            Cow::Owned(unescape(raw)?)
        } else {
            Cow::Borrowed(raw)
        };
        Some((value, end + 1))
    }

    /// The string at `at` (its opening quote): the range of its contents, whose end is its
    /// closing quote, and whether it has escapes. It is checked as serde_json checks it: no
    /// control characters, valid escapes; unpaired surrogates (which serde_json takes in some
    /// places and not others) are left to serde_json.
    #[inline(always)]
    pub(super) fn string(self, at: usize) -> Option<(usize, usize, bool)> {
        let start = at + 1;
        let end = self.next_special(start)?;
        if self.bytes.get(end) != Some(&b'"') {
            return self.escaped_string(start, end);
        }
        Some((start, end, false))
    }

    /// The rest of a string from its first special byte other than the closing quote.
    #[inline(never)]
    fn escaped_string(self, start: usize, mut at: usize) -> Option<(usize, usize, bool)> {
        loop {
            match self.bytes.get(at)? {
                b'"' => return Some((start, at, true)),
                b'\\' => {
                    let (_, len) = escape(self.bytes.get(at..)?)?;
                    at = self.next_special(at + len)?;
                }
                _ => return None,
            }
        }
    }

    /// The first `"`, `\` or control character at or after `at`.
    #[inline(always)]
    fn next_special(self, at: usize) -> Option<usize> {
        let mut block = at / 64;
        let mut found = self.specials.get(block)? & u64::MAX << (at % 64);
        while found == 0 {
            block += 1;
            found = *self.specials.get(block)?;
        }
        Some(block * 64 + found.trailing_zeros() as usize)
    }
}

/// Bit i set: byte i of `bytes[at..]` (64 bytes at most) is `"`, `\\` or a control character,
/// the bytes a string cannot hold as they are.
pub(super) fn classify(bytes: &[u8], at: usize) -> u64 {
    if let Some(block) = bytes.get(at..).and_then(<[u8]>::first_chunk::<64>) {
        return classify_64(block);
    }
    let tail = bytes.len().saturating_sub(at);
    match bytes.last_chunk::<64>() {
        // The last, partial block: the last 64 bytes, shifted so that bit 0 is byte `at`.
        Some(last) => classify_64(last).checked_shr(64 - tail as u32).unwrap_or(0),
        None => {
            // A payload shorter than a block, padded with bytes that are not special.
            let mut padded = [b' '; 64];
            if let Some((dst, src)) = padded.get_mut(..tail).zip(bytes.get(at..)) {
                dst.copy_from_slice(src);
            }
            classify_64(&padded)
        }
    }
}

/// `classify` of a whole block, 16 bytes at a time in SIMD registers (SSE2 on x86_64, NEON on
/// aarch64, plain integers elsewhere).
#[inline(always)]
fn classify_64(block: &[u8; 64]) -> u64 {
    let quote = u8x16::splat(b'"');
    let backslash = u8x16::splat(b'\\');
    let below_space = u8x16::splat(0x1f);
    let mut mask = 0;
    for (i, chunk) in block.chunks_exact(16).enumerate() {
        let v = u8x16::new(chunk.first_chunk().copied().unwrap_or_default());
        // `v <= 0x1f` as `min(v, 0x1f) == v`: SSE2 has no unsigned compare.
        let special = v.cmp_eq(quote) | v.cmp_eq(backslash) | v.min(below_space).cmp_eq(v);
        // The mask of 16 lanes fits 16 bits.
        mask |= u64::from(special.move_mask() as u16) << (16 * i);
    }
    mask
}

/// Decodes the escape at the start of `raw` (which starts with `\`) as serde_json does when
/// it reads a `str`: the character and the escape's length. A surrogate pair is one
/// character; an unpaired surrogate is `None`.
pub(in crate::dialect) fn escape(raw: &[u8]) -> Option<(char, usize)> {
    let c = match raw.get(1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let high = hex4(raw.get(2..6)?)?;
            if !(0xD800..0xDC00).contains(&high) {
                // A lone low surrogate is not a `char` either.
                return Some((char::from_u32(high)?, 6));
            }
            if raw.get(6..8)? != b"\\u" {
                return None;
            }
            let low = hex4(raw.get(8..12)?)?;
            if !(0xDC00..0xE000).contains(&low) {
                return None;
            }
            let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            return Some((char::from_u32(c)?, 12));
        }
        _ => return None,
    };
    Some((c, 2))
}

/// Four hex digits as a UTF-16 code unit.
fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0, |n, &d| {
        let v = char::from(d).to_digit(16)?;
        Some(n << 4 | v)
    })
}

/// Decodes a string's contents whose escapes the scanner has already checked.
pub(in crate::dialect) fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(rest.get(..at)?);
        let (c, len) = escape(rest.as_bytes().get(at..)?)?;
        out.push(c);
        rest = rest.get(at + len..)?;
    }
    out.push_str(rest);
    Some(out)
}
