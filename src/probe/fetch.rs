//! The HTTP exchange of a probe, on Pingora's own client: resolve, connect, send the request,
//! then read the body as it arrives and time every event.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pingora::connectors::http::Connector;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use pingora_http::RequestHeader;
use tokio::time::{timeout_at, Instant as Deadline};

use super::error::{connect_error, describe, ProbeError};
use super::request::ProbeRequest;
use super::timeline::{EventRecord, Timeline};
use super::verdict::BodyEnd;

/// After the end marker, how long the body may stay open before the probe stops reading, as
/// SDKs do when they see `[DONE]`.
pub const END_GRACE: Duration = Duration::from_secs(1);
/// Bytes of an error response's body quoted in the error.
const ERROR_BODY_BYTES: usize = 200;
/// How long an error response's body is waited for.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(2);

/// What a probe reports while it runs.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// The response header arrived.
    Head {
        /// Status code.
        status: u16,
        /// Since the request was sent.
        at: Duration,
    },
    /// An event arrived.
    Event(&'a EventRecord),
}

/// A completed exchange: the response header and the body's timeline.
pub struct Exchange {
    /// The address connected to.
    pub addr: SocketAddr,
    /// Resolving and connecting (and the TLS handshake).
    pub connect: Duration,
    /// Status code.
    pub status: u16,
    /// Response headers (lower-case names, in order).
    pub headers: Vec<(String, String)>,
    /// Since the request was sent: the response header (TTFB).
    pub head_at: Duration,
    /// The body as it arrived.
    pub timeline: Timeline,
    /// How the body ended.
    pub end: BodyEnd,
    /// Since the request was sent: the body's end.
    pub duration: Duration,
}

impl Exchange {
    /// A response header's values joined with `, `, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

/// Runs one probe; `sink` sees the response header and each event as they arrive.
pub async fn fetch(
    req: &ProbeRequest,
    connector: &Connector,
    sink: &mut dyn FnMut(Progress<'_>),
) -> Result<Exchange, ProbeError> {
    let begun = Instant::now();
    let deadline = Deadline::from_std(begun + req.timeout);
    let timed_out = |phase: String| ProbeError::Timeout {
        timeout: req.timeout,
        phase,
    };
    let target = &req.target;
    // Resolved here, async: HttpPeer::new would resolve blocking and panic on failure.
    let addrs: Vec<SocketAddr> = timeout_at(
        deadline,
        tokio::net::lookup_host((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| timed_out(format!("resolving {}", target.host)))?
    .map_err(|e| ProbeError::Dns {
        host: target.host.clone(),
        reason: e.to_string(),
    })?
    .collect();
    let mut last_error = ProbeError::Dns {
        host: target.host.clone(),
        reason: "no address".to_owned(),
    };
    let mut connected = None;
    for addr in addrs {
        let mut peer = HttpPeer::new(addr, target.tls, target.host.clone());
        peer.options.verify_cert = !req.insecure;
        peer.options.verify_hostname = !req.insecure;
        match timeout_at(deadline, connector.get_http_session(&peer)).await {
            Ok(Ok((session, _))) => {
                connected = Some((session, addr));
                break;
            }
            Ok(Err(e)) => last_error = connect_error(&e, addr, &target.host),
            Err(_) => return Err(timed_out(format!("connecting to {addr}"))),
        }
    }
    let (mut session, addr) = connected.ok_or(last_error)?;
    let connect = begun.elapsed();

    let started = Instant::now();
    timeout_at(deadline, send(&mut session, req))
        .await
        .map_err(|_| timed_out("sending the request".to_owned()))??;
    let header = async {
        loop {
            session.read_response_header().await?;
            // 1xx are interim: the answer follows.
            match session.response_header() {
                Some(h) if h.status.is_informational() => continue,
                _ => return Ok::<(), Box<Error>>(()),
            }
        }
    };
    timeout_at(deadline, header)
        .await
        .map_err(|_| timed_out("waiting for the response header".to_owned()))?
        .map_err(|e| ProbeError::Protocol {
            reason: match e.etype() {
                ErrorType::ConnectionClosed => {
                    "the server closed the connection without answering".to_owned()
                }
                _ => describe(&e),
            },
        })?;
    let head_at = started.elapsed();
    let Some(resp) = session.response_header() else {
        return Err(ProbeError::Protocol {
            reason: "no response header".to_owned(),
        });
    };
    let status = resp.status.as_u16();
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let location = resp
        .headers
        .get(http::header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    sink(Progress::Head {
        status,
        at: head_at,
    });
    if !resp.status.is_success() {
        let body = error_body(&mut session, deadline).await;
        return Err(ProbeError::Status {
            status,
            location,
            body,
        });
    }

    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut timeline = Timeline::new(started, get("content-type"), get("content-encoding"));
    let mut body_deadline = deadline;
    let end = loop {
        match timeout_at(body_deadline, session.read_response_body()).await {
            Ok(Ok(Some(chunk))) => {
                let now = Instant::now();
                timeline.on_chunk(&chunk, now, &mut |e| sink(Progress::Event(e)));
                if timeline.end_marker && body_deadline == deadline {
                    body_deadline = deadline.min(Deadline::from_std(now + END_GRACE));
                }
            }
            Ok(Ok(None)) => break BodyEnd::Finished,
            Ok(Err(e)) => break BodyEnd::Broken(describe(&e)),
            Err(_) if timeline.end_marker => break BodyEnd::StoppedAfterEndMarker,
            Err(_) => break BodyEnd::TimedOut(req.timeout),
        }
    };
    let now = Instant::now();
    timeline.finish(end == BodyEnd::Finished, now, &mut |e| {
        sink(Progress::Event(e))
    });
    Ok(Exchange {
        addr,
        connect,
        status,
        headers,
        head_at,
        timeline,
        end,
        duration: now.saturating_duration_since(started),
    })
}

async fn send(session: &mut HttpSession, req: &ProbeRequest) -> Result<(), ProbeError> {
    let protocol = |e: Box<Error>| ProbeError::Protocol {
        reason: format!("sending the request: {}", describe(&e)),
    };
    let mut head = RequestHeader::build(req.method.clone(), req.target.path.as_bytes(), None)
        .map_err(protocol)?;
    for (name, value) in &req.headers {
        head.append_header(name.clone(), value.as_str())
            .map_err(|e| ProbeError::Input(format!("header {name}: {e}")))?;
    }
    session
        .write_request_header(Box::new(head))
        .await
        .map_err(protocol)?;
    if let Some(body) = &req.body {
        session
            .write_request_body(body.clone(), true)
            .await
            .map_err(protocol)?;
    }
    session.finish_request_body().await.map_err(protocol)
}

/// The start of an error response's body, on one line.
async fn error_body(session: &mut HttpSession, deadline: Deadline) -> String {
    let deadline = deadline.min(Deadline::now() + ERROR_BODY_WAIT);
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_BYTES {
        match timeout_at(deadline, session.read_response_body()).await {
            Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let cut = body.len() > ERROR_BODY_BYTES;
    body.truncate(ERROR_BODY_BYTES);
    let text: String = String::from_utf8_lossy(&body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if cut {
        format!("{text}…")
    } else {
        text
    }
}
