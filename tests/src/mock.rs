//! Mock providers: one in-process HTTP server; the first path segment picks the behaviour
//! (`/openai/v1/chat/completions`, `/status-500/v1/...`), so one test config can point models
//! at different behaviours. Every request is recorded.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::fixture;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub behaviour: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

#[derive(Clone, Default)]
pub struct Mock {
    pub addr: Option<SocketAddr>,
    log: Arc<Mutex<Vec<Recorded>>>,
    /// The real classifier host `/v1/classify` is relayed to (tier 3).
    tier3: Arc<Mutex<Option<String>>>,
}

/// Markers in a prompt that make the tier-3 relay misbehave (the rest is relayed untouched).
pub const T3_DOWN: &str = "[[t3:down]]";
pub const T3_SLOW: &str = "[[t3:slow]]";
pub const T3_FORGED: &str = "[[t3:forged]]";
pub const T3_BADSIG: &str = "[[t3:badsig]]";
pub const T3_REPLAY: &str = "[[t3:replay]]";

type Body = BoxBody<Bytes, std::io::Error>;

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).map_err(|e: Infallible| match e {}).boxed())
        .unwrap_or_default()
}

/// Replays an SSE fixture event by event, with a short pause between events.
fn sse(events: Vec<String>, fail_after: Option<usize>) -> hyper::Response<Body> {
    
    let stream = futures::stream::iter(events.into_iter().enumerate()).then(move |(i, ev)| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if fail_after.is_some_and(|k| i >= k) {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset"));
        }
        Ok(Frame::data(Bytes::from(format!("{ev}\n\n"))))
    });
    hyper::Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap_or_default()
}

