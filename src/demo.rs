//! `ssegate demo`: ssegate in front of a built-in OpenAI-compatible model that streams paced
//! tokens, so a newcomer can watch a stream pass through with nothing else installed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::services::listening::Service;
use pingora_http::ResponseHeader;
use serde_json::{json, Value};

use crate::config;
use crate::server::Gate;

/// What the demo model answers, word by word.
const REPLY: &str = "Hello from ssegate! Every word of this answer left the demo model as its own \
Server-Sent Event and reached you the moment it was sent: no buffering, no compression, no \
waiting for the whole answer. Open the admin listener's /metrics to see time to first token, \
events, output characters and tokens for this stream, or /streams while it runs.";

/// Largest request body the demo model reads.
const MAX_BODY: usize = 1 << 20;

/// Settings of the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Public listener of ssegate.
    pub listen: SocketAddr,
    /// Admin listener of ssegate.
    pub admin: SocketAddr,
    /// Pause between two tokens.
    pub token_interval: Duration,
    /// How long the first request waits for the model to "load".
    pub load_delay: Duration,
}

/// The built-in model: `POST /v1/chat/completions` (streaming or not), `GET /v1/models`.
pub struct DemoModel {
    token_interval: Duration,
    load_delay: Duration,
    loaded: tokio::sync::Mutex<bool>,
}

impl DemoModel {
    /// A model that answers every `token_interval`, after `load_delay` on its first request.
    pub fn new(token_interval: Duration, load_delay: Duration) -> Self {
        DemoModel {
            token_interval,
            load_delay,
            loaded: tokio::sync::Mutex::new(load_delay.is_zero()),
        }
    }

    /// The first request waits for the model to load; the others wait for it too.
    async fn ensure_loaded(&self) {
        let mut loaded = self.loaded.lock().await;
        if !*loaded {
            log::info!("demo model: loading ({:?})", self.load_delay);
            tokio::time::sleep(self.load_delay).await;
            *loaded = true;
        }
    }

    async fn serve(&self, s: &mut ServerSession) -> pingora::Result<()> {
        let (method, path) = (
            s.req_header().method.clone(),
            s.req_header().uri.path().to_string(),
        );
        match (method.as_str(), path.as_str()) {
            ("POST", "/v1/chat/completions") => {
                let body = read_body(s).await?;
                let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let model = req["model"].as_str().unwrap_or("demo").to_string();
                let max_words = req["max_tokens"]
                    .as_u64()
                    .map(|n| n as usize)
                    .unwrap_or(usize::MAX);
                if req["stream"].as_bool().unwrap_or(false) {
                    self.stream_reply(s, &model, max_words).await
                } else {
                    self.ensure_loaded().await;
                    let text: Vec<&str> = REPLY.split_inclusive(' ').take(max_words).collect();
                    let answer = completion(&model, &text.concat(), text.len());
                    write_all(s, 200, "application/json", answer.to_string().into_bytes()).await
                }
            }
            ("GET", "/v1/models") => {
                let list = json!({"object": "list", "data": [{"id": "demo", "object": "model", "owned_by": "ssegate"}]});
                write_all(s, 200, "application/json", list.to_string().into_bytes()).await
            }
            ("GET", "/") => {
                let page =
                    "ssegate demo model: POST /v1/chat/completions with {\"stream\": true}\n";
                write_all(
                    s,
                    200,
                    "text/plain; charset=utf-8",
                    page.as_bytes().to_vec(),
                )
                .await
            }
            _ => write_all(s, 404, "text/plain; charset=utf-8", b"not found\n".to_vec()).await,
        }
    }

