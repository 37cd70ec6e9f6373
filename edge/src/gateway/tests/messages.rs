//! `POST /v1/messages`: Anthropic's clients through the same cascade, policy and providers,
//! answered in Anthropic's shapes; the stream translator checked against Anthropic's recorded
//! streams (`tests/fixtures/anthropic/`, the conformance recordings) by a round trip through the
//! provider-side translator.

use eventsource_stream::Event;
use serde_json::{json, Value};

use super::support::*;
use crate::api::messages::stream::Translator;
use crate::api::ParsedChat;
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
fn an_anthropic_model_gets_the_callers_body_and_answers_untouched() {
    let (p, gw) = setup();
    let body = json!({"model": "an", "max_tokens": 64, "system": [{"type": "text", "text": "You are a coder.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Fix my python"}], "top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [{"name": "run", "description": "Run code", "input_schema": {"type": "object"}}]});
    let r = anthropic(&p, &gw, "/v1/messages", Some("main"), body.clone());
    assert_served(&r, "an", 1);
    let sent = &p.fetches()[0];
    assert_eq!(sent.request.url, "http://127.0.0.1:9/anthropic/v1/messages");
    let mut want = body;
    want["model"] = json!("claude-sonnet-4-20250514");
    assert_eq!(sent.body_json(), want, "the caller's body with the model's name: cache_control, top_k and thinking kept");
    assert_eq!(sent.header("x-api-key"), Some(ANTHROPIC_KEY));
    let recorded: Value = serde_json::from_str(ANTHROPIC_MESSAGE).unwrap_or_default();
    assert_eq!(r.json(), recorded, "the provider's answer as it came");
    let rec = audit_records(&p).pop().unwrap_or_default();
    assert_eq!(rec["usage_reported"], true, "{rec}");
}

#[test]
fn an_anthropic_models_stream_is_passed_through_and_settled() {
    let (p, gw) = setup();
    let mut body = message("an", "hi");
    body["stream"] = json!(true);
    let r = anthropic(&p, &gw, "/v1/messages", Some("main"), body);
    assert_served(&r, "an", 1);
    let want: String = events(ANTHROPIC_SSE).iter().map(|e| format!("{e}\n\n")).collect();
    assert_eq!(r.body, want, "Anthropic's events, as they came");
    let rec = audit_records(&p).pop().unwrap_or_default();
    assert_eq!(rec["usage_reported"], true, "{rec}");
    let usage: Vec<Value> = events(ANTHROPIC_SSE).iter().filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")).and_then(|d| serde_json::from_str::<Value>(d).ok())).collect();
    let output = usage.iter().rev().find_map(|v| v["usage"]["output_tokens"].as_u64()).unwrap_or_default();
    assert_eq!(rec["completion_tokens"], output, "{rec}");
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
    // A field the translation ignores still reaches an Anthropic model in its own body: scanned.
    let mut hidden = message("an", "hello");
    hidden["context_note"] = json!("call me on +44 20 7946 0958");
    let r = anthropic(&p, &gw, "/v1/messages", Some("main"), hidden);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("phone"), "{}", r.body);
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

/// Anthropic's recorded stream as events.
fn recorded(name: &str) -> Vec<Event> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/anthropic").join(name);
    parse_events(&std::fs::read_to_string(path).expect("fixture"))
}

fn parse_events(text: &str) -> Vec<Event> {
    crate::testing::sse_events(text)
}

/// What an Anthropic client builds from a stream, as the SDK's accumulator does: the content
/// blocks (text joined, tool input parsed from its JSON deltas), the stop reason and the output
/// tokens; and the event names with repeats collapsed.
fn accumulate(events: &[Event]) -> (Value, Vec<String>) {
    let mut blocks: Vec<Value> = Vec::new();
    let mut partial: Vec<String> = Vec::new();
    let (mut stop, mut output) = (Value::Null, Value::Null);
    let mut names: Vec<String> = Vec::new();
    for e in events {
        if names.last() != Some(&e.event) {
            names.push(e.event.clone());
        }
        let d: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
        match e.event.as_str() {
            "content_block_start" => {
                let mut b = d["content_block"].clone();
                if let Some(o) = b.as_object_mut() {
                    o.remove("caller");
                }
                blocks.push(b);
                partial.push(String::new());
            }
            "content_block_delta" => {
                let i = d["index"].as_u64().unwrap_or(0) as usize;
                match d["delta"]["type"].as_str() {
                    Some("text_delta") => {
                        let t = format!("{}{}", blocks[i]["text"].as_str().unwrap_or(""), d["delta"]["text"].as_str().unwrap_or(""));
                        blocks[i]["text"] = json!(t);
                    }
                    Some("input_json_delta") => partial[i].push_str(d["delta"]["partial_json"].as_str().unwrap_or("")),
                    _ => {}
                }
            }
            "content_block_stop" => {
                let i = d["index"].as_u64().unwrap_or(0) as usize;
                if blocks[i]["type"] == "tool_use" {
                    blocks[i]["input"] = serde_json::from_str(&partial[i]).unwrap_or(json!({}));
                }
            }
            "message_delta" => {
                stop = d["delta"]["stop_reason"].clone();
                output = d["usage"]["output_tokens"].clone();
            }
            _ => {}
        }
    }
    (json!({"content": blocks, "stop_reason": stop, "output_tokens": output}), names)
}

/// Anthropic's stream → the provider translator's OpenAI chunks → this translator's events.
fn round_trip(name: &str, tools: bool) -> Vec<Event> {
    let mut body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]});
    if tools {
        body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    }
    let chat = ParsedChat::from_slice(body.to_string().as_bytes()).expect("chat");
    let mut provider = crate::providers::anthropic::stream::Translator::new(&chat, 0);
    let mut ours = Translator::new("an");
    let mut out = Vec::new();
    for e in recorded(name) {
        let t = provider.on_event(&e).expect("the recording translates");
        for data in t.data {
            out.extend(ours.feed(format!("data: {data}\n\n").as_bytes()));
        }
        if t.done {
            out.extend(ours.feed(b"data: [DONE]\n\n"));
        }
    }
    out.extend(ours.finish());
    parse_events(&out.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect::<String>())
}

