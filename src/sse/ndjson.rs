//! NDJSON framing: one event per LF- or CRLF-terminated line, empty lines ignored.

use memchr::memchr;

use super::{push_bounded, Event, Field, Line, Parser};

impl Parser {
    /// Feed one chunk of an NDJSON body.
    pub(super) fn feed_ndjson(&mut self, chunk: &[u8], sink: &mut impl FnMut(&Event<'_>)) {
        let mut rest = chunk;
        if self.line != Line::Start {
            match memchr(b'\n', rest) {
                None => return self.ndjson_partial(rest),
                Some(i) => {
                    self.ndjson_partial(rest.get(..i).unwrap_or_default());
                    self.ndjson_end(sink);
                    rest = rest.get(i + 1..).unwrap_or_default();
                }
            }
        }
        while let Some(i) = memchr(b'\n', rest) {
            let line = rest.get(..i).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > self.max.0 {
                self.oversized += 1;
            } else if !line.is_empty() {
                sink(&Event {
                    event_type: "message",
                    data: line,
                    id: None,
                });
            }
            rest = rest.get(i + 1..).unwrap_or_default();
        }
        if !rest.is_empty() {
            self.line = Line::Value(Field::Data);
            self.ndjson_partial(rest);
        }
    }

    /// Bytes of an NDJSON line whose LF is not in them; a trailing CR is held back.
    fn ndjson_partial(&mut self, seg: &[u8]) {
        if seg.is_empty() || self.line == Line::Skip {
            return;
        }
        if self.cr {
            self.cr = false;
            self.ndjson_push(b"\r");
        }
        let seg = match seg.split_last() {
            Some((b'\r', head)) => {
                self.cr = true;
                head
            }
            _ => seg,
        };
        self.ndjson_push(seg);
    }

    fn ndjson_push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.line == Line::Skip {
            return;
        }
        if self.grow(bytes.len()) {
            push_bounded(&mut self.data, bytes, self.max.0);
        } else {
            self.line = Line::Skip;
        }
    }

    /// The LF (or the end of stream) closing an NDJSON line begun in an earlier chunk.
    pub(super) fn ndjson_end(&mut self, sink: &mut impl FnMut(&Event<'_>)) {
        if self.line != Line::Skip && !self.data.is_empty() {
            sink(&Event {
                event_type: "message",
                data: &self.data,
                id: None,
            });
        }
        self.clear_event();
        self.line = Line::Start;
        self.cr = false;
    }
}
