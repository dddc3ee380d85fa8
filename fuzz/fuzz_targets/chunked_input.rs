//! What the `sse_parser` and `observer` targets share: how an input is read and how its body
//! is cut into chunks. Each target includes this file by path.

use ssegate::sse::Framing;

/// A fuzz input: byte 0 is the mode (bit 0 picks the framing; the target reads the rest of
/// it), bytes 1..=8 seed the chunk sizes, the rest is the body.
pub struct Input<'a> {
    pub mode: u8,
    /// The SSE targets' framing (not every target reads it).
    #[allow(dead_code)]
    pub framing: Framing,
    pub seed: u64,
    pub body: &'a [u8],
}

/// Reads `input`, or `None` if it is too short to hold a mode and a seed.
pub fn read(input: &[u8]) -> Option<Input<'_>> {
    let (&mode, rest) = input.split_first()?;
    let (seed, body) = rest.split_first_chunk::<8>()?;
    let framing = if mode & 1 == 0 {
        Framing::Sse
    } else {
        Framing::Ndjson
    };
    Some(Input {
        mode,
        framing,
        seed: u64::from_le_bytes(*seed),
        body,
    })
}

/// Chunk sizes from a xorshift generator: mostly tiny, sometimes large.
pub fn chunks<'a>(body: &'a [u8], seed: u64) -> Vec<&'a [u8]> {
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let r = next();
        let n = match r % 4 {
            0 => 1,
            1 => 1 + (r >> 8) as usize % 4,
            2 => 1 + (r >> 8) as usize % 32,
            _ => 1 + (r >> 8) as usize % 512,
        };
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}