fn events(path: &str) -> Vec<String> {
    String::from_utf8_lossy(&fixture(path))
        .split("\n\n")
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Mock {
    pub async fn start() -> anyhow::Result<Mock> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mock = Mock { addr: Some(listener.local_addr()?), ..Default::default() };
        let served = mock.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { break };
                let m = served.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let m = m.clone();
                        async move { m.respond(req).await }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Ok(mock)
    }

    /// Relays `POST /v1/classify` to this classifier host.
    pub fn set_tier3(&self, base: &str) {
        if let Ok(mut t) = self.tier3.lock() {
            *t = Some(base.to_owned());
        }
    }

    /// The tier-3 relay: the edge's signed request goes to the real host as it came, unless the
    /// prompt asks for a fault: the connection drops, the answer comes late, its signature is
    /// forged, the request's signature is broken, or the request is sent twice (a replay).
    async fn relay(&self, headers: &HashMap<String, String>, bytes: Bytes, body: &Value) -> Result<hyper::Response<Body>, std::io::Error> {
        let io = |e: reqwest::Error| std::io::Error::other(e.to_string());
        let text = body["text"].as_str().unwrap_or("");
        if text.contains(T3_DOWN) {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected: classifier down"));
        }
        if text.contains(T3_SLOW) {
            // Past the edge's deadline (8 s in e2e.yaml); the host is not bothered.
            tokio::time::sleep(Duration::from_secs(10)).await;
            return Ok(full(503, "application/json", r#"{"error":{"message":"too late"}}"#));
        }
        let base = self.tier3.lock().ok().and_then(|t| t.clone()).unwrap_or_default();
        let client = reqwest::Client::new();
        let send = |headers: HashMap<String, String>| {
            let mut req = client.post(format!("{base}/v1/classify")).body(bytes.clone());
            for (k, v) in &headers {
                if k.starts_with("x-gateway-") || k == "content-type" {
                    req = req.header(k, v);
                }
            }
            req.send()
        };
        let mut headers = headers.clone();
        if text.contains(T3_BADSIG) {
            headers.insert("x-gateway-signature".into(), format!("v1={}", "0".repeat(64)));
        }
        if text.contains(T3_REPLAY) {
            send(headers.clone()).await.map_err(io)?;
        }
        let r = send(headers).await.map_err(io)?;
        let status = r.status().as_u16();
        let mut sig = r.headers().get("x-gateway-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let answer = r.bytes().await.map_err(io)?;
        if text.contains(T3_FORGED) {
            sig = Some(format!("v1={}", "ab".repeat(32)));
        }
        let mut resp = full(status, "application/json", answer);
        if let Some(sig) = sig.and_then(|s| hyper::header::HeaderValue::from_str(&s).ok()) {
            resp.headers_mut().insert("x-gateway-signature", sig);
        }
        Ok(resp)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr.map(|a| a.to_string()).unwrap_or_default())
    }

    pub fn calls(&self, behaviour: &str) -> Vec<Recorded> {
        self.log.lock().map(|l| l.iter().filter(|r| r.behaviour == behaviour).cloned().collect()).unwrap_or_default()
    }

    async fn respond(&self, req: hyper::Request<hyper::body::Incoming>) -> Result<hyper::Response<Body>, std::io::Error> {
        // Like some OpenAI-compatible servers (and proxies in front of them), the mock refuses a
        // request body sent without its length (chunked): the gateway buffers every body it
        // sends, so it must say how long it is, on every platform.
        let chunked = req.headers().get("transfer-encoding").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("chunked"));
        if req.method() == hyper::Method::POST && (chunked || !req.headers().contains_key("content-length")) {
            return Ok(full(411, "application/json", r#"{"error":{"message":"Length Required: request bodies must carry Content-Length","type":"invalid_request_error"}}"#));
        }
        let path = req.uri().path().to_owned();
        let behaviour = path.trim_start_matches('/').split('/').next().unwrap_or("").to_owned();
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect::<HashMap<_, _>>();
        let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Ok(mut l) = self.log.lock() {
            l.push(Recorded { behaviour: behaviour.clone(), path: path.clone(), headers: headers.clone(), body: body.clone() });
        }
        if path == "/v1/classify" {
            return self.relay(&headers, bytes, &body).await;
        }
        let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        // A tool call is the answer to tools until the conversation carries the tool's result.
        let tools = body.get("tools").is_some() && !ends_with_tool_result(&body);
        Ok(match behaviour.as_str() {
            "openai" if path.ends_with("/embeddings") => full(200, "application/json", embeddings_answer(&body)),
            // The recorded streams where the request matches the recording (its tool, or plain
            // text); else a stream made from the scripted answer.
            "openai" if stream && tools && first_tool_name(&body) == Some(RECORDED_TOOL) => sse(events("openai/chat_tool_calls.sse"), None),
            "openai" if stream && (tools || body["response_format"]["type"].as_str().is_some_and(|t| t != "text")) => {
                sse(stream_of(&body, &openai_answer(&body)), None)
            }
            "openai" if stream => sse(events("openai/chat_text_with_usage_and_DONE.sse"), None),
            "openai" => full(200, "application/json", openai_answer(&body)),
            "anthropic" if stream => {
                sse(events(if tools { "anthropic/tool_use_response.sse" } else { "anthropic/basic_response.sse" }), None)
            }
            "anthropic" => full(
                200,
                "application/json",
                fixture(if tools { "anthropic/tool_use_message.json" } else { "anthropic/message.json" }),
            ),
            "status-500" => full(500, "application/json", r#"{"error":{"message":"The server had an error","type":"server_error"}}"#),
            "status-429" => {
                let mut r = full(429, "application/json", r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#);
                r.headers_mut().insert("retry-after", hyper::header::HeaderValue::from_static("0"));
                r
            }
            "hang" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                full(500, "text/plain", "too late")
            }
            "reset" => return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset")),
            // Sends the role chunk and two content chunks, then the connection breaks.
            "midstream" => sse(events("openai/chat_text_with_usage_and_DONE.sse"), Some(3)),
            "badsse" => sse(vec!["data: {this is not json".into()], None),
            // A provider that echoes the caller's credentials in its error message.
            "echo-key" => {
                let auth = headers.get("authorization").cloned().unwrap_or_default();
                let msg = serde_json::json!({"error": {"message": format!("Incorrect API key provided: {auth}"), "type": "invalid_request_error"}});
                full(400, "application/json", msg.to_string())
            }
            "unauthorized" => full(401, "application/json", r#"{"error":{"message":"Invalid API key"}}"#),
            _ => full(404, "application/json", r#"{"error":{"message":"no such mock behaviour"}}"#),
        })
    }
}

/// What OpenAI's embeddings endpoint answers: one vector per input, `dimensions` long (8 when
/// not asked), as floats or, with `encoding_format: base64` (the openai SDK's default), as the
/// base64 of little-endian f32s; usage counts a token per word (per id for token input). The
/// vectors are made from each input's bytes, so different inputs get different vectors.
fn embeddings_answer(body: &Value) -> Bytes {
    use base64::Engine as _;
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if items.first().is_some_and(Value::is_number) => vec![Value::Array(items.clone()).to_string()],
        Value::Array(items) => items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned)).collect(),
        _ => Vec::new(),
    };
    let tokens: usize = match &body["input"] {
        Value::Array(items) if items.first().is_some_and(Value::is_number) => items.len(),
        Value::Array(items) if items.first().is_some_and(Value::is_array) => items.iter().filter_map(Value::as_array).map(Vec::len).sum(),
        _ => inputs.iter().map(|t| t.split_whitespace().count().max(1)).sum(),
    };
    let dims = body["dimensions"].as_u64().unwrap_or(8) as usize;
    let base64 = body["encoding_format"] == "base64";
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let seed = text.bytes().fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            let vector: Vec<f32> = (0..dims).map(|d| ((seed.wrapping_add(d as u32 * 7919) % 2000) as f32 / 1000.0) - 1.0).collect();
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                serde_json::json!(vector)
            };
            serde_json::json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let model = body["model"].as_str().unwrap_or("text-embedding-3-small");
    Bytes::from(serde_json::json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}).to_string())
}

