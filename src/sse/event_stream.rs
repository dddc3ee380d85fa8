//! `text/event-stream` framing, following the WHATWG event-stream interpretation rules.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

use super::{field_of, push_bounded, shrink, slice, Event, Field, Line, Parser};

/// The value of a `name:` line at the start of `bytes` that ends in a lone LF, and the bytes
/// after that LF; `None` for any other line, or one whose end is not here.
#[inline(always)]
fn field_line<'a>(bytes: &'a [u8], name: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let value = bytes.strip_prefix(name)?.strip_prefix(b":")?;
    let value = value.strip_prefix(b" ").unwrap_or(value);
    let end = memchr2(b'\n', b'\r', value)?;
    if value.get(end) != Some(&b'\n') {
        return None;
    }
    Some((value.get(..end)?, value.get(end + 1..)?))
}

impl Parser {
    /// Feed one chunk of an SSE body.
    pub(super) fn feed_sse(&mut self, chunk: &[u8], sink: &mut impl FnMut(&Event<'_>)) {
        let mut pos = 0;
        if self.cr {
            self.cr = false;
            if chunk.first() == Some(&b'\n') {
                pos = 1;
            }
        }
        if self.line != Line::Start {
            let rest = chunk.get(pos..).unwrap_or_default();
            match memchr2(b'\n', b'\r', rest) {
                None => return self.sse_partial(rest),
                Some(i) => {
                    self.sse_partial(rest.get(..i).unwrap_or_default());
                    self.sse_partial_end(sink);
                    pos = self.after_line_end(chunk, pos + i);
                }
            }
        }
        while let Some(rest) = chunk.get(pos..).filter(|r| !r.is_empty()) {
            if let Some(next) = self.one_line_event(chunk, pos, sink) {
                pos = next;
                continue;
            }
            match memchr2(b'\n', b'\r', rest) {
                Some(i) => {
                    self.sse_line(chunk, pos, pos + i, sink);
                    pos = self.after_line_end(chunk, pos + i);
                }
                None => {
                    // The line, and so the event, continues in the next chunk.
                    self.materialize(chunk);
                    self.sse_partial(rest);
                    break;
                }
            }
        }
        self.materialize(chunk);
    }

    /// An event of one `data:` line, maybe after an `event:` line, then a blank line, wholly in
    /// `chunk` from `pos`, where no field of an event has been read: dispatched at once (nearly
    /// every model stream's events have this shape). The position after it, or `None` for any
    /// other shape, left to the line by line path.
    fn one_line_event(
        &mut self,
        chunk: &[u8],
        pos: usize,
        sink: &mut impl FnMut(&Event<'_>),
    ) -> Option<usize> {
        if self.pending || self.skipping {
            return None;
        }
        let rest = chunk.get(pos..)?;
        let (ty, rest) = field_line(rest, b"event").unwrap_or((b"", rest));
        let (data, after) = field_line(rest, b"data")?;
        if after.first() != Some(&b'\n') || ty.len() + data.len() > self.max.0 {
            return None;
        }
        // An empty type is the default one, as in `dispatch`.
        let event_type = match ty {
            b"" => "message",
            ty => std::str::from_utf8(ty).ok()?,
        };
        let id = (!self.last_id.is_empty()).then_some(self.last_id.as_slice());
        sink(&Event {
            event_type,
            data,
            id,
        });
        Some(chunk.len() - after.len() + 1)
    }

    /// Position after the line end at `i`; a CR ending the chunk may pair with a coming LF.
    fn after_line_end(&mut self, chunk: &[u8], i: usize) -> usize {
        if chunk.get(i) == Some(&b'\r') {
            match chunk.get(i + 1) {
                Some(b'\n') => return i + 2,
                None => self.cr = true,
                Some(_) => {}
            }
        }
        i + 1
    }

    /// A line lying wholly in `chunk[start..end]`: a first data line and the event type are
    /// kept as spans of the chunk.
    fn sse_line(
        &mut self,
        chunk: &[u8],
        start: usize,
        end: usize,
        sink: &mut impl FnMut(&Event<'_>),
    ) {
        let line = chunk.get(start..end).unwrap_or_default();
        let (name, value, value_at) = match line.first() {
            None => return self.dispatch(chunk, sink),
            Some(b':') => return,
            Some(_) => match memchr(b':', line) {
                None => (line, &[][..], end),
                Some(i) => {
                    let mut value = line.get(i + 1..).unwrap_or_default();
                    let mut at = start + i + 1;
                    if let Some((b' ', rest)) = value.split_first() {
                        value = rest;
                        at += 1;
                    }
                    (line.get(..i).unwrap_or_default(), value, at)
                }
            },
        };
        let Some(field) = field_of(name) else { return };
        if field == Field::Data && !self.has_data && !self.skipping {
            if self.grow(value.len()) {
                self.data_span = Some((value_at, value.len()));
                self.has_data = true;
                self.pending = true;
            }
            return;
        }
        if field == Field::Event && !self.skipping {
            // The new type replaces the old one, in the buffer or in the chunk.
            let old = self.event_type.len() + self.type_span.take().map_or(0, |(_, len)| len);
            self.size = self.size.saturating_sub(old);
            self.event_type.clear();
            self.pending = true;
            if self.grow(value.len()) {
                self.type_span = Some((value_at, value.len()));
            }
            return;
        }
        if field == Field::Data {
            self.materialize(chunk);
        }
        if self.field_begin(field) && self.field_bytes(field, value) {
            self.field_end(field);
        }
    }

    /// Bytes of a line whose end is not in them (no CR or LF inside).
    fn sse_partial(&mut self, seg: &[u8]) {
        let mut rest = seg;
        loop {
            match self.line {
                Line::Start => match rest.first() {
                    None => return,
                    Some(b':') => self.line = Line::Skip,
                    Some(_) => self.line = Line::Name([0; 5], 0),
                },
                Line::Name(mut name, len) => {
                    let colon = memchr(b':', rest);
                    let head = rest.get(..colon.unwrap_or(rest.len())).unwrap_or_default();
                    let len = usize::from(len);
                    let total = len + head.len();
                    let Some(slot) = name.get_mut(len..total) else {
                        // Longer than any known field name.
                        self.line = Line::Skip;
                        return;
                    };
                    slot.copy_from_slice(head);
                    let Some(colon) = colon else {
                        self.line = Line::Name(name, total as u8);
                        return;
                    };
                    let known = name.get(..total).and_then(field_of);
                    self.line = match known {
                        Some(f) if self.field_begin(f) => Line::Colon(f),
                        _ => Line::Skip,
                    };
                    rest = rest.get(colon + 1..).unwrap_or_default();
                }
                Line::Colon(f) => {
                    match rest.split_first() {
                        None => return,
                        Some((b' ', tail)) => rest = tail,
                        Some(_) => {}
                    }
                    self.line = Line::Value(f);
                }
                Line::Value(f) => {
                    if !self.field_bytes(f, rest) {
                        self.line = Line::Skip;
                    }
                    return;
                }
                Line::Skip => return,
            }
        }
    }

    /// The line end of a line begun by `sse_partial`.
    fn sse_partial_end(&mut self, sink: &mut impl FnMut(&Event<'_>)) {
        match self.line {
            Line::Start => self.dispatch(&[], sink),
            Line::Name(name, len) => {
                // A line without a colon is a field with an empty value.
                if let Some(f) = name.get(..usize::from(len)).and_then(field_of) {
                    if self.field_begin(f) {
                        self.field_end(f);
                    }
                }
            }
            Line::Colon(f) | Line::Value(f) => self.field_end(f),
            Line::Skip => {}
        }
        self.line = Line::Start;
    }

    /// Start a field's value; false when the event is being skipped.
    fn field_begin(&mut self, field: Field) -> bool {
        if self.skipping {
            return false;
        }
        match field {
            Field::Data => {
                if self.has_data {
                    if !self.grow(1) {
                        return false;
                    }
                    push_bounded(&mut self.data, b"\n", self.max.0);
                }
                self.has_data = true;
                self.pending = true;
            }
            Field::Event => {
                self.size = self.size.saturating_sub(self.event_type.len());
                self.event_type.clear();
                self.pending = true;
            }
            Field::Id => {
                // A later id line replaces the earlier one in the event's size too.
                self.size = self
                    .size
                    .saturating_sub(self.id_size + self.id_pending.len());
                self.id_size = 0;
                self.id_pending.clear();
                self.pending = true;
            }
            Field::Retry => {
                self.retry_acc = Some(0);
                self.retry_digits = false;
            }
        }
        true
    }

    /// More bytes of a field's value; false when they made the event oversized.
    fn field_bytes(&mut self, field: Field, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return !self.skipping;
        }
        if field == Field::Retry {
            for &b in bytes {
                self.retry_acc = self.retry_acc.and_then(|v| {
                    let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
                    Some(v.saturating_mul(10).saturating_add(digit))
                });
            }
            self.retry_digits = true;
            return true;
        }
        if !self.grow(bytes.len()) {
            return false;
        }
        let buf = match field {
            Field::Data => &mut self.data,
            Field::Event => &mut self.event_type,
            Field::Id | Field::Retry => &mut self.id_pending,
        };
        push_bounded(buf, bytes, self.max.0);
        true
    }

    fn field_end(&mut self, field: Field) {
        match field {
            Field::Id => {
                // An id containing NUL is ignored (WHATWG).
                self.id_size = self.id_pending.len();
                if !self.id_pending.contains(&0) {
                    std::mem::swap(&mut self.last_id, &mut self.id_pending);
                }
                self.id_pending.clear();
                shrink(&mut self.id_pending);
            }
            Field::Retry => {
                if let (Some(v), true) = (self.retry_acc, self.retry_digits) {
                    self.retry = Some(v);
                }
                self.retry_acc = None;
            }
            Field::Data | Field::Event => {}
        }
    }

    /// Copy zero-copy spans into the buffers before the chunk goes away.
    fn materialize(&mut self, chunk: &[u8]) {
        if let Some(bytes) = self.data_span.take().and_then(|s| slice(chunk, s)) {
            push_bounded(&mut self.data, bytes, self.max.0);
        }
        if let Some(bytes) = self.type_span.take().and_then(|s| slice(chunk, s)) {
            push_bounded(&mut self.event_type, bytes, self.max.0);
        }
    }

    /// A blank line: dispatch the event if it has data, then start a new one.
    fn dispatch(&mut self, chunk: &[u8], sink: &mut impl FnMut(&Event<'_>)) {
        if self.has_data && !self.skipping {
            let data = self
                .data_span
                .and_then(|s| slice(chunk, s))
                .unwrap_or(&self.data);
            let ty = self
                .type_span
                .and_then(|s| slice(chunk, s))
                .unwrap_or(&self.event_type);
            let event_type = if ty.is_empty() {
                Cow::Borrowed("message")
            } else {
                String::from_utf8_lossy(ty)
            };
            let id = (!self.last_id.is_empty()).then_some(self.last_id.as_slice());
            sink(&Event {
                event_type: &event_type,
                data,
                id,
            });
        }
        self.clear_event();
    }
}
