//! Minimal HTTP/1.1 pieces the client and upstream need: a chunked-body decoder and an SSE
//! event scanner. Hand-written so the load tool controls every byte and allocation; both are
//! incremental, because a proxy may split or merge the upstream's chunks anywhere.

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length: n`.
    Length(u64),
    /// Until the connection closes.
    Close,
}

/// The parsed head of a response.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Body framing.
    pub framing: Framing,
    /// Bytes the head took, including the blank line.
    pub len: usize,
}

/// Parses a response head from `buf`; `Ok(None)` means more bytes are needed.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let mut framing = Framing::Close;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.contains("chunked") {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or("bad Content-Length")?;
            framing = Framing::Length(v);
        }
    }
    Ok(Some(ResponseHead {
        status,
        framing,
        len,
    }))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// Incremental decoder of a chunked body.
#[derive(Debug)]
pub struct Chunked {
    state: State,
    size: u64,
    digits: u32,
}

/// Largest chunk accepted; anything bigger is a broken peer, not a benchmark payload.
const MAX_CHUNK: u64 = 1 << 32;

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size,
            size: 0,
            digits: 0,
        }
    }
}

impl Chunked {
    /// Whether the terminating zero-size chunk and its trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, appending the payload to `out`; returns how many bytes were consumed
    /// (all of them unless the body ended inside `input`).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, &'static str> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                let take = (input.len() - i).min(self.size as usize);
                out.extend_from_slice(&input[i..i + take]);
                i += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = match (self.state, b) {
                (State::Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                    self.size = self.size * 16 + d;
                    self.digits += 1;
                    if self.size > MAX_CHUNK {
                        return Err("chunk too large");
                    }
                    State::Size
                }
                (State::Size, b';') if self.digits > 0 => State::Ext,
                (State::Size, b'\r') if self.digits > 0 => State::SizeLf,
                (State::Size, _) => return Err("bad chunk size"),
                (State::Ext, b'\r') => State::SizeLf,
                (State::Ext, _) => State::Ext,
                (State::SizeLf, b'\n') if self.size == 0 => State::TrailerStart,
                (State::SizeLf, b'\n') => State::Data,
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => {
                    self.size = 0;
                    self.digits = 0;
                    State::Size
                }
                (State::TrailerStart, b'\r') => State::FinalLf,
                (State::TrailerStart, _) => State::TrailerLine,
                (State::TrailerLine, b'\r') => State::TrailerLf,
                (State::TrailerLine, _) => State::TrailerLine,
                (State::TrailerLf, b'\n') => State::TrailerStart,
                (State::FinalLf, b'\n') => {
                    self.state = State::Done;
                    return Ok(i);
                }
                (State::Done, _) => return Ok(i - 1),
                _ => return Err("bad chunk framing"),
            };
        }
        Ok(i)
    }
}

/// What one complete SSE event carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A token event stamped with its send time (`"t":<ns>`).
    Stamped(u64),
    /// `data: [DONE]`.
    Done,
    /// Anything else (comments, heartbeats, events without a stamp).
    Other,
}

/// Splits a decoded SSE body into events and reads each one's stamp.
///
/// Keeps only the bytes of the event in progress, so memory stays at one event per stream.
#[derive(Debug, Default)]
pub struct EventScanner {
    buf: Vec<u8>,
    /// Where the search for the next `\n\n` resumes.
    searched: usize,
}

impl EventScanner {
    /// The buffer decoded body bytes are appended to before [`EventScanner::drain`].
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Calls `f` for every complete event in the buffer, then drops those bytes.
    pub fn drain(&mut self, mut f: impl FnMut(Event)) {
        let mut start = 0;
        let mut i = self.searched.max(1);
        while i < self.buf.len() {
            if self.buf[i] == b'\n' && self.buf[i - 1] == b'\n' {
                f(classify(&self.buf[start..i - 1]));
                start = i + 1;
                i = start + 1;
            } else {
                i += 1;
            }
        }
        self.buf.drain(..start);
        // The last byte examined may be the first half of the next "\n\n".
        self.searched = self.buf.len().saturating_sub(1);
    }
}

/// Reads what an event (without its blank line) carries.
fn classify(event: &[u8]) -> Event {
    const STAMP: &[u8] = b"\"t\":";
    if let Some(pos) = event.windows(STAMP.len()).rposition(|w| w == STAMP) {
        let digits = &event[pos + STAMP.len()..];
        let mut t: u64 = 0;
        let mut n = 0;
        for &d in digits.iter().take_while(|d| d.is_ascii_digit()).take(20) {
            t = t.wrapping_mul(10).wrapping_add((d - b'0') as u64);
            n += 1;
        }
        if n > 0 {
            return Event::Stamped(t);
        }
    }
    if event.starts_with(b"data: [DONE]") {
        return Event::Done;
    }
    Event::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(pieces: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut d = Chunked::default();
        let mut out = Vec::new();
        for p in pieces {
            let n = d.decode(p, &mut out).expect("valid framing");
            assert!(n == p.len() || d.is_done());
        }
        (out, d.is_done())
    }

    #[test]
    fn chunked_whole_and_split_anywhere() {
        let body = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(decode_all(&[body]), (b"hello, world".to_vec(), true));
        for cut in 0..body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(
                decode_all(&[a, b]),
                (b"hello, world".to_vec(), true),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn chunked_rejects_garbage() {
        let mut out = Vec::new();
        assert!(Chunked::default().decode(b"zz\r\n", &mut out).is_err());
        assert!(Chunked::default().decode(b"2\r\nabXY", &mut out).is_err());
    }

    #[test]
    fn chunked_stops_at_end() {
        let mut d = Chunked::default();
        let mut out = Vec::new();
        let n = d
            .decode(b"1\r\na\r\n0\r\n\r\nHTTP/1.1", &mut out)
            .expect("valid");
        assert_eq!(n, 11);
        assert!(d.is_done());
    }

    #[test]
    fn events_split_and_merged() {
        let stream = b"data: {\"x\":1,\"t\":123}\n\ndata: {\"t\":45}\n\n: c\n\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let mut s = EventScanner::default();
            let mut seen = Vec::new();
            for piece in [&stream[..cut], &stream[cut..]] {
                s.buf().extend_from_slice(piece);
                s.drain(|e| seen.push(e));
            }
            assert_eq!(
                seen,
                vec![
                    Event::Stamped(123),
                    Event::Stamped(45),
                    Event::Other,
                    Event::Done
                ],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn response_head() {
        let h = parse_response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxx")
            .expect("valid")
            .expect("complete");
        assert_eq!((h.status, h.framing, h.len), (200, Framing::Chunked, 47));
        let h = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(h.framing, Framing::Length(5));
        assert!(parse_response_head(b"HTTP/1.1 200 OK\r\n")
            .expect("valid")
            .is_none());
    }
}
