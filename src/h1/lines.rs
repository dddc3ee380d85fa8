//! The header lines of an HTTP/1 head, as they arrived: names in their case, lines in their
//! order, each a span of the head's own bytes. Lookups compare names without case by walking
//! the lines: a head has a handful, and a walk costs less than building the two hash maps per
//! head (values, and names in their case) that Pingora's header types keep (about a quarter of
//! a plain request's instructions, callgrind).

use bytes::Bytes;

/// Header text: a span of the head, a constant, or (rarely) bytes of its own.
#[derive(Clone, Debug)]
pub struct Text(Repr);

#[derive(Clone, Debug)]
enum Repr {
    At { at: u32, len: u32 },
    Static(&'static [u8]),
    Owned(Box<[u8]>),
}

impl Text {
    /// Its length, known without finding its bytes.
    fn len(&self) -> usize {
        match &self.0 {
            Repr::At { len, .. } => *len as usize,
            Repr::Static(s) => s.len(),
            Repr::Owned(b) => b.len(),
        }
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Text(Repr::Static(s.as_bytes()))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Repr::Owned(s.into_bytes().into_boxed_slice()))
    }
}

#[derive(Clone, Debug)]
struct Line {
    name: Text,
    value: Text,
}

/// The header lines of one head.
#[derive(Clone, Debug, Default)]
pub struct Lines {
    /// The head the spans point into.
    src: Bytes,
    lines: Vec<Line>,
}

impl Lines {
    /// No lines yet, with room for `n`; spans given to [`Lines::push_span`] are of `src`.
    pub fn with_capacity(src: Bytes, n: usize) -> Self {
        Lines {
            src,
            lines: Vec::with_capacity(n),
        }
    }

    /// The text of `t` (a span of this head, or text of its own).
    pub fn text<'a>(&'a self, t: &'a Text) -> &'a [u8] {
        text_of(&self.src, t)
    }

    /// A span of the head: `part` must lie within it (a slice the parser returned).
    pub fn span(&self, part: &[u8]) -> Text {
        if part.is_empty() {
            // A parser may hand out an empty slice from anywhere.
            return Text(Repr::Static(b""));
        }
        let at = (part.as_ptr() as usize).wrapping_sub(self.src.as_ptr() as usize);
        debug_assert!(at + part.len() <= self.src.len(), "not a span of the head");
        Text(Repr::At {
            at: at as u32,
            len: part.len() as u32,
        })
    }

    /// Adds a line whose name and value are spans of the head.
    pub fn push_span(&mut self, name: &[u8], value: &[u8]) {
        let line = Line {
            name: self.span(name),
            value: self.span(value),
        };
        self.lines.push(line);
    }

    /// Adds a line at the end.
    pub fn append(&mut self, name: &'static str, value: impl Into<Text>) {
        self.lines.push(Line {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Gives `name` this one value: the first line of that name keeps its place and its
    /// name's case, any others go; with none, the line is added at the end.
    pub fn set(&mut self, name: &'static str, value: impl Into<Text>) {
        let value = value.into();
        match self.position(name) {
            Some(i) => {
                self.lines[i].value = value;
                let src = &self.src;
                let mut seen = 0;
                self.lines.retain(|l| {
                    let same = named(src, &l.name, name);
                    seen += usize::from(same);
                    !same || seen == 1
                });
            }
            None => self.lines.push(Line {
                name: name.into(),
                value,
            }),
        }
    }

    /// Removes every line of `name` (any case).
    pub fn remove(&mut self, name: &str) {
        let src = &self.src;
        self.lines.retain(|l| !named(src, &l.name, name));
    }

    /// Keeps only the lines whose name `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let src = &self.src;
        self.lines.retain(|l| keep(text_of(src, &l.name)));
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| named(&self.src, &l.name, name))
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.position(name).map(|i| self.text(&self.lines[i].value))
    }

    /// Every value of `name` (any case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.lines
            .iter()
            .filter(move |l| named(&self.src, &l.name, name))
            .map(|l| self.text(&l.value))
    }

    /// Whether a line of `name` (any case) is present.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Every line, name and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.lines
            .iter()
            .map(|l| (self.text(&l.name), self.text(&l.value)))
    }

    /// How many lines there are.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Whether the name `t` is `name` in any case (most names differ in length: that check comes
/// first).
fn named(src: &Bytes, t: &Text, name: &str) -> bool {
    t.len() == name.len() && text_of(src, t).eq_ignore_ascii_case(name.as_bytes())
}

fn text_of<'a>(src: &'a Bytes, t: &'a Text) -> &'a [u8] {
    match &t.0 {
        Repr::At { at, len } => {
            let (at, len) = (*at as usize, *len as usize);
            src.get(at..at + len).unwrap_or_default()
        }
        Repr::Static(s) => s,
        Repr::Owned(b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(head: &'static [u8], pairs: &[(&str, &str)]) -> Lines {
        let src = Bytes::from_static(head);
        let mut l = Lines::with_capacity(src.clone(), pairs.len());
        for (n, v) in pairs {
            let find = |s: &str| {
                let at = head
                    .windows(s.len())
                    .position(|w| w == s.as_bytes())
                    .expect("in the head");
                &src[at..at + s.len()]
            };
            l.push_span(find(n), find(v));
        }
        l
    }

    #[test]
    fn lookups_ignore_case_and_keep_order() {
        let l = lines(
            b"X-A: 1\r\nx-b: 2\r\nX-a: 3\r\n",
            &[("X-A", "1"), ("x-b", "2"), ("X-a", "3")],
        );
        assert_eq!(l.get("x-a"), Some(&b"1"[..]));
        assert_eq!(l.get_all("x-a").collect::<Vec<_>>(), [&b"1"[..], b"3"]);
        assert!(l.contains("X-B") && !l.contains("x-c"));
        let names: Vec<&[u8]> = l.iter().map(|(n, _)| n).collect();
        assert_eq!(names, [&b"X-A"[..], b"x-b", b"X-a"]);
    }

    #[test]
    fn set_keeps_the_first_line_in_place_and_drops_the_rest() {
        let mut l = lines(
            b"Content-Type: a\r\nx: 1\r\ncontent-type: b\r\n",
            &[("Content-Type", "a"), ("x", "1"), ("content-type", "b")],
        );
        l.set("content-type", "text/event-stream");
        let all: Vec<(&[u8], &[u8])> = l.iter().collect();
        assert_eq!(
            all,
            [
                (&b"Content-Type"[..], &b"text/event-stream"[..]),
                (b"x", b"1")
            ]
        );
        l.set("cache-control", String::from("no-cache"));
        assert_eq!(
            l.iter().last(),
            Some((&b"cache-control"[..], &b"no-cache"[..]))
        );
        l.remove("CONTENT-TYPE");
        l.append("x", "2");
        assert_eq!(l.get_all("x").collect::<Vec<_>>(), [&b"1"[..], b"2"]);
        l.retain(|n| n != b"x");
        assert_eq!(l.len(), 1);
    }
}
