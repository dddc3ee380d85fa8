//! HTTP/1 message bodies: how one is framed, decoding one as it arrives, encoding chunks.
//!
//! The decoder is a plain state machine fed whatever a read returned; it hands out slices of
//! those reads (no copy) and never holds more than one chunk-size or trailer line.

use bytes::BufMut;

/// Longest chunk-size line (size, extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

/// How a body's end is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body at all (HEAD, 1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes.
    UntilClose,
}

/// Why a body could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The chunked framing is broken.
    BadChunk(&'static str),
    /// The connection closed before the framing said the body was over.
    Truncated,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::BadChunk(why) => write!(f, "bad chunked body: {why}"),
            BodyError::Truncated => f.write_str("connection closed before the body's end"),
        }
    }
}

impl std::error::Error for BodyError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk's data: bytes left.
    Data(u64),
    /// The CRLF after a chunk's data: bytes of it already seen.
    DataEnd(u8),
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// Decodes one body as its bytes arrive.
#[derive(Debug)]
pub struct Decoder {
    framing: Framing,
    left: u64,
    chunk: Chunk,
    /// A partial chunk-size or trailer line carried over from the last read.
    line: Vec<u8>,
    trailer_bytes: usize,
    done: bool,
    /// Bytes that arrived after the body's end (the connection cannot be reused).
    overrun: bool,
}

