//! The admin listener: `/healthz`, `/metrics`, `/streams`. It runs as its own Pingora service
//! on its own address, so no admin path is ever answered on a public listener.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::site::Shared;

/// The admin HTTP app.
pub struct Admin {
    shared: Arc<Shared>,
}

impl Admin {
    /// An admin app over the shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Admin { shared }
    }

    /// The answer to one admin request, by method and path.
    pub fn answer(&self, method: &http::Method, path: &str) -> (StatusCode, &'static str, Vec<u8>) {
        const TEXT: &str = "text/plain; charset=utf-8";
        if method != http::Method::GET && method != http::Method::HEAD {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                b"method not allowed\n".to_vec(),
            );
        }
        match path {
            "/healthz" => (StatusCode::OK, TEXT, b"ok\n".to_vec()),
            "/metrics" => (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.shared.metrics.encode().into_bytes(),
            ),
            "/streams" => (
                StatusCode::OK,
                "application/json",
                self.shared.streams.to_json(Instant::now()).into_bytes(),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                TEXT,
                b"not found: try /healthz, /metrics or /streams\n".to_vec(),
            ),
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let (status, content_type, body) = self.answer(&req.method, req.uri.path());
        let built = Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(body);
        built.unwrap_or_else(|_| Response::new(Vec::new()))
    }
}