fn ends_with_tool_result(body: &Value) -> bool {
    let last = body["messages"].as_array().and_then(|m| m.last());
    last.is_some_and(|m| m["role"] == "tool" || m["content"].as_array().is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result")))
}

/// The tool the recorded tool-call stream (`openai/chat_tool_calls.sse`) was made with.
pub const RECORDED_TOOL: &str = "GetWeatherArgs";

fn first_tool_name(body: &Value) -> Option<&str> {
    body["tools"].as_array().and_then(|t| t.first()).and_then(|t| t["function"]["name"].as_str())
}

/// The text of the last user message (string or text parts).
fn last_user_text(body: &Value) -> String {
    let last = body["messages"].as_array().and_then(|m| m.iter().rev().find(|m| m["role"] == "user"));
    match last.map(|m| &m["content"]) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// The phrases the user put in quotes ('...' or "..."), in the order they appear.
fn quoted(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for q in ['\'', '"'] {
        let mut at = 0;
        while let Some(open) = text[at..].find(q).map(|i| at + i + 1) {
            let Some(close) = text[open..].find(q).map(|i| open + i) else { break };
            if close > open {
                found.push((open, text[open..close].to_owned()));
            }
            at = close + 1;
        }
    }
    found.sort();
    found.into_iter().map(|(_, s)| s).collect()
}

/// An OpenAI stream carrying the same answer as `answer` (a non-streaming body): the role, the
/// content in two pieces or the tool call's name then its arguments, the finish reason, and
/// the usage when the request asked for it.
fn stream_of(body: &Value, answer: &Bytes) -> Vec<String> {
    let v: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
    let head = serde_json::json!({"id": v["id"], "object": "chat.completion.chunk", "created": v["created"], "model": v["model"]});
    let chunk = |delta: Value, finish: Value| {
        let mut c = head.clone();
        c["choices"] = serde_json::json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        format!("data: {c}")
    };
    let message = &v["choices"][0]["message"];
    let mut out = vec![chunk(serde_json::json!({"role": "assistant", "content": ""}), Value::Null)];
    if let Some(call) = message["tool_calls"].get(0) {
        out.push(chunk(serde_json::json!({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""}}]}), Value::Null));
        out.push(chunk(serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": call["function"]["arguments"]}}]}), Value::Null));
    } else {
        let text = message["content"].as_str().unwrap_or_default();
        let mid = text.char_indices().nth(text.chars().count() / 2).map_or(text.len(), |(i, _)| i);
        for piece in [&text[..mid], &text[mid..]] {
            out.push(chunk(serde_json::json!({"content": piece}), Value::Null));
        }
    }
    out.push(chunk(serde_json::json!({}), v["choices"][0]["finish_reason"].clone()));
    if body["stream_options"]["include_usage"] == true {
        let mut c = head.clone();
        c["choices"] = serde_json::json!([]);
        c["usage"] = v["usage"].clone();
        out.push(format!("data: {c}"));
    }
    out.push("data: [DONE]".into());
    out
}

/// A non-streaming OpenAI answer in the recorded fixture's shape, scripted to what the request
/// asks as a real model would answer it: a call of the first tool (arguments that satisfy its
/// schema) while tools are offered and no tool result has come back; JSON that satisfies the
/// schema for `response_format: json_schema`; a JSON object for `json_object`; else the
/// recorded text.
fn openai_answer(body: &Value) -> Bytes {
    let recorded = fixture("openai/chat_completion.json");
    let format = &body["response_format"];
    let text = last_user_text(body);
    let first_tool = body["tools"].as_array().and_then(|t| t.first()).filter(|_| !ends_with_tool_result(body) && body["tool_choice"] != "none");
    let (message, finish) = if let Some(tool) = first_tool {
        let f = &tool["function"];
        let call = serde_json::json!({"id": "call_mock_1", "type": "function",
            "function": {"name": f["name"], "arguments": instance_of(&f["parameters"], &text).to_string()}});
        (serde_json::json!({"role": "assistant", "content": null, "tool_calls": [call], "refusal": null}), "tool_calls")
    } else if format["type"] == "json_schema" {
        let content = instance_of(&format["json_schema"]["schema"], &text).to_string();
        (serde_json::json!({"role": "assistant", "content": content, "refusal": null}), "stop")
    } else if format["type"] == "json_object" {
        // The keys the user asked for by name ('setup' and 'punchline'), else one answer.
        let keys = quoted(&text);
        let keys = if keys.is_empty() { vec!["answer".to_owned()] } else { keys };
        let object: serde_json::Map<String, Value> = keys.into_iter().map(|k| (k, Value::from("Edinburgh"))).collect();
        (serde_json::json!({"role": "assistant", "content": Value::Object(object).to_string(), "refusal": null}), "stop")
    } else {
        return recorded.into();
    };
    let mut answer: Value = serde_json::from_slice(&recorded).unwrap_or(Value::Null);
    answer["choices"][0]["message"] = message;
    answer["choices"][0]["finish_reason"] = finish.into();
    answer.to_string().into()
}

/// A value the JSON schema accepts, read off the user's text as a model would: numbers take the
/// first number in it, strings the first phrase in quotes (else a city); every property filled,
/// the first of an enum, one item per array, `$ref`s into `$defs` followed.
fn instance_of(schema: &Value, text: &str) -> Value {
    let number: Option<i64> = text.split(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()).and_then(|w| w.parse().ok());
    let phrase = quoted(text).into_iter().next().unwrap_or_else(|| "Edinburgh".to_owned());
    return fill(schema, schema, 0, number, &phrase);

    fn fill(s: &Value, root: &Value, depth: usize, number: Option<i64>, phrase: &str) -> Value {
        let go = |s: &Value, root: &Value, depth: usize| fill(s, root, depth, number, phrase);
        if depth > 16 {
            return Value::Null;
        }
        if let Some(r) = s["$ref"].as_str() {
            let target = r.strip_prefix('#').map(|p| root.pointer(p).unwrap_or(&Value::Null)).unwrap_or(&Value::Null);
            return go(target, root, depth + 1);
        }
        if let Some(v) = s["enum"].as_array().and_then(|e| e.first()) {
            return v.clone();
        }
        if let Some(v) = s.get("const") {
            return v.clone();
        }
        if let Some(first) = s["anyOf"].as_array().or(s["oneOf"].as_array()).and_then(|a| a.first()) {
            return go(first, root, depth + 1);
        }
        let ty = match &s["type"] {
            Value::Array(t) => t.first().and_then(Value::as_str).unwrap_or("null"),
            t => t.as_str().unwrap_or(if s.get("properties").is_some() { "object" } else { "string" }),
        };
        match ty {
            "object" => {
                let mut out = serde_json::Map::new();
                if let Some(props) = s["properties"].as_object() {
                    for (k, v) in props {
                        out.insert(k.clone(), go(v, root, depth + 1));
                    }
                }
                Value::Object(out)
            }
            "array" => Value::Array(vec![go(&s["items"], root, depth + 1)]),
            "integer" => number.unwrap_or(1).into(),
            "number" => number.map_or(1.5, |n| n as f64).into(),
            "boolean" => true.into(),
            "null" => Value::Null,
            _ => phrase.into(),
        }
    }
}
