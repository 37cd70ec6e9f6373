//! Anthropic ingress: requests translated to the chat request, completions translated back (the
//! stream translator is checked against Anthropic's recordings in `gateway/tests/messages.rs`,
//! which can use the provider-side translator too).

use serde_json::{json, Value};

use super::*;

fn translate(v: Value) -> Result<ParsedChat, GatewayError> {
    to_chat(v.to_string().as_bytes())
}

#[test]
fn a_full_request_becomes_the_chat_request() {
    let chat = translate(json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 512,
        "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "Answer in English."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is in this image, and the weather in Paris?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "...", "signature": "s"}, {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18 C, clear"}]},
                {"type": "text", "text": "Thanks. And tomorrow?"}]},
        ],
        "tools": [{"name": "get_weather", "description": "Weather for a city", "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.2,
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u-42"},
        "stream": true,
    }))
    .expect("translates");
    assert_eq!(chat.routing_text(), "Thanks. And tomorrow?");
    assert_eq!(
        Value::Object(chat.raw),
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 512,
            "messages": [
                {"role": "system", "content": "Be terse.\n\nAnswer in English."},
                {"role": "user", "content": [{"type": "text", "text": "What is in this image, and the weather in Paris?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": "Let me check.", "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C, clear"},
                {"role": "user", "content": [{"type": "text", "text": "Thanks. And tomorrow?"}]},
            ],
            "stop": ["\n\nHuman:"],
            "temperature": 0.2,
            "user": "u-42",
            "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
        })
    );
    let named = translate(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "tool", "name": "f"}})).expect("ok");
    assert_eq!(named.raw["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
}

#[test]
fn bad_requests_name_the_field() {
    let ok = |extra: Value| {
        let mut v = json!({"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
        for (k, x) in extra.as_object().into_iter().flatten() {
            v[k] = x.clone();
        }
        v
    };
    let cases = [
        (json!({"model": "m", "messages": []}), "max_tokens"),
        (json!({"max_tokens": 1, "messages": []}), "model"),
        (ok(json!({"max_tokens": 0})), "max_tokens"),
        (ok(json!({"messages": []})), "messages"),
        (ok(json!({"messages": [{"role": "system", "content": "x"}]})), "messages[0].role"),
        (ok(json!({"messages": [{"role": "user", "content": 7}]})), "messages[0].content"),
        (ok(json!({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]})), "messages[0].content[0]"),
        (ok(json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]})), "messages[0].content[0].source"),
        (ok(json!({"messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]})), "messages[0].content[0]"),
        (ok(json!({"system": [{"type": "image"}]})), "system[0]"),
        (ok(json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]})), "tools[0]"),
        (ok(json!({"tool_choice": {"type": "sometimes"}})), "tool_choice"),
        (ok(json!({"stop_sequences": "STOP"})), "stop_sequences"),
    ];
    for (body, param) in cases {
        let e = translate(body.clone()).expect_err("refused");
        assert_eq!(e.status(), 400, "{body}");
        assert_eq!(e.to_json()["error"]["param"], param, "{body}: {}", e.to_json());
    }
    let e = error_body(401, &json!({"error": {"message": "Invalid API key", "code": "invalid_api_key"}}));
    assert_eq!(e, json!({"type": "error", "error": {"type": "authentication_error", "message": "Invalid API key"}}));
}

#[test]
fn a_completion_becomes_a_message() {
    let completion: Value = serde_json::from_str(include_str!("../../../../tests/fixtures/openai/chat_completion.json")).expect("fixture");
    let m = from_completion(&completion, "oa");
    assert_eq!(m["type"], "message");
    assert_eq!(m["role"], "assistant");
    assert_eq!(m["model"], "oa");
    assert!(m["id"].as_str().is_some_and(|id| id.starts_with("msg_")), "{m}");
    assert_eq!(m["content"][0]["type"], "text");
    assert_eq!(m["content"][0]["text"], completion["choices"][0]["message"]["content"]);
    assert_eq!(m["stop_reason"], "end_turn");
    assert_eq!(m["usage"], json!({"input_tokens": completion["usage"]["prompt_tokens"], "output_tokens": completion["usage"]["completion_tokens"]}));
    let tool = json!({"id": "chatcmpl-9", "choices": [{"finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]}}], "usage": {"prompt_tokens": 5, "completion_tokens": 7}});
    let m = from_completion(&tool, "oa");
    assert_eq!(m["content"], json!([{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}}]));
    assert_eq!((m["stop_reason"].as_str(), m["id"].as_str()), (Some("tool_use"), Some("msg_9")));
}
