//! The HTTP surface: `POST /v1/chat/completions`, `POST /v1/messages` (Anthropic's Messages API,
//! served by the same chat flow and answered in its shapes: `gateway/messages.rs`),
//! `POST /v1/embeddings` (`gateway/embeddings.rs`), `POST /v1/route` (the routing decision,
//! explained, no provider called), `GET /v1/models`, `GET /healthz`.
//!
//! `Gateway::handle` takes a platform-neutral request and returns a platform-neutral response;
//! the shells only convert. It picks the config (bundled or KV), runs the endpoint (the chat
//! flow is `gateway/chat.rs`), renders errors once as OpenAI JSON, and writes the audit record
//! (for a stream, when it ends). Every endpoint but `/healthz` needs a client key.

use std::pin::Pin;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::Method;
use serde_json::{json, Value};

use crate::audit::Record;
use crate::auth::ClientKey;
use crate::config::store::ConfigStore;
use crate::config::{Config, BUNDLED_YAML};
use crate::error::{Blame, GatewayError};
use crate::platform::{FetchError, Platform};
use crate::proxy::SseStream;

mod chat;
mod counters;
mod embeddings;
mod keys;
mod messages;
mod routing;
mod stream_audit;
pub mod escalate;
mod semantic;
#[cfg(test)]
mod tests;

pub type InboundBody = Pin<Box<dyn Stream<Item = Result<Bytes, FetchError>>>>;

pub struct Request {
    pub method: Method,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: InboundBody,
}

impl Request {
    /// The core's request from a platform's parts, by the same rules on every platform: the
    /// method as sent (one that is not an HTTP token is refused with a 400, never mapped to
    /// another), the path with its query (the router ignores the query), and every header whose
    /// name and value are valid HTTP (a value is bytes; one with control characters is dropped,
    /// so a key sent that way is simply not presented).
    pub fn from_parts<N: AsRef<[u8]>, V: AsRef<[u8]>>(
        method: &str,
        path: String,
        headers: impl IntoIterator<Item = (N, V)>,
        body: InboundBody,
    ) -> Result<Self, GatewayError> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| GatewayError::bad_request("the request method is not a valid HTTP method", None))?;
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_ref()), http::HeaderValue::from_bytes(v.as_ref())) {
                map.append(k, v);
            }
        }
        Ok(Self { method, path, headers: map, body })
    }
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
    pub(crate) fn json(status: u16, v: &Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Body::Full(Bytes::from(v.to_string())),
        }
    }
}

/// One per isolate / instance: holds the config cache, in-memory counters and the key cache.
pub struct Gateway {
    store: ConfigStore,
    shared: Rc<chat::Shared>,
}

impl Default for Gateway {
    fn default() -> Self {
        Self::new(BUNDLED_YAML)
    }
}

impl Gateway {
    pub fn new(bundled_yaml: &str) -> Self {
        Self { store: ConfigStore::new(bundled_yaml), shared: Rc::default() }
    }

