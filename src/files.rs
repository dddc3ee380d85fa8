//! Reading the files a user names (configs, nginx configs and their includes, TLS keys,
//! request bodies) up to a size limit: a wrong path (a device such as `/dev/zero`, a log file)
//! gets an error instead of all the memory there is.

use std::io::{self, Read};
use std::path::Path;

/// Largest ssegate or nginx config file read.
pub const MAX_CONFIG: u64 = 16 << 20;
/// Largest certificate or key file read.
pub const MAX_TLS_FILE: u64 = 1 << 20;
/// Largest request body `probe` reads from a file or standard input.
pub const MAX_BODY: u64 = 64 << 20;

/// Everything `r` gives, if at most `limit` bytes.
pub fn read_limited(r: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {} MiB", limit >> 20),
        ));
    }
    Ok(buf)
}

/// The file at `path`, if at most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read_limited(std::fs::File::open(path)?, limit)
}

/// The text of the file at `path`, if UTF-8 and at most `limit` bytes.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_the_limit_is_read_and_past_it_is_an_error() {
        let exact = read_limited(&[7u8; 4096][..], 4096).expect("at the limit");
        assert_eq!(exact.len(), 4096);
        let e = read_limited(&[7u8; 4097][..], 4096).expect_err("past the limit");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let big = read_limited(io::repeat(0), 2 << 20).expect_err("endless");
        assert_eq!(big.to_string(), "larger than 2 MiB");
    }

    #[test]
    fn an_endless_device_is_refused_not_read_forever() {
        let zero = Path::new("/dev/zero");
        if zero.exists() {
            let e = read_text(zero, 1 << 20).expect_err("endless");
            assert_eq!(e.to_string(), "larger than 1 MiB");
        }
    }

    #[test]
    fn text_must_be_utf8() {
        let dir = std::env::temp_dir().join(format!("ssegate-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("latin1.conf");
        std::fs::write(&f, b"caf\xe9\n").expect("write");
        let e = read_text(&f, 1024).expect_err("not UTF-8");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        std::fs::write(&f, "café\n").expect("write");
        assert_eq!(read_text(&f, 1024).expect("UTF-8"), "café\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
