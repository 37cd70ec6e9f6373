//! Anthropic's Messages API as ingress (`POST /v1/messages`, what Claude Code and the anthropic
//! SDKs send): the request becomes the gateway's chat request, so the same cascade, policy,
//! counters and providers serve it, and the answer (a `chat.completion`, or its SSE chunks)
//! goes back in Anthropic's shapes (`message`, or `message_start` … `message_stop` events).
//!
//! An Anthropic model is sent the caller's body itself (`ParsedChat::anthropic`, with only
//! `model` rewritten) and its answer and events come back untouched: nothing is lost. For any
//! other provider the request is translated. Mapped: `system` (a string or text blocks), text,
//! image (base64 or URL), `tool_use` and `tool_result` blocks, `tools`, `tool_choice` (with
//! `disable_parallel_tool_use`), `max_tokens`, `stop_sequences`, `temperature`, `top_p`,
//! `metadata.user_id`, `stream`. Dropped there, because no OpenAI-shaped request carries them:
//! `top_k`, `thinking` (the model answers without extended thinking), `cache_control` marks, and
//! thinking blocks in earlier turns. Refused with a 400 (for every provider, so a request does not
//! succeed or fail by where the router sends it): other block types (documents, server tool
//! results) and server tools.

use serde_json::{json, Map, Value};

use super::ParsedChat;
use crate::error::GatewayError;

pub mod stream;

fn invalid(message: impl Into<String>, param: &str) -> GatewayError {
    GatewayError::bad_request(message, Some(param))
}

/// The chat request an Anthropic Messages body stands for.
pub fn to_chat(body: &[u8]) -> Result<ParsedChat, GatewayError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| GatewayError::bad_request(format!("We could not parse the JSON body of your request: {e}"), None))?;
    let Value::Object(req) = v else {
        return Err(GatewayError::bad_request("The request body must be a JSON object.", None));
    };
    for field in ["model", "max_tokens", "messages"] {
        if !req.contains_key(field) {
            return Err(invalid(format!("{field}: Field required"), field));
        }
    }
    let model = req["model"].as_str().filter(|m| !m.trim().is_empty()).ok_or_else(|| invalid("model: Input should be a non-empty string", "model"))?;
    let max_tokens = req["max_tokens"].as_u64().filter(|&n| n >= 1 && n <= u64::from(u32::MAX)).ok_or_else(|| invalid("max_tokens: Input should be an integer of at least 1", "max_tokens"))?;
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("max_tokens".into(), json!(max_tokens));
    let mut messages = Vec::new();
    match req.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let texts = blocks
                .iter()
                .enumerate()
                .map(|(i, b)| match (b["type"].as_str(), b["text"].as_str()) {
                    (Some("text"), Some(t)) => Ok(t),
                    _ => Err(invalid("system: only text blocks are supported", &format!("system[{i}]"))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            messages.push(json!({"role": "system", "content": texts.join("\n\n")}));
        }
        Some(_) => return Err(invalid("system: Input should be a string or a list of text blocks", "system")),
    }
    let Some(turns) = req["messages"].as_array() else { return Err(invalid("messages: Input should be a list", "messages")) };
    if turns.is_empty() {
        return Err(invalid("messages: at least one message is required", "messages"));
    }
    for (i, turn) in turns.iter().enumerate() {
        translate_turn(turn, i, &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(stop) = req.get("stop_sequences").filter(|s| !s.is_null()) {
        if !stop.as_array().is_some_and(|s| s.iter().all(Value::is_string)) {
            return Err(invalid("stop_sequences: Input should be a list of strings", "stop_sequences"));
        }
        out.insert("stop".into(), stop.clone());
    }
    for field in ["temperature", "top_p"] {
        if let Some(x) = req.get(field).filter(|x| !x.is_null()) {
            out.insert(field.into(), x.clone());
        }
    }
    if let Some(user) = req.get("metadata").and_then(|m| m.get("user_id")).and_then(Value::as_str) {
        out.insert("user".into(), json!(user));
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
        // Usage arrives in the last chunk: message_delta reports it.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = req.get("tools").filter(|t| !t.is_null()) {
        out.insert("tools".into(), translate_tools(tools)?);
    }
    if let Some(choice) = req.get("tool_choice").filter(|t| !t.is_null()) {
        let (choice, parallel) = translate_tool_choice(choice)?;
        out.insert("tool_choice".into(), choice);
        if parallel == Some(false) {
            out.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    let bytes = serde_json::to_vec(&Value::Object(out)).map_err(|e| GatewayError::Internal { request_id: String::new(), detail: format!("translating a messages request: {e}") })?;
    let mut chat = ParsedChat::from_slice(&bytes)?;
    chat.anthropic = Some(std::sync::Arc::new(req));
    Ok(chat)
}

/// One Anthropic turn as chat messages: an assistant turn's `tool_use` blocks become its
/// `tool_calls`; a user turn's `tool_result` blocks become `tool` messages before its other content.
fn translate_turn(turn: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let at = format!("messages[{i}]");
    let role = match turn["role"].as_str() {
        Some(r @ ("user" | "assistant")) => r,
        _ => return Err(invalid(format!("{at}.role: Input should be 'user' or 'assistant'"), &format!("{at}.role"))),
    };
    let blocks = match &turn["content"] {
        Value::String(s) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => return Err(invalid(format!("{at}.content: Input should be a string or a list of content blocks"), &format!("{at}.content"))),
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    let mut results = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        match b["type"].as_str() {
            Some("text") => parts.push(json!({"type": "text", "text": b["text"].as_str().ok_or_else(|| invalid(format!("{at}.text: Field required"), &at))?})),
            Some("image") if role == "user" => parts.push(json!({"type": "image_url", "image_url": {"url": image_url(&b["source"], &at)?}})),
            Some("tool_use") if role == "assistant" => {
                let (Some(id), Some(name)) = (b["id"].as_str(), b["name"].as_str()) else { return Err(invalid(format!("{at}: tool_use needs an id and a name"), &at)) };
                let input = if b["input"].is_null() { json!({}) } else { b["input"].clone() };
                calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}}));
            }
            Some("tool_result") if role == "user" => {
                let Some(id) = b["tool_use_id"].as_str() else { return Err(invalid(format!("{at}.tool_use_id: Field required"), &at)) };
                let text = match &b["content"] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    Value::Array(items) => items.iter().filter(|c| c["type"] == "text").filter_map(|c| c["text"].as_str()).collect::<Vec<_>>().join("\n"),
                    _ => return Err(invalid(format!("{at}.content: Input should be a string or a list of blocks"), &at)),
                };
                let text = if b["is_error"].as_bool() == Some(true) { format!("Error: {text}") } else { text };
                results.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            // Extended thinking is not forwarded; its blocks in earlier turns are dropped.
            Some("thinking" | "redacted_thinking") if role == "assistant" => {}
            other => {
                let kind = other.map_or_else(|| "(none)".to_owned(), str::to_owned);
                return Err(invalid(format!("{at}: content blocks of type {kind} are not supported in a {role} turn by this gateway"), &at));
            }
        }
    }
    out.extend(results);
    if role == "assistant" {
        let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        let mut m = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text.join("")) }});
        if !calls.is_empty() {
            m["tool_calls"] = Value::Array(calls);
        }
        out.push(m);
    } else if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn image_url(source: &Value, at: &str) -> Result<String, GatewayError> {
    match (source["type"].as_str(), source["media_type"].as_str(), source["data"].as_str(), source["url"].as_str()) {
        (Some("base64"), Some(media_type), Some(data), _) => Ok(format!("data:{media_type};base64,{data}")),
        (Some("url"), _, _, Some(url)) => Ok(url.to_owned()),
        _ => Err(invalid(format!("{at}.source: an image source is {{type: base64, media_type, data}} or {{type: url, url}}"), &format!("{at}.source"))),
    }
}