    /// What a shell calls: converts the platform's parts (`Request::from_parts`) and handles the
    /// request; one that cannot be converted gets its error, a request id and an audit record
    /// like any other.
    pub async fn serve<P: Platform, N: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        p: &P,
        method: &str,
        path: String,
        headers: impl IntoIterator<Item = (N, V)>,
        body: InboundBody,
    ) -> Response {
        match Request::from_parts(method, path.clone(), headers, body) {
            Ok(req) => self.handle(p, req).await,
            Err(e) => {
                let request_id = format!("req_{:016x}", p.random_u64());
                let mut resp = Response::json(e.status(), &e.to_json());
                resp.headers.push(("x-request-id".into(), request_id.clone()));
                let rec = Record {
                    request_id,
                    method: method.chars().take(32).collect(),
                    path: path.split('?').next().unwrap_or("").chars().take(256).collect(),
                    started_ms: p.now_ms(),
                    outcome: "error",
                    status: resp.status,
                    error: Some((e.to_string(), "info")),
                    ..Record::default()
                };
                p.log(&rec.to_json(p.now_ms()));
                resp
            }
        }
    }

    pub async fn handle<P: Platform>(&self, p: &P, req: Request) -> Response {
        let request_id = request_id(p, &req.headers);
        // Anthropic's endpoints answer in Anthropic's shapes, errors included.
        let anthropic = messages::is_messages(&req.path);
        let mut rec = Record {
            request_id: request_id.clone(),
            method: req.method.to_string(),
            path: req.path.split('?').next().unwrap_or("").to_owned(),
            started_ms: p.now_ms(),
            outcome: "completed",
            ..Record::default()
        };
        let result = self.dispatch(p, req, &request_id, &mut rec).await;
        let (mut resp, finish) = match result {
            Ok(r) => r,
            Err(e) => {
                let e = match e {
                    GatewayError::Internal { detail, .. } => GatewayError::Internal { request_id: request_id.clone(), detail },
                    other => other,
                };
                let mut resp = Response::json(e.status(), &e.to_json());
                resp.headers.extend(e.headers());
                let level = match e.blame() {
                    Blame::Client => "info",
                    Blame::Upstream => "warn",
                    Blame::Internal => "error",
                };
                let message = match &e {
                    GatewayError::Internal { detail, .. } => detail.clone(),
                    other => other.to_string(),
                };
                rec.error = Some((message, level));
                rec.outcome = "error";
                (resp, None)
            }
        };
        resp.headers.push(("x-request-id".into(), request_id));
        if let Some(d) = &rec.decision {
            resp.headers.push(("x-gateway-route".into(), d.route.clone()));
            resp.headers.push(("x-gateway-tier".into(), d.tier.as_str().into()));
            resp.headers.push(("x-gateway-attempts".into(), rec.attempts.to_string()));
            if let Some(c) = &d.capability {
                resp.headers.push(("x-gateway-capability".into(), c.clone()));
            }
            if let Some(c) = d.confidence {
                resp.headers.push(("x-gateway-confidence".into(), format!("{c:.3}")));
            }
        }
        if let Some(m) = &rec.model {
            resp.headers.push(("x-gateway-model".into(), m.clone()));
        }
        rec.status = resp.status;
        let model = rec.model.clone().unwrap_or_default();
        match (resp.body, finish) {
            (Body::Stream(s), Some(finish)) => resp.body = Body::Stream(stream_audit::audited(s, finish, rec)),
            (body, _) => {
                resp.body = body;
                p.log(&rec.to_json(p.now_ms()));
            }
        }
        if anthropic {
            return messages::to_anthropic(resp, &model);
        }
        resp
    }

    async fn dispatch<P: Platform>(
        &self,
        p: &P,
        req: Request,
        request_id: &str,
        rec: &mut Record,
    ) -> Result<(Response, Option<counters::Finish<P>>), GatewayError> {
        let path = req.path.split('?').next().unwrap_or("").trim_end_matches('/').to_owned();
        let allowed = match path.as_str() {
            "/v1/chat/completions" | "/chat/completions" | "/v1/route" | "/v1/embeddings" | "/embeddings" | "/v1/messages" | "/v1/messages/count_tokens" => "POST",
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
            "/healthz" => Ok((
                Response::json(200, &json!({"status": "ok", "config_source": source.as_str(), "config_digest": config.digest, "memory_bytes": memory_bytes()})),
                None,
            )),
            "/v1/models" | "/models" => {
                let key = keys::authenticate(&self.shared, p, &config, &req.headers).await?;
                rec.key = Some(key.name.clone());
                Ok((Response::json(200, &models(&config, &key)), None))
            }
            "/v1/route" => Ok((routing::explain(&self.shared, p, config, req, rec).await?, None)),
            "/v1/embeddings" | "/embeddings" => Ok((embeddings::embeddings(&self.shared, p, config, req, rec).await?, None)),
            "/v1/messages/count_tokens" => Ok((messages::count_tokens(&self.shared, p, &config, req, rec).await?, None)),
            "/v1/messages" => chat::chat(&self.shared, p, config, req, rec, crate::api::messages::to_chat).await,
            _ => chat::chat(&self.shared, p, config, req, rec, crate::api::ParsedChat::from_slice).await,
        }
    }
}

/// The wasm instance's linear memory (what the Workers 128 MB limit counts, with the JS heap);
/// `None` natively.
fn memory_bytes() -> Option<u64> {
    #[cfg(target_arch = "wasm32")]
    {
        Some(core::arch::wasm32::memory_size(0) as u64 * 65536)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        None
    }
}

/// The models and routes this key may use.
fn models(config: &Config, key: &ClientKey) -> Value {
    let mut data: Vec<Value> = config
        .models
        .values()
        .filter(|m| key.may_use_model(&m.name) && (key.allow_cloud || m.locality == crate::config::Locality::Local))
        .map(|m| json!({"id": m.name, "object": "model", "created": 0, "owned_by": m.provider.name(), "kind": m.kind.as_str(),
            "capabilities": m.capabilities, "context_window": m.context_window,
            "locality": match m.locality { crate::config::Locality::Local => "local", crate::config::Locality::Cloud => "cloud" }}))
        .collect();
    for r in config.routes.values().filter(|r| key.may_use_route(&r.name)) {
        data.push(json!({"id": r.name, "object": "model", "created": 0, "owned_by": "llm-gateway:route", "models": r.models}));
    }
    for a in &config.router.aliases {
        data.push(json!({"id": a, "object": "model", "created": 0, "owned_by": "llm-gateway:router"}));
    }
    json!({"object": "list", "data": data})
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

pub(crate) async fn drain(mut body: InboundBody) {
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