#[test]
fn anthropic_streams_survive_the_round_trip() {
    for (name, tools) in [("basic_response.sse", false), ("tool_use_response.sse", true)] {
        let (want, want_names) = accumulate(&recorded(name));
        let (got, got_names) = accumulate(&round_trip(name, tools));
        assert_eq!(got, want, "{name}");
        assert_eq!(got_names, want_names, "{name}: the same events in the same order");
    }
}

#[test]
fn a_broken_stream_ends_with_an_error_event() {
    let mut t = Translator::new("oa");
    let mut out = t.feed(br#"data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"Hel"}}]}

data: {"error":{"message":"the provider closed the stream before it finished","type":"upstream_error","code":"stream_interrupted"}}

"#);
    out.extend(t.finish());
    let events = parse_events(&out.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect::<String>());
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["message_start", "content_block_start", "ping", "content_block_delta", "error"]);
    assert!(events[4].data.contains("closed the stream"), "{}", events[4].data);

    // A stream that stops without [DONE] or an error gets one at its end.
    let mut t = Translator::new("oa");
    let mut out = t.feed(b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n");
    out.extend(t.finish());
    let last = String::from_utf8_lossy(out.last().expect("events")).into_owned();
    assert!(last.starts_with("event: error\n"), "{last}");
}

#[test]
fn events_split_across_chunks_translate_the_same() {
    let run = |size: usize| {
        let mut t = Translator::new("oa");
        let mut out: Vec<u8> = Vec::new();
        for chunk in CHAT_SSE.as_bytes().chunks(size) {
            t.feed(chunk).iter().for_each(|b| out.extend_from_slice(b));
        }
        t.finish().iter().for_each(|b| out.extend_from_slice(b));
        String::from_utf8(out).unwrap_or_default()
    };
    let whole = run(CHAT_SSE.len());
    assert!(whole.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"), "{whole}");
    for size in [1, 2, 3, 7, 64] {
        assert_eq!(run(size), whole, "chunks of {size} bytes");
    }
}

/// The messages_stream fuzz target's finding: an Anthropic-framed stream whose event data was not
/// one JSON line was copied out as it came. Every event now goes out as one `event:` line and one
/// JSON `data:` line, or the stream ends with an `error` event.
#[test]
fn native_events_go_out_well_formed_whatever_came_in() {
    let input = include_bytes!("../../api/messages/native_stream_bad_data.bin");
    let (&size, body) = input.split_first().unwrap_or((&1, &[]));
    let mut t = Translator::new("m");
    let mut out = Vec::new();
    for chunk in body.chunks(usize::from(size).max(1)) {
        out.extend(t.feed(chunk));
    }
    out.extend(t.finish());
    let text: String = out.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
    for e in parse_events(&text) {
        assert!(serde_json::from_str::<Value>(&e.data).is_ok(), "{:?}: {}", e.event, e.data);
    }
    for raw in text.split_terminator("\n\n") {
        assert_eq!(raw.lines().count(), 2, "one event line, one data line: {raw:?}");
    }
    let last = parse_events(&text).pop().map(|e| e.event).unwrap_or_default();
    assert!(last == "message_stop" || last == "error", "{last}");
}
