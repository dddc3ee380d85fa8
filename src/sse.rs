//! Incremental parser for `text/event-stream` (WHATWG rules) and `application/x-ndjson` bodies.
//!
//! The parser only observes: the proxy forwards the original bytes. Events that lie wholly in
//! one chunk borrow from it; only an event that spans chunks is copied, and never more than
//! `max_event_bytes` of it, so memory stays bounded whatever the upstream sends.

// Explicit paths so that the files resolve the same when this module is included by path.
#[path = "sse/event_stream.rs"]
mod event_stream;
#[path = "sse/ndjson.rs"]
mod ndjson;
#[cfg(test)]
#[path = "sse/tests.rs"]
mod tests;

/// Default limit on the bytes of one event (data, event type and id together).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
/// Buffers grown past this by one big event are shrunk back once it is gone, so an idle
/// stream does not pin a megabyte.
const KEEP_CAPACITY: usize = 16 << 10;

/// How a streamed body is framed into events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`: WHATWG server-sent events.
    #[default]
    Sse,
    /// `application/x-ndjson`: one event per line.
    Ndjson,
}

impl Framing {
    /// The framing for a `Content-Type` value, or `None` when it is not a streamed type.
    pub fn from_content_type(value: &str) -> Option<Framing> {
        let essence = value.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("text/event-stream") {
            Some(Framing::Sse)
        } else if essence.eq_ignore_ascii_case("application/x-ndjson") {
            Some(Framing::Ndjson)
        } else {
            None
        }
    }
}

/// One dispatched event; it borrows from the fed chunk or from the parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// The `event:` field, `"message"` when absent or empty (always `"message"` for NDJSON).
    pub event_type: &'a str,
    /// The `data:` lines joined with `\n` (the line itself for NDJSON).
    pub data: &'a [u8],
    /// The last event ID in force (it persists across events as in WHATWG); `None` when empty.
    pub id: Option<&'a [u8]>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Data,
    Event,
    Id,
    Retry,
}

fn field_of(name: &[u8]) -> Option<Field> {
    match name {
        b"data" => Some(Field::Data),
        b"event" => Some(Field::Event),
        b"id" => Some(Field::Id),
        b"retry" => Some(Field::Retry),
        _ => None,
    }
}

/// The event size limit, defaulting to `DEFAULT_MAX_EVENT_BYTES`.
#[derive(Clone, Copy, Debug)]
struct Limit(usize);

impl Default for Limit {
    fn default() -> Self {
        Limit(DEFAULT_MAX_EVENT_BYTES)
    }
}

/// Where the parser is within a line that started in an earlier chunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Line {
    /// At the start of a line (no partial line pending).
    #[default]
    Start,
    /// Reading a field name: its first bytes and their count (longer than 5 is unknown).
    Name([u8; 5], u8),
    /// Just after the colon of a known field: one space here is dropped.
    Colon(Field),
    /// Reading the value of a known field (NDJSON: reading a line).
    Value(Field),
    /// In a comment, an unknown field or a skipped event: ignored up to the line end.
    Skip,
}

/// Incremental event-stream parser that borrows from the chunks it is fed; its `Default` is
/// an SSE parser with the default limit.
#[derive(Debug, Default)]
pub struct Parser {
    framing: Framing,
    max: Limit,
    /// Leading BOM bytes matched so far, while not `past_bom`.
    bom: u8,
    /// The start of the stream (where a BOM may be) has been passed.
    past_bom: bool,
    /// The last byte fed was a CR (SSE: a line end whose LF may follow; NDJSON: held back).
    cr: bool,
    line: Line,
    /// Current event's data when it spans chunks; empty while `data_span` holds it.
    data: Vec<u8>,
    /// Current event's data as `(offset, len)` in the chunk being fed (zero-copy case).
    data_span: Option<(usize, usize)>,
    has_data: bool,
    event_type: Vec<u8>,
    /// Current event's type as `(offset, len)` in the chunk being fed (zero-copy case).
    type_span: Option<(usize, usize)>,
    id_pending: Vec<u8>,
    last_id: Vec<u8>,
    retry: Option<u64>,
    /// Value of the `retry:` line being read; `None` once a non-digit is seen.
    retry_acc: Option<u64>,
    retry_digits: bool,
    /// A data, event or id field of the current event has been read.
    pending: bool,
    /// The current event outgrew the limit: ignore it up to its end.
    skipping: bool,
    /// Logical bytes of the current event: data (joined), event type and id.
    size: usize,
    /// Bytes of the current event's id (its last `id:` line), part of `size`.
    id_size: usize,
    oversized: u64,
}

