//! The client side of a stream-route request on ssegate's lean path: an HTTP/1.1 connection
//! whose request head the [`front`](crate::front) has already read, answered with chunks.

use std::net::IpAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::protocols::http::date::get_cached_date;
use pingora::{Error, ErrorType, OrErr, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::body::{put_chunk, LAST_CHUNK};
use super::conn::ClientIo;
use super::head::{chunked, response_to_wire, Request, Response};
use super::scratch;
use crate::headers;
use crate::relay::Downstream;
use crate::timer::within;

/// One request on a client connection.
pub struct Client<'a> {
    io: &'a mut dyn ClientIo,
    /// Bytes the client sent past the request head (its body first).
    buf: &'a mut BytesMut,
    req: Request,
    /// Request body bytes not read yet.
    body_left: u64,
    origin: Origin,
    read_timeout: Duration,
    write_timeout: Duration,
    status: Option<u16>,
    /// The response head, held back to go out with the body's first bytes in one write (in
    /// the thread's write buffer, as a rule).
    held: Vec<u8>,
    chunked: bool,
    keepalive: bool,
    finished: bool,
}

/// Where a client connection comes from, found once per connection.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    /// The connected peer's address.
    pub peer: Option<IpAddr>,
    /// Whether the connection is TLS.
    pub tls: bool,
}

impl<'a> Client<'a> {
    /// A request whose head was `req` and whose body (`body_len` bytes) starts in `buf`.
    pub fn new(
        io: &'a mut dyn ClientIo,
        buf: &'a mut BytesMut,
        req: Request,
        body_len: u64,
        origin: Origin,
        read_timeout: Duration,
        write_timeout: Duration,
    ) -> Self {
        let close = headers::lists(&headers::connection_of(&req.lines), b"close");
        let keepalive = req.version == http::Version::HTTP_11 && !close;
        Client {
            io,
            buf,
            req,
            body_left: body_len,
            origin,
            read_timeout,
            write_timeout,
            status: None,
            held: Vec::new(),
            chunked: false,
            keepalive,
            finished: false,
        }
    }

    /// Where the next write is assembled: the held head (already in the thread's write
    /// buffer), else the thread's write buffer itself. Give it back once written.
    fn wire(&mut self) -> Vec<u8> {
        let held = std::mem::take(&mut self.held);
        if held.capacity() == 0 {
            scratch::write_buf()
        } else {
            held
        }
    }

    /// Whether the connection can carry the client's next request.
    pub fn reusable(&self) -> bool {
        self.keepalive && self.finished && self.body_left == 0
    }

    /// Keeps the connection from being reused (the next head written says `close`).
    pub fn close_after(&mut self) {
        self.keepalive = false;
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        // Nearly every write goes whole into a plain socket at once: offered to it directly,
        // it needs no write future, no flush and no timer.
        let sent = match self.io.try_write_now(bytes) {
            Some(Ok(n)) => n,
            Some(Err(e)) if e.kind() != std::io::ErrorKind::WouldBlock => {
                return Error::e_because(ErrorType::WriteError, "writing to the client", e)
            }
            _ => 0,
        };
        let bytes = &bytes[sent..];
        if bytes.is_empty() {
            return Ok(());
        }
        let io = &mut *self.io;
        let write = std::pin::pin!(async move {
            io.write_all(bytes).await?;
            io.flush().await
        });
        // Nearly every write completes at once, and then needs no timer.
        match within(self.write_timeout, write).await {
            Err(_) => Error::e_explain(ErrorType::WriteTimedout, "writing to the client"),
            Ok(r) => r.or_err(ErrorType::WriteError, "writing to the client"),
        }
    }

    async fn read_into(&mut self, max: u64) -> Result<Bytes> {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        match tokio::time::timeout(self.read_timeout, scratch::read(&mut *self.io, max)).await {
            Err(_) => Error::e_explain(ErrorType::ReadTimedout, "reading from the client"),
            Ok(Err(e)) => Error::e_because(ErrorType::ReadError, "reading from the client", e),
            Ok(Ok(b)) => Ok(b),
        }
    }
}

