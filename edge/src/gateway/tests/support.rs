//! The test config, its keys, and scripted providers that answer like the runtime suites' mock
//! (the first path segment of a model's URL picks the behaviour), replaying the recorded traffic.

use serde_json::{json, Value};
use sha2::Digest;

use crate::platform::UpstreamRequest;
use crate::testing::{request, MemoryPlatform, Received, Upstream};
use crate::Gateway;

pub const OPENAI_KEY: &str = "sk-test-openai-0123456789abcdef";
pub const ANTHROPIC_KEY: &str = "sk-ant-test-0123456789abcdef";
pub const CLASSIFIER_SECRET: &str = "tier3-shared-secret-for-the-core-tests-0123456789";

pub const CHAT_COMPLETION: &str = include_str!("../../../../tests/fixtures/openai/chat_completion.json");
pub const CHAT_SSE: &str = include_str!("../../../../tests/fixtures/openai/chat_text_with_usage_and_DONE.sse");
pub const ANTHROPIC_MESSAGE: &str = include_str!("../../../../tests/fixtures/anthropic/message.json");
pub const ANTHROPIC_SSE: &str = include_str!("../../../../tests/fixtures/anthropic/basic_response.sse");
pub const EMBEDDINGS: &str = include_str!("../../../../tests/fixtures/openai/embeddings.json");

/// The client key of `name` in `core.yaml`.
pub fn key(name: &str) -> String {
    format!("gwk_core_{name}")
}

/// `core.yaml` with each `{{HASH:name}}` replaced by the hash of `key(name)`.
pub fn yaml() -> String {
    let mut text = include_str!("core.yaml").to_owned();
    while let Some(at) = text.find("{{HASH:") {
        let end = at + text[at..].find("}}").unwrap_or(0);
        let name = text[at + 7..end].to_owned();
        let hash = format!("sha256:{}", hex::encode(sha2::Sha256::digest(key(&name).as_bytes())));
        text.replace_range(at..end + 2, &hash);
    }
    text
}

/// A gateway on `core.yaml` as its bundled config, and a platform with the provider secrets
/// and the scripted providers.
pub fn setup() -> (MemoryPlatform, Gateway) {
    let p = MemoryPlatform::new();
    p.set_secret("OPENAI_API_KEY", OPENAI_KEY);
    p.set_secret("ANTHROPIC_API_KEY", ANTHROPIC_KEY);
    p.set_secret("CLASSIFIER_SECRET", CLASSIFIER_SECRET);
    p.on_fetch(provider);
    (p, Gateway::new(&yaml()))
}

/// The behaviour of the URL's first path segment.
pub fn provider(req: &UpstreamRequest) -> Upstream {
    let path = req.url.split_once("://").and_then(|(_, r)| r.find('/').map(|i| &r[i..])).unwrap_or("");
    let behaviour = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let stream = body["stream"].as_bool().unwrap_or(false);
    match behaviour {
        "openai" if stream => recorded_sse(CHAT_SSE),
        "openai" => Upstream::json(200, serde_json::from_str(CHAT_COMPLETION).unwrap_or(Value::Null)),
        "anthropic" if stream => recorded_sse(ANTHROPIC_SSE),
        "anthropic" => Upstream::json(200, serde_json::from_str(ANTHROPIC_MESSAGE).unwrap_or(Value::Null)),
        "embed" => Upstream::json(200, serde_json::from_str(EMBEDDINGS).unwrap_or(Value::Null)),
        "status-500" => Upstream::json(500, json!({"error": {"message": "The server had an error", "type": "server_error"}})),
        "status-429" => Upstream::json(429, json!({"error": {"message": "Rate limit reached", "type": "requests"}})).header("retry-after", "0"),
        "hang" => Upstream::Hang,
        "reset" => Upstream::Refuse("connection reset by peer".into()),
        "badsse" => Upstream::sse(["{this is not json"]),
        // The role chunk and two content chunks, then the connection breaks.
        "midstream" => {
            let bytes: usize = events(CHAT_SSE).iter().take(3).map(|e| e.len() + 2).sum();
            recorded_sse(CHAT_SSE).break_after(bytes)
        }
        _ => Upstream::json(404, json!({"error": {"message": "no such scripted behaviour"}})),
    }
}

/// The events of a recorded SSE body.
pub fn events(sse: &str) -> Vec<String> {
    sse.split("\n\n").map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect()
}

/// A recorded SSE body replayed one event per chunk, 2 ms apart.
pub fn recorded_sse(sse: &str) -> Upstream {
    Upstream::Answer {
        delay_ms: 0,
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        chunks: events(sse).into_iter().map(|e| bytes::Bytes::from(format!("{e}\n\n"))).collect(),
        chunk_delay_ms: 2,
        break_after: None,
    }
}

pub fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// `POST /v1/chat/completions` as `key_name`.
pub fn chat(p: &MemoryPlatform, gw: &Gateway, key_name: &str, body: Value) -> Received {
    p.send(gw, request(http::Method::POST, "/v1/chat/completions", Some(&key(key_name)), &body))
}

/// Asserts a 200 served by `model` after `attempts` attempts.
#[track_caller]
pub fn assert_served(r: &Received, model: &str, attempts: u32) {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-gateway-model"), Some(model), "{:?}", r.headers);
    assert_eq!(r.header("x-gateway-attempts"), Some(attempts.to_string().as_str()), "{:?}", r.headers);
}

/// The audit records, one per request.
pub fn audit_records(p: &MemoryPlatform) -> Vec<Value> {
    p.logs().into_iter().filter(|l| l["event"] == "audit").collect()
}
