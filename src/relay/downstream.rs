//! The client side of a relayed request, as the relay needs it: Pingora's session (HTTP/2,
//! and requests the lean path leaves to Pingora) or ssegate's lean HTTP/1 connection.

use std::future::Future;
use std::net::IpAddr;

use bytes::Bytes;
use http::HeaderValue;
use pingora::{ErrorType, OrErr, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

use crate::h1::head::Response;
use crate::h1::scratch;
use crate::headers::view::RequestHead;

/// A client connection carrying one request.
pub(crate) trait Downstream: Send {
    /// How this side holds a request head.
    type Head: RequestHead + Sync;
    /// The request head as the client sent it.
    fn req_header(&self) -> &Self::Head;
    /// The connected peer's address (before any X-Forwarded-For).
    fn peer_ip(&self) -> Option<IpAddr>;
    /// Whether the connection is TLS.
    fn is_tls(&self) -> bool;
    /// Whether the request asks for a protocol upgrade (WebSocket).
    fn is_upgrade_req(&self) -> bool;
    /// The status of the response head already written, if any.
    fn response_status(&self) -> Option<u16>;
    /// Writes the response head (it may wait for the body's first bytes or [`flush`]).
    ///
    /// [`flush`]: Downstream::flush
    fn write_header(&mut self, resp: Response) -> impl Future<Output = Result<()>> + Send;
    /// Whether written bytes are held back (a head waiting for the body's first bytes).
    fn holds_output(&self) -> bool;
    /// Sends whatever is written but held back, before a wait.
    fn flush(&mut self) -> impl Future<Output = Result<()>> + Send;
    /// Where the next body write is assembled (with [`put_body`]); hand it to [`send_body`].
    ///
    /// [`put_body`]: Downstream::put_body
    /// [`send_body`]: Downstream::send_body
    fn body_buf(&mut self) -> Vec<u8>;
    /// Appends a piece of the body to `buf` as this client's framing needs it.
    fn put_body(&self, piece: &[u8], buf: &mut Vec<u8>);
    /// Writes what was assembled in `buf` (if anything), in one write.
    fn send_body(&mut self, buf: Vec<u8>) -> impl Future<Output = Result<()>> + Send;
    /// Writes body pieces in one write.
    fn write_body(&mut self, pieces: &[&[u8]]) -> impl Future<Output = Result<()>> + Send {
        let mut buf = self.body_buf();
        for piece in pieces {
            self.put_body(piece, &mut buf);
        }
        self.send_body(buf)
    }
    /// Ends the response body.
    fn finish(&mut self) -> impl Future<Output = Result<()>> + Send;
    /// The next piece of the request body, `None` at its end.
    fn read_body(&mut self) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// Resolves when the client hangs up or sends anything once its request is in (either
    /// way it is gone for this stream).
    fn hang_up(&mut self) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// After a 101: the next bytes from the client, as they are.
    fn read_tunnel(&mut self) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Whether the client speaks HTTP/1.1 (chunked responses, keepalive).
    fn http11(&self) -> bool {
        self.req_header().version() == http::Version::HTTP_11
    }
}

/// Pingora's type for a response head of ours, names in their case.
fn pingora_head(resp: &Response) -> Result<Box<ResponseHeader>> {
    let mut out = ResponseHeader::build(resp.status, Some(resp.lines.len()))?;
    out.set_version(resp.version);
    out.set_reason_phrase(std::str::from_utf8(resp.reason()).ok())?;
    for (name, value) in resp.lines.iter() {
        let value = HeaderValue::from_bytes(value)
            .or_err(ErrorType::InvalidHTTPHeader, "response header value")?;
        out.append_header(Bytes::copy_from_slice(name), value)?;
    }
    Ok(Box::new(out))
}

impl Downstream for Session {
    type Head = RequestHeader;

    fn req_header(&self) -> &RequestHeader {
        self.downstream_session.req_header()
    }

    fn peer_ip(&self) -> Option<IpAddr> {
        self.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
    }

    fn is_tls(&self) -> bool {
        self.digest().is_some_and(|d| d.ssl_digest.is_some())
    }

    fn is_upgrade_req(&self) -> bool {
        self.downstream_session.is_upgrade_req()
    }

    fn response_status(&self) -> Option<u16> {
        self.response_written().map(|r| r.status.as_u16())
    }

    async fn write_header(&mut self, resp: Response) -> Result<()> {
        let resp = pingora_head(&resp)?;
        self.write_response_header(resp, false).await
    }

    fn holds_output(&self) -> bool {
        false
    }

    async fn flush(&mut self) -> Result<()> {
        // Pingora's session holds a head back until the body's first write, as it always has.
        Ok(())
    }

    fn body_buf(&mut self) -> Vec<u8> {
        scratch::write_buf()
    }

    fn put_body(&self, piece: &[u8], buf: &mut Vec<u8>) {
        // Pingora's session frames the body itself.
        buf.extend_from_slice(piece);
    }

    async fn send_body(&mut self, buf: Vec<u8>) -> Result<()> {
        if buf.is_empty() {
            scratch::give_back(buf);
            return Ok(());
        }
        // Copied out, so the thread's buffer is back before the write waits.
        let body = Bytes::copy_from_slice(&buf);
        scratch::give_back(buf);
        self.write_response_body(Some(body), false).await
    }

    async fn finish(&mut self) -> Result<()> {
        self.write_response_body(None, true).await
    }

    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        self.read_request_body().await
    }

    async fn hang_up(&mut self) -> Result<Option<Bytes>> {
        self.downstream_session.read_body_or_idle(true).await
    }

    async fn read_tunnel(&mut self) -> Result<Option<Bytes>> {
        self.downstream_session.read_request_body().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_of_ours_reaches_pingora_as_it_would_go_out() {
        let wire = Bytes::from_static(
            b"HTTP/1.1 200 Fine\r\nContent-Type: text/event-stream\r\nx-lower: 1\r\nX-Two: a\r\nx-two: b\r\n\r\n",
        );
        let (resp, _) = crate::h1::head::parse_response(&wire)
            .expect("parses")
            .expect("complete");
        let theirs = pingora_head(&resp).expect("converts");
        assert_eq!(theirs.status.as_u16(), 200);
        assert_eq!(theirs.get_reason_phrase(), Some("Fine"));
        let two: Vec<&[u8]> = theirs
            .headers
            .get_all("x-two")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(two, [&b"a"[..], b"b"]);
        let mut out = bytes::BytesMut::new();
        theirs.header_to_h1_wire(&mut out);
        assert_eq!(
            &out[..],
            b"Content-Type: text/event-stream\r\nx-lower: 1\r\nX-Two: a\r\nx-two: b\r\n"
        );
        let own = Response::new(503, 1).expect("status");
        assert_eq!(
            pingora_head(&own).expect("converts").get_reason_phrase(),
            Some("Service Unavailable")
        );
    }
}
