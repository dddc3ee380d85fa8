//! ssegate's lean HTTP/1 wire code on arbitrary bytes, as a hostile client or upstream would
//! send them: request heads, response heads, and bodies in every framing.
//!
//! Input: byte 0 picks what is read (bit 0: a request head or a response), bytes 1..=8 seed
//! the chunk sizes, the rest is the bytes. Checked: no panic; a head's length lies within
//! the bytes; a body decodes to the same data, the same end and the same error however it
//! is cut into reads, and never to more data than it was given.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ssegate::h1::body::{Decoder, Framing};
use ssegate::h1::head;

#[path = "chunked_input.rs"]
mod chunked_input;

use chunked_input::{chunks, Input};

/// What decoding a body came to.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    data: Vec<u8>,
    done: bool,
    reusable: bool,
    failed: bool,
}

fn decode(framing: Framing, pieces: &[&[u8]]) -> Decoded {
    let mut d = Decoder::new(framing);
    let mut out = Vec::new();
    let mut failed = false;
    for p in pieces {
        let decoded = d.decode(p, |piece| {
            assert!(!piece.is_empty(), "an empty piece");
            // Where it lies in the read it came from: no copy.
            let read = p.as_ptr_range();
            assert!(read.contains(&piece.as_ptr()) && piece.as_ptr_range().end <= read.end);
            out.extend_from_slice(piece);
        });
        if decoded.is_err() {
            failed = true;
            break;
        }
    }
    if !failed && d.eof().is_err() {
        failed = true;
    }
    Decoded {
        data: out,
        done: d.is_done(),
        reusable: d.reusable(),
        failed,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(Input {
        mode, seed, body, ..
    }) = chunked_input::read(data)
    else {
        return;
    };
    if mode & 1 == 0 {
        if let Some(end) = head::head_end(body, 0) {
            assert!(end <= body.len());
            if let Ok(req) = head::parse_request(&Bytes::copy_from_slice(&body[..end])) {
                let _ = head::request_framing(&req);
            }
        }
        return;
    }
    let (framing, rest) = match head::parse_response(&Bytes::copy_from_slice(body)) {
        Ok(Some((mut resp, len))) => {
            assert!(len <= body.len());
            match head::response_framing(&mut resp, mode & 2 != 0) {
                Ok(f) => (f, &body[len..]),
                Err(_) => return,
            }
        }
        // Not a head: read the bytes as each framing in turn.
        _ => (
            match (mode >> 1) & 3 {
                0 => Framing::Chunked,
                1 => Framing::UntilClose,
                2 => Framing::Length(u64::from(mode)),
                _ => Framing::Empty,
            },
            body,
        ),
    };
    let whole = decode(framing, &[rest]);
    let pieces = decode(framing, &chunks(rest, seed));
    assert!(whole.data.len() <= rest.len());
    if whole.failed || pieces.failed {
        // An error may surface at a different read, but it surfaces either way.
        assert_eq!(whole.failed, pieces.failed, "{framing:?}");
    } else {
        assert_eq!(whole, pieces, "{framing:?}");
    }
});
