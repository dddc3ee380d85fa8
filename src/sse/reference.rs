//! Reference readings of whole SSE and NDJSON bodies, transcribed directly from the WHATWG
//! algorithm (and "one event per line"), with no size limit and no incremental state: what the
//! incremental parser must agree with. Shared by the property tests (`sse/proptests.rs`) and the
//! `sse_parser` fuzz target, which includes this file by path.

/// An event as the reference and the tests see it, owning its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ev {
    /// The `event:` field, `message` by default.
    pub ty: String,
    /// The joined `data:` lines.
    pub data: Vec<u8>,
    /// The last `id:` seen, if any.
    pub id: Option<Vec<u8>>,
}

impl Ev {
    /// An event of these parts, copied.
    pub fn new(ty: &str, data: &[u8], id: Option<&[u8]>) -> Ev {
        Ev {
            ty: ty.to_string(),
            data: data.to_vec(),
            id: id.map(<[u8]>::to_vec),
        }
    }
}

/// A byte order mark, dropped at the start of a body.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The WHATWG event-stream interpretation over a whole body (no size limit).
pub fn reference_sse(body: &[u8]) -> (Vec<Ev>, Option<u64>) {
    let body = body.strip_prefix(BOM).unwrap_or(body);
    let mut lines = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < body.len() {
        if body[i] == b'\r' || body[i] == b'\n' {
            lines.push(&body[start..i]);
            if body[i] == b'\r' && body.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    let (mut out, mut data, mut ty, mut id, mut retry) =
        (Vec::new(), Vec::<u8>::new(), Vec::new(), Vec::new(), None);
    let mut has_data = false;
    for line in lines {
        if line.is_empty() {
            if has_data {
                let ty = if ty.is_empty() {
                    "message".to_string()
                } else {
                    String::from_utf8_lossy(&ty).into_owned()
                };
                out.push(Ev {
                    ty,
                    data: std::mem::take(&mut data),
                    id: (!id.is_empty()).then(|| id.clone()),
                });
            }
            data.clear();
            has_data = false;
            ty.clear();
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(c) => (
                &line[..c],
                line[c + 1..].strip_prefix(b" ").unwrap_or(&line[c + 1..]),
            ),
            None => (line, &b""[..]),
        };
        match name {
            b"event" => ty = value.to_vec(),
            b"data" => {
                if has_data {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
                has_data = true;
            }
            b"id" if !value.contains(&0) => id = value.to_vec(),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let v = value.iter().fold(0u64, |acc, d| {
                    acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                retry = Some(v);
            }
            _ => {}
        }
    }
    (out, retry)
}

/// One event per non-empty LF-terminated line (a CR before the LF dropped); a last
/// unterminated line counts at the end.
pub fn reference_ndjson(body: &[u8]) -> Vec<Ev> {
    let body = body.strip_prefix(BOM).unwrap_or(body);
    body.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(|l| Ev {
            ty: "message".into(),
            data: l.to_vec(),
            id: None,
        })
        .collect()
}
