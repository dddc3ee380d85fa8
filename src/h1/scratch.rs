//! One read buffer per thread. A read lands here and is copied out at its exact size, so no
//! connection keeps a read buffer of its own while it waits: not an idle keepalive client, not
//! a stream waiting on a silent model.
//!
//! And one write buffer per thread, lent out whole ([`write_buf`], [`give_back`]): a write
//! assembled in it that goes out at once, as nearly all do, allocates nothing.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

/// Size of the buffer, and so the most one read takes.
pub const SIZE: usize = 16 * 1024;

/// Largest write buffer kept for the thread's next write (a larger one is freed).
const KEEP_WRITE: usize = 64 * 1024;

thread_local! {
    static BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SIZE].into_boxed_slice());
    static WRITE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// This thread's write buffer, empty. Owned, so it may be held across an `await`; while it
/// is out, the next caller gets a new one.
pub fn write_buf() -> Vec<u8> {
    WRITE.take()
}

/// Returns a write buffer for the thread's next write, unless it grew past `KEEP_WRITE`.
pub fn give_back(mut buf: Vec<u8>) {
    if buf.capacity() <= KEEP_WRITE {
        buf.clear();
        WRITE.set(buf);
    }
}

/// Runs `f` with this thread's buffer. Never call it across an `await`, nor from inside `f`.
pub fn with<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    BUF.with_borrow_mut(|buf| f(buf))
}

/// Reads what `io` has (at most `max` bytes, waiting for the first) and appends it to `out`:
/// the number of bytes, 0 at the end of the stream.
pub async fn read_append<R: AsyncRead + Unpin + ?Sized>(
    io: &mut R,
    max: usize,
    out: &mut BytesMut,
) -> io::Result<usize> {
    poll_fn(|cx| {
        // The borrow lasts one poll: a pending read holds nothing.
        with(|buf| {
            let mut read = ReadBuf::new(&mut buf[..max.clamp(1, SIZE)]);
            match Pin::new(&mut *io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    out.extend_from_slice(read.filled());
                    Poll::Ready(Ok(read.filled().len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    })
    .await
}

/// Reads what a non-blocking `src` holds right now and appends it to `out`, without waiting:
/// `None` when nothing is there yet, `Some(0)` at the end of the stream.
pub fn read_now(mut src: impl io::Read, out: &mut BytesMut) -> io::Result<Option<usize>> {
    with(|buf| match src.read(buf) {
        Ok(n) => {
            out.extend_from_slice(&buf[..n]);
            Ok(Some(n))
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    })
}

/// Reads what `io` has (at most `max` bytes, waiting for the first) as bytes of their exact
/// size: empty at the end of the stream.
pub async fn read<R: AsyncRead + Unpin + ?Sized>(io: &mut R, max: usize) -> io::Result<Bytes> {
    let mut out = BytesMut::new();
    read_append(io, max, &mut out).await?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn a_read_now_takes_what_is_there_and_never_waits() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut theirs = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut out = BytesMut::from(&b"x"[..]);

        assert_eq!(read_now(&ours, &mut out).unwrap(), None);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // Polls without waiting, as the caller would, until something is there.
        let next = |out: &mut BytesMut| loop {
            if let Some(n) = read_now(&ours, out).unwrap() {
                return n;
            }
            assert!(std::time::Instant::now() < deadline, "nothing arrived");
            std::thread::yield_now();
        };
        theirs.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        assert_eq!(next(&mut out), 16);
        assert_eq!(&out[..], b"xGET / HTTP/1.1\r\n");

        drop(theirs);
        let end = next(&mut out);
        assert_eq!(end, 0);
    }

    #[tokio::test]
    async fn reads_come_out_at_their_exact_size() {
        let (mut ours, mut theirs) = tokio::io::duplex(1 << 16);
        theirs.write_all(b"hello").await.unwrap();
        let got = read(&mut ours, SIZE).await.unwrap();
        assert_eq!(&got[..], b"hello");
        assert_eq!(got.len(), 5);

        theirs.write_all(b"abcdef").await.unwrap();
        let mut out = BytesMut::from(&b"x"[..]);
        assert_eq!(read_append(&mut ours, 4, &mut out).await.unwrap(), 4);
        assert_eq!(&out[..], b"xabcd");
        assert_eq!(read_append(&mut ours, SIZE, &mut out).await.unwrap(), 2);
        assert_eq!(&out[..], b"xabcdef");

        drop(theirs);
        assert!(read(&mut ours, SIZE).await.unwrap().is_empty());
    }

    #[test]
    fn the_write_buffer_is_lent_whole_and_kept_unless_large() {
        let mut buf = write_buf();
        buf.extend_from_slice(&[7; 1000]);
        let kept = buf.as_ptr();
        // While it is out, another write gets a buffer of its own.
        assert_eq!(write_buf().capacity(), 0);
        give_back(buf);
        let again = write_buf();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), kept, "the same allocation, emptied");

        let mut big = again;
        big.reserve(KEEP_WRITE + 1);
        give_back(big);
        assert_eq!(write_buf().capacity(), 0, "a large one is freed");
    }

    #[tokio::test]
    async fn a_pending_read_holds_no_borrow() {
        let (mut ours, mut theirs) = tokio::io::duplex(64);
        let waiting = tokio::spawn(async move { read(&mut ours, SIZE).await });
        tokio::task::yield_now().await;
        // The reader is parked; the buffer is free for anyone else on this thread.
        with(|buf| buf[0] = 1);
        theirs.write_all(b"late").await.unwrap();
        assert_eq!(&waiting.await.unwrap().unwrap()[..], b"late");
    }
}