impl Decoder {
    /// A decoder for a body framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        let (left, done) = match framing {
            Framing::Empty => (0, true),
            Framing::Length(n) => (n, n == 0),
            Framing::Chunked | Framing::UntilClose => (0, false),
        };
        Decoder {
            framing,
            left,
            chunk: Chunk::Size,
            line: Vec::new(),
            trailer_bytes: 0,
            done,
            overrun: false,
        }
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the connection may carry another message after this body.
    pub fn reusable(&self) -> bool {
        self.done && !self.overrun && self.framing != Framing::UntilClose
    }

    /// Decodes `input`, handing the body's data to `piece` as it lies in `input` (never
    /// empty): no copy, no shared bytes.
    pub fn decode(&mut self, input: &[u8], mut piece: impl FnMut(&[u8])) -> Result<(), BodyError> {
        if self.done {
            self.overrun |= !input.is_empty();
            return Ok(());
        }
        match self.framing {
            Framing::Empty => Ok(()),
            Framing::UntilClose => {
                if !input.is_empty() {
                    piece(input);
                }
                Ok(())
            }
            Framing::Length(_) => {
                let take = (input.len() as u64).min(self.left) as usize;
                self.overrun |= take < input.len();
                if take > 0 {
                    piece(&input[..take]);
                }
                self.left -= take as u64;
                self.done = self.left == 0;
                Ok(())
            }
            Framing::Chunked => self.decode_chunked(input, piece),
        }
    }

    /// The connection closed: fine only for a body that runs until the close.
    pub fn eof(&mut self) -> Result<(), BodyError> {
        match (self.done, self.framing) {
            (true, _) => Ok(()),
            (false, Framing::UntilClose) => {
                self.done = true;
                Ok(())
            }
            _ => Err(BodyError::Truncated),
        }
    }

    fn decode_chunked(
        &mut self,
        mut input: &[u8],
        mut piece: impl FnMut(&[u8]),
    ) -> Result<(), BodyError> {
        while !input.is_empty() {
            if self.done {
                self.overrun = true;
                return Ok(());
            }
            match self.chunk {
                Chunk::Size => {
                    // The usual line, whole in this read: read where it lies, without the
                    // general parser (about a tenth of a paced event's decoding).
                    let plain = if self.line.is_empty() {
                        plain_size_line(input)
                    } else {
                        None
                    };
                    let size = if let Some((size, len)) = plain {
                        input = &input[len..];
                        size
                    } else {
                        let Some(size) = self.take_line(&mut input, MAX_SIZE_LINE, chunk_size)?
                        else {
                            return Ok(());
                        };
                        size
                    };
                    self.chunk = if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    let take = (input.len() as u64).min(left) as usize;
                    let (data, rest) = input.split_at(take);
                    piece(data);
                    input = rest;
                    let left = left - take as u64;
                    self.chunk = if left == 0 {
                        Chunk::DataEnd(0)
                    } else {
                        Chunk::Data(left)
                    };
                }
                Chunk::DataEnd(seen) => {
                    // Both bytes of the usual CRLF at once; one at a time at a read's edge.
                    if seen == 0 && input.starts_with(b"\r\n") {
                        input = &input[2..];
                        self.chunk = Chunk::Size;
                        continue;
                    }
                    let byte = input[0];
                    input = &input[1..];
                    self.chunk = match (seen, byte) {
                        (0, b'\r') => Chunk::DataEnd(1),
                        (0 | 1, b'\n') => Chunk::Size,
                        _ => return Err(BodyError::BadChunk("no CRLF after chunk data")),
                    };
                }
                Chunk::Trailers => {
                    let before = input.len();
                    let blank = |l: &[u8]| Ok(l == b"\r\n" || l == b"\n");
                    let last = self.take_line(&mut input, MAX_TRAILERS, blank)?;
                    self.trailer_bytes += before - input.len();
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(BodyError::BadChunk("trailers too long"));
                    }
                    match last {
                        None => return Ok(()),
                        Some(true) => {
                            self.done = true;
                            self.overrun |= !input.is_empty();
                            return Ok(());
                        }
                        Some(false) => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads a whole line (with its `\n`) with `read` if it is complete, carrying a partial
    /// one over. A line that came whole in one read is read where it lies, with no copy.
    fn take_line<T>(
        &mut self,
        input: &mut &[u8],
        max: usize,
        read: impl FnOnce(&[u8]) -> Result<T, BodyError>,
    ) -> Result<Option<T>, BodyError> {
        let Some(i) = memchr::memchr(b'\n', input) else {
            self.line.extend_from_slice(input);
            *input = &[];
            if self.line.len() > max {
                return Err(BodyError::BadChunk("line too long"));
            }
            return Ok(None);
        };
        let value = if self.line.is_empty() {
            if i + 1 > max {
                return Err(BodyError::BadChunk("line too long"));
            }
            read(&input[..=i])
        } else {
            // Freed, not kept: a line split across reads is rare, and a stream is long.
            let mut line = std::mem::take(&mut self.line);
            line.extend_from_slice(&input[..=i]);
            if line.len() > max {
                return Err(BodyError::BadChunk("line too long"));
            }
            read(&line)
        };
        *input = &input[i + 1..];
        value.map(Some)
    }
}

/// The size on a chunk-size line (extensions are ignored, as RFC 9112 allows).
fn chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    match httparse::parse_chunk_size(line) {
        Ok(httparse::Status::Complete((_, size))) => Ok(size),
        _ => Err(BodyError::BadChunk("bad chunk size line")),
    }
}

/// A chunk-size line that is only hex digits (at most 16) and CRLF, at the start of `input`:
/// its size and its length. Anything else (extensions, a bare LF, a line cut by the read's
/// end) is left to [`chunk_size`].
fn plain_size_line(input: &[u8]) -> Option<(u64, usize)> {
    let mut size = 0u64;
    for (i, &b) in input.iter().enumerate().take(17) {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            b'\r' if i > 0 => {
                return input
                    .get(i + 1)
                    .filter(|&&n| n == b'\n')
                    .map(|_| (size, i + 2))
            }
            _ => return None,
        };
        if i == 16 {
            return None;
        }
        size = size << 4 | u64::from(digit);
    }
    None
}

/// Appends `data` to `out` as one HTTP/1.1 chunk (nothing if it is empty: that would end it).
pub fn put_chunk(data: &[u8], out: &mut impl BufMut) {
    if !data.is_empty() {
        put_size_line(data.len(), out);
        out.put_slice(data);
        out.put_slice(b"\r\n");
    }
}

/// A chunk-size line: `len` in lowercase hex, then CRLF (what `format!("{len:x}\r\n")`
/// writes, without the formatting machinery, which showed in the per-event profile).
fn put_size_line(len: usize, out: &mut impl BufMut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut line = [0u8; 2 * std::mem::size_of::<usize>() + 2];
    let mut at = line.len() - 2;
    line[at..].copy_from_slice(b"\r\n");
    let mut n = len;
    loop {
        at -= 1;
        line[at] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&line[at..]);
}

/// The last chunk and the empty trailer.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use proptest::prelude::*;

    #[test]
    fn size_lines_are_lowercase_hex() {
        for len in [1usize, 9, 10, 15, 16, 255, 4096, 0xdead_beef, usize::MAX] {
            let mut out = BytesMut::new();
            put_size_line(len, &mut out);
            assert_eq!(&out[..], format!("{len:x}\r\n").as_bytes());
        }
    }

    fn decode_all(framing: Framing, parts: &[&[u8]]) -> (Vec<u8>, Decoder) {
        let mut d = Decoder::new(framing);
        let mut out = Vec::new();
        for p in parts {
            d.decode(p, |piece| out.extend_from_slice(piece))
                .expect("decodes");
        }
        (out, d)
    }

    #[test]
    fn lengths_stop_at_their_end_and_notice_an_overrun() {
        let (body, d) = decode_all(Framing::Length(5), &[b"he", b"llo"]);
        assert_eq!(body, b"hello");
        assert!(d.is_done() && d.reusable());
        let (body, d) = decode_all(Framing::Length(3), &[b"abcdef"]);
        assert_eq!(body, b"abc");
        assert!(d.is_done() && !d.reusable());
        let mut d = Decoder::new(Framing::Length(4));
        assert_eq!(d.eof(), Err(BodyError::Truncated));
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let wire = b"5;name=v\r\nhello\r\n1\r\n \r\n0\r\nX-Trailer: 1\r\n\r\n";
        let (body, d) = decode_all(Framing::Chunked, &[wire]);
        assert_eq!(body, b"hello ");
        assert!(d.is_done() && d.reusable());
    }

    #[test]
    fn bad_chunks_are_errors() {
        for wire in [&b"zz\r\n"[..], b"3\r\nabcX", b"ffffffffffffffffffff\r\n"] {
            let mut d = Decoder::new(Framing::Chunked);
            let r = d.decode(wire, |_| {});
            assert!(r.is_err(), "{:?}", String::from_utf8_lossy(wire));
        }
        let mut d = Decoder::new(Framing::Chunked);
        let long = vec![b'1'; MAX_SIZE_LINE + 1];
        assert!(d.decode(&long, |_| {}).is_err());
        // Too long with its end in the same read, and with its end in the next one.
        let mut line = vec![b'0'; MAX_SIZE_LINE];
        line.extend_from_slice(b"1\r\n");
        let mut d = Decoder::new(Framing::Chunked);
        assert!(d.decode(&line, |_| {}).is_err());
        let mut d = Decoder::new(Framing::Chunked);
        let (head, tail) = line.split_at(MAX_SIZE_LINE - 10);
        d.decode(head, |_| {}).expect("partial line");
        assert!(d.decode(tail, |_| {}).is_err());
        let mut d = Decoder::new(Framing::Chunked);
        d.decode(b"3\r\nab", |_| {}).expect("partial");
        assert_eq!(d.eof(), Err(BodyError::Truncated));
    }

    #[test]
    fn until_close_ends_at_eof() {
        let (body, mut d) = decode_all(Framing::UntilClose, &[b"a", b"b"]);
        assert_eq!(body, b"ab");
        assert!(!d.is_done());
        assert_eq!(d.eof(), Ok(()));
        assert!(d.is_done() && !d.reusable());
    }

    #[test]
    fn chunks_encode_with_hex_sizes() {
        let mut out = BytesMut::new();
        for chunk in [&[b'x'; 26][..], b"", b"ok"] {
            put_chunk(chunk, &mut out);
        }
        assert_eq!(
            &out[..],
            &b"1a\r\nxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n2\r\nok\r\n"[..]
        );
    }

    #[test]
    fn plain_size_lines_read_as_the_general_parser_reads_them() {
        for (line, want) in [
            (&b"8c\r\nrest"[..], Some((0x8c, 4))),
            (b"0\r\n", Some((0, 3))),
            (b"FFFFFFFFFFFFFFFF\r\n", Some((u64::MAX, 18))),
            (b"10000000000000000\r\n", None),
            (b"8c;ext=1\r\n", None),
            (b"8c\n", None),
            (b"8c\r", None),
            (b"\r\n", None),
            (b"8c", None),
        ] {
            assert_eq!(
                plain_size_line(line),
                want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    proptest! {
        /// Where the plain reading reads a line, it agrees with the general parser.
        #[test]
        fn plain_size_lines_agree_with_httparse(line in proptest::collection::vec(
            proptest::sample::select(b"0123456789abcdefABCDEFxX;= \r\n".to_vec()), 0..24,
        )) {
            if let Some((size, len)) = plain_size_line(&line) {
                prop_assert_eq!(chunk_size(&line[..len]), Ok(size));
            }
        }

        /// Any body, chunked any way and delivered in any pieces, decodes to itself.
        #[test]
        fn chunked_round_trips(
            body in proptest::collection::vec(any::<u8>(), 0..600),
            sizes in proptest::collection::vec(1usize..80, 1..20),
            cuts in proptest::collection::vec(1usize..50, 1..40),
        ) {
            let mut chunks = Vec::new();
            let (mut at, mut i) = (0, 0);
            while at < body.len() {
                let n = sizes[i % sizes.len()].min(body.len() - at);
                chunks.push(&body[at..at + n]);
                at += n;
                i += 1;
            }
            let mut wire = BytesMut::new();
            chunks.iter().for_each(|c| put_chunk(c, &mut wire));
            wire.extend_from_slice(LAST_CHUNK);
            wire.extend_from_slice(b"NEXT");
            let mut d = Decoder::new(Framing::Chunked);
            let mut out = Vec::new();
            let (mut rest, mut k) = (&wire[..], 0);
            while !rest.is_empty() {
                let (read, after) = rest.split_at(cuts[k % cuts.len()].min(rest.len()));
                d.decode(read, |piece| {
                    assert!(!piece.is_empty());
                    // Where it lies in the read, not a copy.
                    let within = read.as_ptr_range();
                    assert!(within.contains(&piece.as_ptr()) && piece.as_ptr_range().end <= within.end);
                    out.extend_from_slice(piece);
                }).expect("valid");
                rest = after;
                k += 1;
            }
            prop_assert_eq!(out, body);
            prop_assert!(d.is_done());
            prop_assert!(!d.reusable(), "bytes after the end were noticed");
        }
    }
}
