//! Anthropic translation, checked against the recorded streams in `tests/fixtures/anthropic/`.

use eventsource_stream::Event;
use serde_json::{json, Value};

use super::stream::Translator;
use super::*;
use crate::config::Config;
use crate::providers::StreamError;

fn chat(body: Value) -> ParsedChat {
    ParsedChat::from_slice(body.to_string().as_bytes()).expect("valid request")
}

fn model() -> std::sync::Arc<crate::config::Model> {
    Config::bundled().expect("bundled").models["claude-sonnet"].clone()
}

fn events(fixture: &str) -> Vec<Event> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/anthropic").join(fixture);
    crate::testing::sse_events(&std::fs::read_to_string(path).expect("fixture"))
}

fn run(t: &mut Translator, fixture: &str) -> (Vec<Value>, bool) {
    let mut out = Vec::new();
    let mut done = false;
    for ev in events(fixture) {
        let r = t.on_event(&ev).expect("translates");
        out.extend(r.data.iter().map(|d| serde_json::from_str::<Value>(d).expect("json chunk")));
        done |= r.done;
    }
    (out, done)
}

#[test]
fn text_stream_becomes_openai_chunks_with_usage() {
    let c = chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true, "stream_options": {"include_usage": true}}));
    let mut t = Translator::new(&c, 1_700_000_000);
    let (chunks, done) = run(&mut t, "basic_response.sse");
    assert!(done && t.complete());
    let text: String = chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect();
    assert_eq!(text, "Hello there!");
    assert!(chunks.iter().all(|c| c["id"] == "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK" && c["created"] == 1_700_000_000));
    let usage = chunks.last().expect("usage chunk");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], json!({"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17, "prompt_tokens_details": {"cached_tokens": 0}}));
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
}

#[test]
fn tool_stream_streams_argument_deltas() {
    let c = chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true}));
    let mut t = Translator::new(&c, 0);
    let (chunks, _) = run(&mut t, "tool_use_response.sse");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "no usage unless asked");
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0")).collect();
    assert_eq!(calls[0]["index"], 0);
    assert_eq!(calls[0]["id"], "toolu_01NRLabsLyVHZPKxbKvkfSMn");
    let args: String = calls.iter().filter_map(|c| c["function"]["arguments"].as_str()).collect();
    assert_eq!(args, r#"{"location": "Paris"}"#);
    assert_eq!(chunks.last().expect("chunk")["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn error_event_and_garbage_are_errors() {
    let c = chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
    let mut t = Translator::new(&c, 0);
    let err = Event { event: "error".into(), data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.into(), id: String::new(), retry: None };
    assert_eq!(t.on_event(&err), Err(StreamError::Upstream("Overloaded".into())));
    let bad = Event { event: "message_start".into(), data: "{".into(), id: String::new(), retry: None };
    assert!(matches!(t.on_event(&bad), Err(StreamError::Malformed(_))));
}

#[test]
fn encode_merges_turns_and_maps_images_and_json_mode() {
    let c = chat(json!({"model": "m", "messages": [
        {"role": "system", "content": "A"}, {"role": "developer", "content": "B"},
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
        {"role": "user", "content": "and this"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}},
        "temperature": 1.7}));
    let (url, headers, body) = encode(&model(), &c, Some("k")).expect("encodes");
    assert_eq!(url, "https://api.anthropic.com/v1/messages");
    assert!(headers.contains(&("x-api-key".into(), "k".into())));
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["system"], "A\n\nB");
    assert_eq!(v["temperature"], 1.0);
    assert_eq!(v["max_tokens"], 4096);
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(1), "consecutive user turns merge");
    assert_eq!(v["messages"][0]["content"][1]["source"], json!({"type": "base64", "media_type": "image/png", "data": "iVBO"}));
    assert_eq!(v["tool_choice"], json!({"type": "tool", "name": JSON_TOOL}));
    let decoded = decode(&c, br#"{"id":"msg_1","model":"x","content":[{"type":"tool_use","id":"t","name":"json_response","input":{"a":1}}],"stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4}}"#, 5).expect("decodes");
    assert_eq!(decoded["choices"][0]["message"]["content"], r#"{"a":1}"#);
    assert_eq!(decoded["choices"][0]["finish_reason"], "stop");
}

#[test]
fn unsupported_requests_are_client_errors() {
    let n2 = chat(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 2}));
    assert_eq!(encode(&model(), &n2, None).expect_err("n>1").status(), 400);
    let bad_args = chat(json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}));
    let e = encode(&model(), &bad_args, None).expect_err("bad args");
    assert_eq!(e.to_json()["error"]["param"], "messages[0].tool_calls[0].function.arguments");
}

#[test]
fn passed_through_events_keep_their_sse_framing() {
    let c = chat(json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}));
    let mut c = c;
    c.anthropic = Some(std::sync::Arc::new(serde_json::Map::new()));
    let mut t = crate::config::ProviderKind::Anthropic.stream_translator(&c, 0);
    let multi = Event { event: "ping".into(), data: "{\n\"type\": \"ping\"\n}".into(), id: String::new(), retry: None };
    let out = t.on_event(&multi).expect("a ping");
    assert_eq!(out.native.as_deref(), Some("event: ping\ndata: {\ndata: \"type\": \"ping\"\ndata: }\n\n"), "every data line is prefixed");
    assert!(out.data.is_empty(), "nothing translated is sent beside it");
}
