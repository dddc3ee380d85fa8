//! The scanner's lexical layer: whitespace, literals, numbers and strings, whose ends are
//! found with a bitmask of the bytes that can end or interrupt a string; and the same search
//! over a few bytes, for the strings and counts in a template's places (`dialect/shape.rs`).

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
    let mut mask = 0;
    for (i, chunk) in block.chunks_exact(16).enumerate() {
        let v = u8x16::new(chunk.first_chunk().copied().unwrap_or_default());
        // The mask of 16 lanes fits 16 bits.
        mask |= u64::from(specials_16(v) as u16) << (16 * i);
    }
    mask
}

/// Bit i set: lane i of `v` is `"`, `\` or a control character.
#[inline(always)]
fn specials_16(v: u8x16) -> i32 {
    let quote = u8x16::splat(b'"');
    let backslash = u8x16::splat(b'\\');
    let below_space = u8x16::splat(0x1f);
    // `v <= 0x1f` as `min(v, 0x1f) == v`: SSE2 has no unsigned compare.
    (v.cmp_eq(quote) | v.cmp_eq(backslash) | v.min(below_space).cmp_eq(v)).move_mask()
}

/// 16 bytes of `bytes` from `at`, padded past the end with NUL: a control character, which
/// neither a plain string nor a count holds, so a search never runs past the end.
#[inline(always)]
fn block_16(bytes: &[u8], at: usize) -> u8x16 {
    let rest = bytes.get(at..).unwrap_or_default();
    if let Some(block) = rest.first_chunk::<16>() {
        return u8x16::new(*block);
    }
    let mut padded = [0; 16];
    if let Some(dst) = padded.get_mut(..rest.len()) {
        dst.copy_from_slice(rest);
    }
    u8x16::new(padded)
}

/// The string contents that start `rest`, up to the closing `"`, if they are plain: ASCII
/// without escapes or control characters, valid as they are. `None` for any other string,
/// and when no `"` ends it in `rest`.
pub(in crate::dialect) fn plain_string(rest: &[u8]) -> Option<&str> {
    let mut at = 0;
    let len = loop {
        let v = block_16(rest, at);
        // A byte's top bit, set past ASCII, is in `v`'s own mask.
        let found = specials_16(v) | v.move_mask();
        if found != 0 {
            break at + found.trailing_zeros() as usize;
        }
        at += 16;
    };
    if rest.get(len) != Some(&b'"') {
        return None;
    }
    let plain = rest.get(..len)?;
    // SAFETY: every byte of `plain` is below 0x80 (its top bit was checked above), and ASCII
    // is valid UTF-8. (`from_utf8` would check it again: a tenth of a repeated event's cost.)
    Some(unsafe { std::str::from_utf8_unchecked(plain) })
}

/// How many ASCII digits start `rest`, counted up to 32 (more than any count holds).
pub(in crate::dialect) fn leading_digits(rest: &[u8]) -> usize {
    let zero = u8x16::splat(b'0');
    let nine = u8x16::splat(9);
    let mut at = 0;
    while at < 32 {
        // A digit is 0 to 9 above `0`; other bytes wrap or land above 9.
        let v = block_16(rest, at) - zero;
        let digit = v.min(nine).cmp_eq(v).move_mask();
        let other = !digit & 0xffff;
        if other != 0 {
            return at + other.trailing_zeros() as usize;
        }
        at += 16;
    }
    at
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_strings_end_at_their_quote_and_nothing_else_is_plain() {
        assert_eq!(plain_string(b"\"rest"), Some(""));
        assert_eq!(plain_string(b"tok\"}],\"t\":1}"), Some("tok"));
        // Across the 16-byte blocks, and ending exactly at the end of the bytes.
        for len in [15, 16, 17, 31, 32, 33, 100] {
            let mut s = "a".repeat(len).into_bytes();
            s.push(b'"');
            assert_eq!(plain_string(&s).map(str::len), Some(len), "{len}");
            s.pop();
            assert_eq!(plain_string(&s), None, "unterminated, {len}");
        }
        // Escapes, control characters and bytes past ASCII are left to the careful path.
        for special in [
            &b"\\\""[..],
            b"\\n",
            b"\x1f",
            b"\0",
            b"\x7f\xc3\xa9",
            b"\xff",
        ] {
            for at in [0, 5, 15, 16, 20] {
                let mut s = "b".repeat(at).into_bytes();
                s.extend_from_slice(special);
                s.extend_from_slice(b"x\"");
                assert_eq!(plain_string(&s), None, "{s:?}");
            }
        }
        // DEL is ASCII and not a control character to JSON.
        assert_eq!(plain_string(b"a\x7fb\""), Some("a\x7fb"));
        assert_eq!(plain_string(b""), None);
    }

    #[test]
    fn leading_digits_stop_at_the_first_other_byte() {
        assert_eq!(leading_digits(b""), 0);
        assert_eq!(leading_digits(b"}"), 0);
        assert_eq!(leading_digits(b"/:0"), 0);
        assert_eq!(leading_digits(b"1732000000000}"), 13);
        assert_eq!(leading_digits(b"0123456789abc"), 10);
        assert_eq!(leading_digits(b"12\x80"), 2);
        assert_eq!(leading_digits(b"1234567890123456"), 16);
        assert_eq!(leading_digits(b"12345678901234567,"), 17);
        // Past 19 digits no count is valid: the search stops at 32.
        assert_eq!(leading_digits("9".repeat(40).as_bytes()), 32);
    }
}