    /// Streams the reply as OpenAI chat completion chunks, then usage and `[DONE]`.
    async fn stream_reply(
        &self,
        s: &mut ServerSession,
        model: &str,
        max_words: usize,
    ) -> pingora::Result<()> {
        let mut resp = ResponseHeader::build(200, Some(3))?;
        resp.insert_header("content-type", "text/event-stream")?;
        resp.insert_header("cache-control", "no-cache")?;
        resp.insert_header("transfer-encoding", "chunked")?;
        // Like a Django StreamingHttpResponse: the headers go out at once, the model is slow
        // to its first token (while it loads, ssegate's heartbeats keep the line alive).
        s.write_response_header(Box::new(resp)).await?;
        self.ensure_loaded().await;
        let id = format!("chatcmpl-demo{}", unix_time());
        let chunk = |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": unix_time(), "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let event = |v: Value| Bytes::from(format!("data: {v}\n\n"));
        s.write_response_body(
            event(chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )),
            false,
        )
        .await?;
        let words: Vec<&str> = REPLY.split_inclusive(' ').take(max_words).collect();
        for w in &words {
            tokio::time::sleep(self.token_interval).await;
            s.write_response_body(event(chunk(json!({"content": w}), Value::Null)), false)
                .await?;
        }
        s.write_response_body(event(chunk(json!({}), json!("stop"))), false)
            .await?;
        let usage = json!({"id": id, "object": "chat.completion.chunk", "created": unix_time(), "model": model,
            "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": words.len(), "total_tokens": 12 + words.len()}});
        s.write_response_body(event(usage), false).await?;
        s.write_response_body(Bytes::from_static(b"data: [DONE]\n\n"), true)
            .await
    }
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn completion(model: &str, text: &str, tokens: usize) -> Value {
    json!({"id": format!("chatcmpl-demo{}", unix_time()), "object": "chat.completion", "created": unix_time(),
           "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}})
}

async fn read_body(s: &mut ServerSession) -> pingora::Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = s.read_request_body().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return pingora::Error::e_explain(
                pingora::ErrorType::HTTPStatus(413),
                "request body too large",
            );
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn write_all(
    s: &mut ServerSession,
    status: u16,
    content_type: &str,
    body: Vec<u8>,
) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(2))?;
    resp.insert_header("content-type", content_type)?;
    resp.insert_header("content-length", body.len().to_string())?;
    s.write_response_header(Box::new(resp)).await?;
    s.write_response_body(Bytes::from(body), true).await
}

#[async_trait]
impl HttpServerApp for DemoModel {
    async fn process_new_http(
        self: &Arc<Self>,
        mut s: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match s.read_request().await {
            Ok(true) => {}
            _ => return None,
        }
        if let Err(e) = self.serve(&mut s).await {
            log::debug!("demo model: {e}");
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&s);
        s.finish()
            .await
            .ok()
            .flatten()
            .map(|r| ReusedHttpStream::from_reusable_stream(r, settings))
    }
}

/// The demo's config: one stream route for chat completions, everything else plain.
pub fn config_text(opts: &DemoOptions, model: SocketAddr) -> String {
    [
        format!("listen:\n  - addr: {}", opts.listen),
        format!("admin:\n  addr: {}", opts.admin),
        "threads: 2".into(),
        "shutdown_grace: 5s".into(),
        "upstreams:".into(),
        "  llm:".into(),
        format!("    servers: [\"{model}\"]"),
        "    connect_timeout: 2s".into(),
        "routes:".into(),
        "  - path: /v1/chat/completions".into(),
        "    name: chat".into(),
        "    upstream: llm".into(),
        "    stream:".into(),
        "      idle_timeout: 600s".into(),
        "      heartbeat: 1s".into(),
        "  - path: /".into(),
        "    name: other".into(),
        "    upstream: llm".into(),
        String::new(),
    ]
    .join("\n")
}

/// A free loopback port for the built-in model.
fn free_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Starts the demo and never returns.
pub fn run(opts: DemoOptions) -> Result<(), String> {
    let model_addr = free_port().map_err(|e| format!("no free port for the demo model: {e}"))?;
    let text = config_text(&opts, model_addr);
    let cfg = config::parse(&text, Path::new("<demo>")).map_err(|e| e.to_string())?;
    let mut gate = Gate::new(cfg, None)?;
    let mut model = Service::new(
        "demo-model".to_string(),
        DemoModel::new(opts.token_interval, opts.load_delay),
    );
    model.add_tcp(&model_addr.to_string());
    model.threads = Some(1);
    gate.add_service(model);
    println!(
        "ssegate demo: listening on http://{listen}, admin on http://{admin}, model on {model_addr}\n\n\
Stream a chat completion through ssegate:\n\n  curl -N http://{listen}/v1/chat/completions \\\n    \
-H 'content-type: application/json' \\\n    \
-d '{{\"model\":\"demo\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'\n\n\
Then look at what ssegate measured:\n\n  curl -s http://{admin}/metrics | grep ssegate_stream\n  curl -s http://{admin}/streams\n\n\
Ctrl-C stops the demo.",
        listen = opts.listen,
        admin = opts.admin,
    );
    gate.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid() {
        let opts = DemoOptions {
            listen: "127.0.0.1:8080".parse().unwrap(),
            admin: "127.0.0.1:9901".parse().unwrap(),
            token_interval: Duration::from_millis(10),
            load_delay: Duration::ZERO,
        };
        let text = config_text(&opts, "127.0.0.1:5555".parse().unwrap());
        let cfg = config::parse(&text, Path::new("<demo>")).unwrap();
        assert_eq!(cfg.routes.len(), 2);
        assert!(cfg.routes.get(0).unwrap().stream.is_some());
    }
}