impl Downstream for Client<'_> {
    type Head = Request;

    fn req_header(&self) -> &Request {
        &self.req
    }

    fn peer_ip(&self) -> Option<IpAddr> {
        self.origin.peer
    }

    fn is_tls(&self) -> bool {
        self.origin.tls
    }

    fn is_upgrade_req(&self) -> bool {
        false
    }

    fn response_status(&self) -> Option<u16> {
        self.status
    }

    async fn write_header(&mut self, mut resp: Response) -> Result<()> {
        self.chunked = chunked(&resp.lines);
        if !self.chunked && !resp.lines.contains("content-length") {
            self.keepalive = false;
        }
        // Ours replace any the upstream sent; written straight to the wire, not into the lines.
        resp.lines.retain(|name| {
            !name.eq_ignore_ascii_case(b"date") && !name.eq_ignore_ascii_case(b"connection")
        });
        let connection: &[u8] = if self.keepalive {
            b"keep-alive"
        } else {
            b"close"
        };
        let date = get_cached_date();
        let mut wire = scratch::write_buf();
        wire.reserve(256);
        response_to_wire(
            &resp,
            &[("Date", date.as_bytes()), ("Connection", connection)],
            &mut wire,
        );
        self.status = Some(resp.status.as_u16());
        self.held = wire;
        Ok(())
    }

    fn holds_output(&self) -> bool {
        !self.held.is_empty()
    }

    async fn flush(&mut self) -> Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        self.send(&held).await?;
        scratch::give_back(held);
        Ok(())
    }

    fn body_buf(&mut self) -> Vec<u8> {
        self.wire()
    }

    fn put_body(&self, piece: &[u8], buf: &mut Vec<u8>) {
        if self.chunked {
            put_chunk(piece, buf);
        } else {
            buf.extend_from_slice(piece);
        }
    }

    async fn send_body(&mut self, buf: Vec<u8>) -> Result<()> {
        if !buf.is_empty() {
            self.send(&buf).await?;
        }
        scratch::give_back(buf);
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        let mut wire = self.wire();
        if self.chunked {
            wire.extend_from_slice(LAST_CHUNK);
        }
        if !wire.is_empty() {
            self.send(&wire).await?;
        }
        scratch::give_back(wire);
        self.finished = true;
        Ok(())
    }

    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.body_left == 0 {
            return Ok(None);
        }
        let piece = if self.buf.is_empty() {
            let piece = self.read_into(self.body_left).await?;
            if piece.is_empty() {
                return Error::e_explain(ErrorType::ConnectionClosed, "client closed mid-body");
            }
            piece
        } else {
            let take = (self.buf.len() as u64).min(self.body_left) as usize;
            let piece = self.buf.split_to(take).freeze();
            if self.buf.is_empty() {
                // Let the head's buffer go with the body's last piece, not stay for a stream.
                *self.buf = BytesMut::new();
            }
            piece
        };
        self.body_left -= piece.len() as u64;
        Ok(Some(piece))
    }

    async fn hang_up(&mut self) -> Result<Option<Bytes>> {
        if !self.buf.is_empty() {
            // The client already sent its next request (pipelining): it is served after this
            // one, and a hang-up shows when a write fails instead.
            return std::future::pending().await;
        }
        let mut probe = [0u8; 1];
        match self.io.read(&mut probe).await {
            Ok(0) => Ok(None),
            Ok(_) => {
                // The start of a pipelined request: kept for after this one, as above.
                self.buf.extend_from_slice(&probe);
                std::future::pending().await
            }
            Err(e) => Error::e_because(ErrorType::ReadError, "client connection", e),
        }
    }

    async fn read_tunnel(&mut self) -> Result<Option<Bytes>> {
        if !self.buf.is_empty() {
            return Ok(Some(self.buf.split().freeze()));
        }
        // No read timeout here: a tunnel has its own idle clock.
        let b = scratch::read(&mut *self.io, scratch::SIZE)
            .await
            .or_err(ErrorType::ReadError, "reading from the client")?;
        Ok((!b.is_empty()).then_some(b))
    }
}