fn translate_tools(tools: &Value) -> Result<Value, GatewayError> {
    let Some(tools) = tools.as_array() else { return Err(invalid("tools: Input should be a list", "tools")) };
    let out = tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let at = format!("tools[{i}]");
            if t.get("type").and_then(Value::as_str).is_some_and(|k| k != "custom") {
                return Err(invalid(format!("{at}: server tools ({}) are not supported by this gateway", t["type"]), &at));
            }
            let name = t["name"].as_str().ok_or_else(|| invalid(format!("{at}.name: Field required"), &at))?;
            let mut f = json!({"name": name, "parameters": t.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"}))});
            if let Some(d) = t["description"].as_str() {
                f["description"] = json!(d);
            }
            Ok(json!({"type": "function", "function": f}))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(out))
}

/// OpenAI's `tool_choice`, and `parallel_tool_calls` when the caller disabled parallel use.
fn translate_tool_choice(choice: &Value) -> Result<(Value, Option<bool>), GatewayError> {
    let parallel = choice["disable_parallel_tool_use"].as_bool().map(|d| !d);
    let mapped = match (choice["type"].as_str(), choice["name"].as_str()) {
        (Some("auto"), _) => json!("auto"),
        (Some("any"), _) => json!("required"),
        (Some("none"), _) => json!("none"),
        (Some("tool"), Some(name)) => json!({"type": "function", "function": {"name": name}}),
        _ => return Err(invalid("tool_choice: Input should be {type: auto | any | none} or {type: tool, name}", "tool_choice")),
    };
    Ok((mapped, parallel))
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// `msg_…` for the completion's id (Anthropic's ids start so; the SDKs do not parse them).
pub fn message_id(id: Option<&str>) -> String {
    let id = id.unwrap_or_default();
    format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(id))
}

/// A `chat.completion` as an Anthropic `message` (text, then tool_use blocks).
pub fn from_completion(v: &Value, model: &str) -> Value {
    let message = &v["choices"][0]["message"];
    let mut content = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let args = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
        let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": call["id"], "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null), "input": input}));
    }
    let finish = v["choices"][0]["finish_reason"].as_str().unwrap_or("stop");
    json!({
        "id": message_id(v["id"].as_str()),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": usage(&v["usage"]),
    })
}

/// Anthropic's `usage` from OpenAI's.
pub fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    json!({"input_tokens": n("prompt_tokens"), "output_tokens": n("completion_tokens")})
}

/// Anthropic's error `type` for a status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An OpenAI-shaped error body as Anthropic's (`{"type":"error","error":{type, message}}`).
pub fn error_body(status: u16, openai: &Value) -> Value {
    let message = openai.pointer("/error/message").and_then(Value::as_str).unwrap_or("The gateway could not serve this request.");
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

#[cfg(test)]
mod tests;
