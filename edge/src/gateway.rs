//! The HTTP surface: `POST /v1/chat/completions`, `GET /v1/models`, `GET /healthz`.
//!
//! `Gateway::handle` takes a platform-neutral request and returns a platform-neutral response;
//! the shells only convert. It reads the body within the configured limit, picks the config
//! (bundled or KV), routes, proxies, renders errors once as OpenAI JSON, and logs one line.

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::Method;
use serde_json::{json, Value};

use crate::api::ParsedChat;
use crate::config::store::{ConfigStore, Source};
use crate::config::{Config, BUNDLED_YAML};
use crate::error::{Blame, GatewayError};
use crate::platform::{FetchError, Platform};
use crate::proxy::{self, Output, SseStream};
use crate::router::{self, Decision};

pub type InboundBody = Pin<Box<dyn Stream<Item = Result<Bytes, FetchError>>>>;

pub struct Request {
    pub method: Method,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: InboundBody,
}

pub enum Body {
    Full(Bytes),
    Stream(SseStream),
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    fn json(status: u16, v: &Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Body::Full(Bytes::from(v.to_string())),
        }
    }

    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_owned(), v.into()));
        self
    }
}

/// One per isolate / instance: holds the config cache.
pub struct Gateway {
    store: ConfigStore,
}

impl Default for Gateway {
    fn default() -> Self {
        Self::new(BUNDLED_YAML)
    }
}

/// What the request log line records.
#[derive(Default)]
struct Trace {
    decision: Option<Decision>,
    model: Option<String>,
    attempts: u32,
}

impl Gateway {
    pub fn new(bundled_yaml: &str) -> Self {
        Self { store: ConfigStore::new(bundled_yaml) }
    }

    pub async fn handle<P: Platform>(&self, p: &P, req: Request) -> Response {
        let started = p.now_ms();
        let request_id = request_id(p, &req.headers);
        let (method, path) = (req.method.clone(), req.path.clone());
        let mut trace = Trace::default();
        let result = self.dispatch(p, req, &request_id, &mut trace).await;
        let (resp, error) = match result {
            Ok(r) => (r, None),
            Err(e) => {
                let e = match e {
                    GatewayError::Internal { detail, .. } => GatewayError::Internal { request_id: request_id.clone(), detail },
                    other => other,
                };
                (Response::json(e.status(), &e.to_json()), Some(e))
            }
        };
        let mut resp = resp.header("x-request-id", request_id.clone());
        if let Some(d) = &trace.decision {
            resp = resp
                .header("x-gateway-route", d.route.clone())
                .header("x-gateway-tier", d.tier.as_str())
                .header("x-gateway-attempts", trace.attempts.to_string());
            if let Some(c) = &d.capability {
                resp = resp.header("x-gateway-capability", c.clone());
            }
            if let Some(c) = d.confidence {
                resp = resp.header("x-gateway-confidence", format!("{c:.3}"));
            }
        }
        if let Some(m) = &trace.model {
            resp = resp.header("x-gateway-model", m.clone());
        }
        let mut line = json!({
            "event": "request", "request_id": request_id, "method": method.as_str(), "path": path,
            "status": resp.status, "latency_ms": p.now_ms().saturating_sub(started),
            "route": trace.decision.as_ref().map(|d| d.route.clone()),
            "tier": trace.decision.as_ref().map(|d| d.tier.as_str()),
            "capability": trace.decision.as_ref().and_then(|d| d.capability.clone()),
            "model": trace.model, "attempts": trace.attempts,
        });
        if let Some(e) = &error {
            line["level"] = json!(match e.blame() { Blame::Client => "info", Blame::Upstream => "warn", Blame::Internal => "error" });
            line["error"] = json!(match e { GatewayError::Internal { detail, .. } => detail.clone(), other => other.to_string() });
        }
        p.log(&line);
        resp
    }

