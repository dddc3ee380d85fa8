//! A client connection as the front serves it: a plain TCP socket of ours, registered with the
//! runtime of the thread that serves it, or a stream Pingora made (TLS, or one handed back by
//! its pipeline).
//!
//! A plain socket is read and written directly, without Pingora's stream wrapper around it
//! (its buffers, digests and timing hooks: about 800 bytes per open stream, and a clock read
//! per write). It becomes a Pingora stream, digest and all, only if a request on it goes to
//! Pingora's pipeline.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use bytes::BytesMut;
use pingora::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::scratch;

/// What the lean path reads and writes: either kind of connection.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send {
    /// Writes what the connection takes now, without waiting, where it can (`None`: it
    /// cannot, and the write goes through `AsyncWrite`).
    fn try_write_now(&self, bytes: &[u8]) -> Option<io::Result<usize>>;
}

impl ClientIo for TcpStream {
    fn try_write_now(&self, bytes: &[u8]) -> Option<io::Result<usize>> {
        Some(self.try_write(bytes))
    }
}

impl ClientIo for Stream {
    fn try_write_now(&self, _: &[u8]) -> Option<io::Result<usize>> {
        // TLS, or a stream with Pingora's buffers: written and flushed as a future.
        None
    }
}

/// One client connection.
pub enum Conn {
    /// A plain TCP connection, ours.
    Tcp(TcpStream),
    /// A stream as Pingora has it.
    Pingora(Stream),
}

impl Conn {
    /// Takes over a connection Pingora accepted. A plain TCP one is duplicated and registered
    /// with this thread's runtime (see below); anything else stays as it is.
    ///
    /// Pingora registers every accepted socket with the runtime that runs its accept loop,
    /// then serves the connection on any worker thread. Each read readiness of a connection
    /// served elsewhere then costs a cross-thread wake (an eventfd write and a futex):
    /// measured at about one per plain request. The duplicate, registered here, takes the
    /// original's place; the original is deregistered and closed.
    ///
    /// Returns what the client has sent already, and the peer's address. `None`: the client
    /// has closed.
    pub fn adopt(stream: Stream) -> Option<(Conn, BytesMut, Option<SocketAddr>)> {
        let mut early = BytesMut::new();
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr()?.as_inet().copied());
        let Some(raw) = stream
            .as_any()
            .downcast_ref::<L4Stream>()
            .map(|s| s.as_raw_fd())
        else {
            return Some((Conn::Pingora(stream), early, peer));
        };
        let fd = {
            // SAFETY: the descriptor belongs to `stream`, which outlives this borrow; the
            // borrow is only used to duplicate it.
            let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
            borrowed.try_clone_to_owned()
        };
        let Ok(sock) = fd.map(std::net::TcpStream::from) else {
            return Some((Conn::Pingora(stream), early, peer));
        };
        // A fresh registration knows no readiness until the reactor's next turn, so a first
        // read through it would wait that turn for a request that is usually here already.
        match scratch::read_now(&sock, &mut early) {
            Ok(Some(0)) | Err(_) => return None,
            Ok(_) => {}
        }
        let Ok(sock) = TcpStream::from_std(sock) else {
            return Some((Conn::Pingora(stream), early, peer));
        };
        drop(stream);
        Some((Conn::Tcp(sock), early, peer))
    }

    /// The connection to read and write.
    pub fn io(&mut self) -> &mut dyn ClientIo {
        match self {
            Conn::Tcp(s) => s,
            Conn::Pingora(s) => s,
        }
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        match self {
            Conn::Tcp(_) => false,
            Conn::Pingora(s) => s.get_ssl_digest().is_some(),
        }
    }

    /// The connection as Pingora's pipeline takes it: a plain one gets Pingora's stream
    /// wrapper and a socket digest naming `peer` (the client's address in its logs and in the
    /// request's context).
    pub fn into_pingora(self, peer: Option<SocketAddr>) -> Stream {
        match self {
            Conn::Pingora(s) => s,
            Conn::Tcp(sock) => {
                let mut l4 = L4Stream::from(sock);
                let digest = SocketDigest::from_raw_fd(l4.as_raw_fd());
                if let Some(p) = peer {
                    let _ = digest.peer_addr.set(Some(PeerAddr::Inet(p)));
                }
                l4.set_socket_digest(digest);
                Box::new(l4)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_plain_connection_is_ours_until_pingora_needs_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (accepted, peer) = listener.accept().await.expect("accept");
        client
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        accepted.readable().await.expect("readable");
        // What Pingora hands over: its own stream, with a digest naming the peer.
        let mut l4 = L4Stream::from(accepted);
        let digest = SocketDigest::from_raw_fd(l4.as_raw_fd());
        let _ = digest.peer_addr.set(Some(PeerAddr::Inet(peer)));
        l4.set_socket_digest(digest);
        let stream: Stream = Box::new(l4);
        let (mut conn, early, seen) = Conn::adopt(stream).expect("open");
        assert!(
            matches!(conn, Conn::Tcp(_)),
            "a plain connection becomes ours"
        );
        assert_eq!(&early[..], b"GET / HTTP/1.1\r\n");
        assert_eq!(seen, Some(peer));
        assert!(!conn.is_tls());
        // Both ways, directly.
        conn.io().write_all(b"hello").await.expect("write");
        let mut got = [0u8; 5];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"hello");
        // For Pingora: its stream, with the peer in the digest.
        let pingora = conn.into_pingora(seen);
        let digest = pingora.get_socket_digest().expect("digest");
        assert_eq!(digest.peer_addr().and_then(|a| a.as_inet()), Some(&peer));
    }
}
