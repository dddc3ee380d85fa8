//! One read buffer per thread. A read lands here and is copied out at its exact size, so no
//! connection keeps a read buffer of its own while it waits: not an idle keepalive client, not
//! a stream waiting on a silent model.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

/// Size of the buffer, and so the most one read takes.
pub const SIZE: usize = 16 * 1024;

thread_local! {
    static BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SIZE].into_boxed_slice());
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