    async fn dispatch<P: Platform>(&self, p: &P, req: Request, request_id: &str, trace: &mut Trace) -> Result<Response, GatewayError> {
        let path = req.path.split('?').next().unwrap_or("").trim_end_matches('/').to_owned();
        let allowed = match path.as_str() {
            "/v1/chat/completions" | "/chat/completions" => "POST",
            "/v1/models" | "/models" | "/healthz" => "GET",
            _ => return Err(GatewayError::NotFound { method: req.method.to_string(), path }),
        };
        if req.method.as_str() != allowed && !(allowed == "GET" && req.method == Method::HEAD) {
            return Err(GatewayError::MethodNotAllowed { method: req.method.to_string(), path, allowed });
        }
        let (config, source) = self.store.current(p).await.map_err(|detail| GatewayError::Internal {
            request_id: request_id.to_owned(),
            detail,
        })?;
        match path.as_str() {
            "/healthz" => Ok(Response::json(200, &json!({
                "status": "ok", "config_source": source.as_str(), "config_digest": config.digest,
                "models": config.models.len(), "routes": config.routes.len(),
            }))),
            "/v1/models" | "/models" => Ok(Response::json(200, &models(&config, source))),
            _ => self.chat(p, &config, req, trace).await,
        }
    }

    async fn chat<P: Platform>(&self, p: &P, config: &Config, req: Request, trace: &mut Trace) -> Result<Response, GatewayError> {
        let body = read_limited(req.body, &req.headers, config.server.max_body_bytes).await?;
        let chat = ParsedChat::from_slice(&body)?;
        let decision = router::decide(config, &chat)?;
        trace.decision = Some(decision.clone());
        let outcome = proxy::serve(p, config, &decision, &chat).await;
        trace.attempts = outcome.attempts;
        let served = outcome.result?;
        trace.model = Some(served.model);
        Ok(match served.output {
            Output::Json(v) => Response::json(200, &v),
            Output::Stream(s) => Response {
                status: 200,
                headers: vec![
                    ("content-type".into(), "text/event-stream; charset=utf-8".into()),
                    ("cache-control".into(), "no-cache".into()),
                ],
                body: Body::Stream(s),
            },
        })
    }
}

fn models(config: &Config, source: Source) -> Value {
    let mut data: Vec<Value> = config
        .models
        .values()
        .map(|m| json!({"id": m.name, "object": "model", "created": 0, "owned_by": m.provider.name(),
            "capabilities": m.capabilities, "context_window": m.context_window,
            "locality": match m.locality { crate::config::Locality::Local => "local", crate::config::Locality::Cloud => "cloud" }}))
        .collect();
    for r in config.routes.values() {
        data.push(json!({"id": r.name, "object": "model", "created": 0, "owned_by": "llm-gateway:route", "models": r.models}));
    }
    for a in &config.router.aliases {
        data.push(json!({"id": a, "object": "model", "created": 0, "owned_by": "llm-gateway:router"}));
    }
    json!({"object": "list", "data": data, "config_source": source.as_str()})
}

/// Past the limit the rest of the body is read and discarded up to this many bytes, so that the
/// client, still sending, receives the 413 instead of a connection reset.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;

/// Reads the body, refusing it once it passes `limit` (by header or by count).
async fn read_limited(mut body: InboundBody, headers: &http::HeaderMap, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        drain(body).await;
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| GatewayError::bad_request(format!("could not read the request body: {e}"), None))?;
        if buf.len() + chunk.len() > limit {
            drain(body).await;
            return Err(GatewayError::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

async fn drain(mut body: InboundBody) {
    let mut seen = 0;
    while let Some(Ok(chunk)) = body.next().await {
        seen += chunk.len();
        if seen > DRAIN_BYTES {
            break;
        }
    }
}

fn request_id<P: Platform>(p: &P, headers: &http::HeaderMap) -> String {
    let given = headers.get("x-request-id").and_then(|v| v.to_str().ok()).filter(|v| {
        !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    });
    match given {
        Some(v) => v.to_owned(),
        None => format!("req_{:016x}", p.random_u64()),
    }
}