impl Parser {
    /// A parser for one body; events (NDJSON lines) over `max_event_bytes` are skipped.
    pub fn new(framing: Framing, max_event_bytes: usize) -> Self {
        Parser {
            framing,
            max: Limit(max_event_bytes),
            ..Parser::default()
        }
    }

    /// The framing this parser reads.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Feed the next chunk; `sink` is called for every event dispatched by it.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl FnMut(&Event<'_>)) {
        if chunk.is_empty() {
            return;
        }
        let mut chunk = chunk;
        if !self.past_bom {
            let m = usize::from(self.bom);
            let want = BOM.get(m..).unwrap_or_default();
            let n = want.len().min(chunk.len());
            self.past_bom = true;
            if chunk.get(..n) == want.get(..n) {
                if m + n < BOM.len() {
                    // The whole chunk is a BOM prefix: wait for the rest.
                    self.past_bom = false;
                    self.bom = (m + n) as u8;
                    return;
                }
                chunk = chunk.get(n..).unwrap_or_default();
            } else {
                // Bytes held as a possible BOM were content after all.
                self.feed_body(BOM.get(..m).unwrap_or_default(), sink);
            }
        }
        self.feed_body(chunk, sink);
    }

    /// End of stream: SSE discards the incomplete event; NDJSON dispatches a last unterminated line.
    pub fn finish(&mut self, sink: &mut impl FnMut(&Event<'_>)) {
        if !self.past_bom {
            self.past_bom = true;
            self.feed_body(BOM.get(..usize::from(self.bom)).unwrap_or_default(), sink);
        }
        if self.framing == Framing::Ndjson && self.line != Line::Start {
            self.ndjson_end(sink);
        }
        let (framing, max, oversized) = (self.framing, self.max, self.oversized);
        *self = Parser {
            framing,
            max,
            oversized,
            ..Parser::default()
        };
    }

    /// True when the bytes seen so far end exactly at an event boundary: not mid-line, no field
    /// of an undispatched event pending, and the last byte was not a CR (whose LF may still
    /// come). True before any byte. The proxy writes heartbeat comments only when this is true.
    pub fn at_event_boundary(&self) -> bool {
        let bom_partial = !self.past_bom && self.bom > 0;
        !bom_partial && !self.cr && self.line == Line::Start && !self.pending && !self.skipping
    }

    /// Events (NDJSON lines) skipped so far because they exceeded the size limit.
    pub fn oversized_events(&self) -> u64 {
        self.oversized
    }

    /// The last valid `retry:` value (reconnection time in milliseconds), if any.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Bytes of memory held for events that span chunks (each buffer stays within the limit).
    pub fn buffered_capacity(&self) -> usize {
        self.data.capacity()
            + self.event_type.capacity()
            + self.id_pending.capacity()
            + self.last_id.capacity()
    }

    fn feed_body(&mut self, chunk: &[u8], sink: &mut impl FnMut(&Event<'_>)) {
        if chunk.is_empty() {
            return;
        }
        match self.framing {
            Framing::Sse => self.feed_sse(chunk, sink),
            Framing::Ndjson => self.feed_ndjson(chunk, sink),
        }
    }

    /// Account `n` more bytes of the current event; past the limit the event is dropped.
    fn grow(&mut self, n: usize) -> bool {
        if self.skipping {
            return false;
        }
        if self.size.saturating_add(n) <= self.max.0 {
            self.size += n;
            return true;
        }
        self.oversized += 1;
        self.clear_event();
        self.skipping = true;
        false
    }

    fn clear_event(&mut self) {
        self.data_span = None;
        self.type_span = None;
        self.data.clear();
        self.event_type.clear();
        self.id_pending.clear();
        shrink(&mut self.data);
        shrink(&mut self.event_type);
        shrink(&mut self.id_pending);
        self.has_data = false;
        self.pending = false;
        self.skipping = false;
        self.size = 0;
        self.id_size = 0;
    }
}

/// Append within `limit` capacity: plain doubling could reserve twice the limit.
fn push_bounded(buf: &mut Vec<u8>, bytes: &[u8], limit: usize) {
    let need = buf.len() + bytes.len();
    if need > buf.capacity() {
        let target = buf
            .capacity()
            .saturating_mul(2)
            .max(64)
            .min(limit)
            .max(need);
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(bytes);
}

fn slice(chunk: &[u8], (at, len): (usize, usize)) -> Option<&[u8]> {
    chunk.get(at..at.checked_add(len)?)
}

fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP_CAPACITY {
        buf.shrink_to(KEEP_CAPACITY);
    }
}
