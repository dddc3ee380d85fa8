//! One request of ssegate's own to one upstream server (keep-warm, health checks), sent with
//! Pingora's client and read to the end.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora_http::RequestHeader;

use crate::relay::peer;

/// What a finished request answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Response status.
    pub status: u16,
    /// Body bytes read.
    pub bytes: usize,
    /// Time from connecting to the last body byte.
    pub elapsed: Duration,
}

/// A request to send.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Method, e.g. `POST`.
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// Host header value (the server's `host:port`).
    pub host: &'a str,
    /// Body; sent as JSON when present.
    pub body: Option<&'a str>,
}

/// Sends `req` to `addr` and reads the whole answer within `timeout`.
pub async fn exchange(
    connector: &Connector,
    addr: SocketAddr,
    req: &Request<'_>,
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<Answer, String> {
    let started = Instant::now();
    match tokio::time::timeout(timeout, send(connector, addr, req, connect_timeout)).await {
        Ok(Ok((status, bytes))) => Ok(Answer {
            status,
            bytes,
            elapsed: started.elapsed(),
        }),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no complete answer within {timeout:?}")),
    }
}

async fn send(
    connector: &Connector,
    addr: SocketAddr,
    req: &Request<'_>,
    connect_timeout: Duration,
) -> pingora::Result<(u16, usize)> {
    let peer = peer(addr, connect_timeout, None);
    let (mut session, _) = connector.get_http_session(&peer).await?;
    let mut head = RequestHeader::build(req.method, req.path.as_bytes(), Some(4))?;
    head.insert_header(http::header::HOST, req.host)?;
    head.insert_header(http::header::USER_AGENT, "ssegate")?;
    let body = req.body.map(|b| Bytes::copy_from_slice(b.as_bytes()));
    if let Some(b) = &body {
        head.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        head.insert_header(http::header::CONTENT_LENGTH, b.len().to_string())?;
    }
    session.write_request_header(Box::new(head)).await?;
    if let Some(b) = body {
        session.write_request_body(b, true).await?;
    }
    session.finish_request_body().await?;
    session.read_response_header().await?;
    let status = session
        .response_header()
        .map(|h| h.status.as_u16())
        .unwrap_or(0);
    let mut bytes = 0;
    while let Some(chunk) = session.read_response_body().await? {
        bytes += chunk.len();
    }
    // Not returned to the pool: these requests are rare and must not hold pool slots.
    Ok((status, bytes))
}
