//! `POST /v1/messages`: Anthropic's clients through the same cascade, policy and providers,
//! answered in Anthropic's shapes.

use serde_json::{json, Value};

use super::support::*;
use crate::testing::{body_of, MemoryPlatform, Received};
use crate::Gateway;

/// `POST path` as the anthropic SDK sends it: `x-api-key` and `anthropic-version`.
fn anthropic(p: &MemoryPlatform, gw: &Gateway, path: &str, key_name: Option<&str>, body: Value) -> Received {
    let mut headers = http::HeaderMap::new();
    if let Some(k) = key_name {
        headers.insert("x-api-key", http::HeaderValue::from_str(&key(k)).expect("key"));
    }
    headers.insert("anthropic-version", http::HeaderValue::from_static("2023-06-01"));
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    let req = crate::gateway::Request { method: http::Method::POST, path: path.into(), headers, body: body_of(body.to_string().into()) };
    p.send(gw, req)
}

fn message(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": text}]})
}

#[test]
fn an_openai_model_answers_an_anthropic_client() {
    let (p, gw) = setup();
    let r = anthropic(&p, &gw, "/v1/messages", Some("main"), json!({"model": "oa", "max_tokens": 300, "system": "Be terse.", "messages": [{"role": "user", "content": "Describe the image"}]}));
    assert_served(&r, "oa", 1);
    let completion: Value = serde_json::from_str(CHAT_COMPLETION).unwrap_or_default();
    let m = r.json();
    assert_eq!(m["type"], "message", "{m}");
    assert_eq!(m["model"], "oa");
    assert_eq!(m["content"], json!([{"type": "text", "text": completion["choices"][0]["message"]["content"]}]));
    assert_eq!(m["stop_reason"], "end_turn");
    assert_eq!(m["usage"]["input_tokens"], completion["usage"]["prompt_tokens"]);
    let sent = &p.fetches()[0];
    assert_eq!(sent.request.url, "http://127.0.0.1:9/openai/v1/chat/completions");
    assert_eq!(sent.body_json()["messages"], json!([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Describe the image"}]));
    assert_eq!(sent.body_json()["max_tokens"], 300);
    let rec = audit_records(&p).pop().unwrap_or_default();
    assert_eq!((rec["path"].as_str(), rec["model"].as_str()), (Some("/v1/messages"), Some("oa")), "{rec}");
}

#[test]
fn an_anthropic_model_gets_the_system_prompt_and_tools_back_in_its_own_shape() {
    let (p, gw) = setup();
    let body = json!({"model": "an", "max_tokens": 64, "system": [{"type": "text", "text": "You are a coder."}],
        "messages": [{"role": "user", "content": "Fix my python"}],
        "tools": [{"name": "run", "description": "Run code", "input_schema": {"type": "object"}}]});
    let r = anthropic(&p, &gw, "/v1/messages", Some("main"), body);
    assert_served(&r, "an", 1);
    let sent = p.fetches()[0].body_json();
    assert_eq!(sent["system"], "You are a coder.");
    assert_eq!(sent["tools"], json!([{"name": "run", "description": "Run code", "input_schema": {"type": "object"}}]));
    assert_eq!(sent["max_tokens"], 64);
    let recorded: Value = serde_json::from_str(ANTHROPIC_MESSAGE).unwrap_or_default();
    let m = r.json();
    assert_eq!(m["content"][0]["text"], recorded["content"][0]["text"], "{m}");
    assert_eq!(m["usage"]["output_tokens"], recorded["usage"]["output_tokens"]);
}

#[test]
fn a_stream_comes_back_as_anthropic_events() {
    let (p, gw) = setup();
    let mut body = message("oa", "hi");
    body["stream"] = json!(true);
    let r = anthropic(&p, &gw, "/v1/messages", Some("main"), body);
    assert_served(&r, "oa", 1);
    let names: Vec<&str> = r.body.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    let mut collapsed = names.clone();
    collapsed.dedup();
    assert_eq!(collapsed, ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop", "message_delta", "message_stop"], "{}", r.body);
    let text: String = r
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|d| d["type"] == "content_block_delta")
        .filter_map(|d| d["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    let upstream: String = events(CHAT_SSE)
        .iter()
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, upstream);
    assert_eq!(p.fetches()[0].body_json()["stream_options"], json!({"include_usage": true}));
    let rec = audit_records(&p).pop().unwrap_or_default();
    assert_eq!(rec["usage_reported"], true, "the audit saw the OpenAI chunks' usage: {rec}");
}

#[test]
fn the_router_and_the_residency_rules_apply() {
    let (p, gw) = setup();
    let r = anthropic(&p, &gw, "/v1/messages", Some("main"), message("auto", "Why does this python stack trace happen?"));
    assert_served(&r, "an", 1);
    assert_eq!((r.header("x-gateway-tier"), r.header("x-gateway-capability")), (Some("keyword"), Some("code")));
    let r = anthropic(&p, &gw, "/v1/messages", Some("main"), message("auto", "my card number is 4111 1111 1111 1111, is it valid?"));
    assert_served(&r, "localm", 1);
    let r = anthropic(&p, &gw, "/v1/messages", Some("main"), message("oa", "my card number is 4111 1111 1111 1111"));
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["type"], "permission_error", "{}", r.body);
}

#[test]
fn errors_are_anthropic_shaped() {
    let (p, gw) = setup();
    for (key_name, body, status, kind) in [
        (None, message("oa", "hi"), 401, "authentication_error"),
        (Some("main"), json!({"model": "oa", "messages": [{"role": "user", "content": "hi"}]}), 400, "invalid_request_error"),
        (Some("main"), message("no-such-model", "hi"), 404, "not_found_error"),
        (Some("main"), message("dead", "hi"), 502, "api_error"),
    ] {
        let r = anthropic(&p, &gw, "/v1/messages", key_name, body);
        assert_eq!(r.status, status, "{}", r.body);
        let v = r.json();
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    let r = anthropic(&p, &gw, "/v1/messages", Some("main"), json!({"model": "oa", "messages": [{"role": "user", "content": "hi"}]}));
    assert!(r.json()["error"]["message"].as_str().is_some_and(|m| m.contains("max_tokens")), "{}", r.body);
}

#[test]
fn count_tokens_answers_with_the_budget_estimate() {
    let (p, gw) = setup();
    let body = json!({"model": "oa", "system": "Be terse.", "messages": [{"role": "user", "content": "word ".repeat(100)}]});
    let r = anthropic(&p, &gw, "/v1/messages/count_tokens", Some("main"), body.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    let mut as_chat = body;
    as_chat["max_tokens"] = json!(1);
    let chat = crate::api::messages::to_chat(as_chat.to_string().as_bytes()).expect("translates");
    assert_eq!(r.json()["input_tokens"], crate::policy::cost::estimate_prompt_tokens(&chat.request));
    assert!(r.json()["input_tokens"].as_u64().is_some_and(|n| n >= 100));
    assert_eq!(r.header("x-gateway-token-count"), Some("estimate"));
    assert!(p.fetches().is_empty(), "no provider is asked");
    let r = anthropic(&p, &gw, "/v1/messages/count_tokens", None, json!({}));
    assert_eq!((r.status, r.json()["error"]["type"].as_str()), (401, Some("authentication_error")));
}
