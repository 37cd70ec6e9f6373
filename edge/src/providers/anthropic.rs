//! Anthropic Messages API: OpenAI requests become `/v1/messages` requests (system prompt, tools,
//! tool_use / tool_result, images, stop sequences) and responses come back as OpenAI
//! `chat.completion` objects. Streams are translated in `anthropic/stream.rs`.
//!
//! `response_format` (JSON object or schema) is expressed as one forced tool named
//! `json_response` whose input is returned as the message content, the approach Anthropic
//! documents for structured output.

pub mod stream;

use serde_json::{json, Map, Value};

use super::Encoded;
use crate::api::{Content, ContentPart, ImageUrl, Message, ParsedChat, ResponseFormat, Role, ToolChoice};
use crate::config::Model;
use crate::error::{AttemptError, GatewayError};

pub const API_VERSION: &str = "2023-06-01";
pub const JSON_TOOL: &str = "json_response";

pub fn encode(
    model: &Model,
    chat: &ParsedChat,
    api_key: Option<&str>,
) -> Result<Encoded, GatewayError> {
    if let Some(original) = &chat.anthropic {
        return native(model, original, api_key);
    }
    let req = &chat.request;
    if req.n.is_some_and(|n| n > 1) {
        return Err(GatewayError::bad_request("n > 1 is not supported by Anthropic models", Some("n")));
    }
    let (system, messages) = messages(&req.messages)?;
    let mut body = Map::new();
    body.insert("model".into(), json!(model.upstream_model));
    let max_tokens = req.max_completion_tokens.or(req.max_tokens).unwrap_or(model.max_output_tokens);
    body.insert("max_tokens".into(), json!(max_tokens));
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    if let Some(stop) = &req.stop {
        body.insert("stop_sequences".into(), json!(stop.to_vec()));
    }
    if let Some(t) = req.temperature {
        // OpenAI's range is 0..2, Anthropic's 0..1.
        body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
    }
    let (tools, tool_choice) = tools(chat)?;
    if let Some(tools) = tools {
        body.insert("tools".into(), tools);
    }
    if let Some(tc) = tool_choice {
        body.insert("tool_choice".into(), tc);
    }
    let mut headers = vec![("anthropic-version".to_owned(), API_VERSION.to_owned())];
    if let Some(key) = api_key {
        headers.push(("x-api-key".into(), key.to_owned()));
    }
    let bytes = serde_json::to_vec(&Value::Object(body)).map_err(|e| GatewayError::Internal {
        request_id: String::new(),
        detail: format!("encoding request: {e}"),
    })?;
    Ok((format!("{}/messages", model.base_url), headers, bytes))
}

/// The caller's own Messages body (it came in on `/v1/messages`), with the model's name.
fn native(model: &Model, original: &Map<String, Value>, api_key: Option<&str>) -> Result<Encoded, GatewayError> {
    let mut body = original.clone();
    body.insert("model".into(), json!(model.upstream_model));
    let mut headers = vec![("anthropic-version".to_owned(), API_VERSION.to_owned())];
    if let Some(key) = api_key {
        headers.push(("x-api-key".into(), key.to_owned()));
    }
    let bytes = serde_json::to_vec(&Value::Object(body)).map_err(|e| GatewayError::Internal { request_id: String::new(), detail: format!("encoding request: {e}") })?;
    Ok((format!("{}/messages", model.base_url), headers, bytes))
}

/// Whether the request asked for JSON output (expressed as the forced `json_response` tool).
pub fn json_mode(chat: &ParsedChat) -> bool {
    matches!(chat.request.response_format, Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. }))
}

fn tools(chat: &ParsedChat) -> Result<(Option<Value>, Option<Value>), GatewayError> {
    let req = &chat.request;
    if json_mode(chat) {
        if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(GatewayError::bad_request(
                "response_format together with tools is not supported for Anthropic models",
                Some("response_format"),
            ));
        }
        let schema = match &req.response_format {
            Some(ResponseFormat::JsonSchema { json_schema }) => json_schema.schema.clone(),
            _ => None,
        }
        .unwrap_or_else(|| json!({"type": "object"}));
        let tool = json!({"name": JSON_TOOL, "description": "Return the response as JSON.", "input_schema": schema});
        return Ok((Some(json!([tool])), Some(json!({"type": "tool", "name": JSON_TOOL}))));
    }
    let Some(defs) = req.tools.as_ref().filter(|t| !t.is_empty()) else {
        return Ok((None, None));
    };
    let mut out = Vec::with_capacity(defs.len());
    for (i, t) in defs.iter().enumerate() {
        if t.kind != "function" {
            return Err(GatewayError::bad_request(
                format!("tool type \"{}\" is not supported for Anthropic models", t.kind),
                Some(&format!("tools[{i}].type")),
            ));
        }
        let schema = t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        let mut tool = json!({"name": t.function.name, "input_schema": schema});
        if let Some(d) = &t.function.description {
            tool["description"] = json!(d);
        }
        out.push(tool);
    }
    let disable_parallel = req.parallel_tool_calls == Some(false);
    let mut choice = match &req.tool_choice {
        None => json!({"type": "auto"}),
        Some(ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            other => {
                return Err(GatewayError::bad_request(
                    format!("tool_choice \"{other}\" is not one of none, auto, required"),
                    Some("tool_choice"),
                ))
            }
        },
        Some(ToolChoice::Named { function, .. }) => json!({"type": "tool", "name": function.name}),
    };
    if disable_parallel && choice["type"] != "none" {
        choice["disable_parallel_tool_use"] = json!(true);
    }
    Ok((Some(Value::Array(out)), Some(choice)))
}

/// System prompts, and messages with consecutive same-role turns merged (Anthropic alternates).
fn messages(msgs: &[Message]) -> Result<(Vec<String>, Vec<Value>), GatewayError> {
    let mut system = Vec::new();
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let (role, blocks) = match m.role {
            Role::System | Role::Developer => {
                system.push(m.content.as_ref().map(Content::text).unwrap_or_default());
                continue;
            }
            Role::User => ("user", content_blocks(m.content.as_ref(), i)?),
            Role::Assistant => ("assistant", assistant_blocks(m, i)?),
            Role::Tool => {
                let Some(id) = &m.tool_call_id else {
                    return Err(GatewayError::bad_request(
                        "tool messages need a tool_call_id",
                        Some(&format!("messages[{i}].tool_call_id")),
                    ));
                };
                let text = m.content.as_ref().map(Content::text).unwrap_or_default();
                ("user", vec![json!({"type": "tool_result", "tool_use_id": id, "content": text})])
            }
            Role::Function => {
                return Err(GatewayError::bad_request(
                    "the deprecated `function` role is not supported for Anthropic models; use tools",
                    Some(&format!("messages[{i}].role")),
                ))
            }
        };
        match out.last_mut() {
            Some((last, prev)) if *last == role => prev.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    let messages = out.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect();
    Ok((system, messages))
}

fn content_blocks(content: Option<&Content>, i: usize) -> Result<Vec<Value>, GatewayError> {
    match content {
        None => Ok(Vec::new()),
        Some(Content::Text(t)) => Ok(vec![json!({"type": "text", "text": t})]),
        Some(Content::Parts(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| match part {
                ContentPart::Text { text } => Ok(json!({"type": "text", "text": text})),
                ContentPart::ImageUrl { image_url } => image_block(&image_url.url, i, j),
                ContentPart::Other(v) => Err(GatewayError::bad_request(
                    format!(
                        "content part type {} is not supported for Anthropic models",
                        v.get("type").unwrap_or(&Value::Null)
                    ),
                    Some(&format!("messages[{i}].content[{j}]")),
                )),
            })
            .collect(),
    }
}

fn image_block(url: &str, i: usize, j: usize) -> Result<Value, GatewayError> {
    if url.starts_with("data:") {
        if let Some((media_type, data)) = ImageUrl::base64_data(url) {
            return Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}));
        }
        return Err(GatewayError::bad_request(
            "image data URLs must be base64 (data:<type>;base64,...)",
            Some(&format!("messages[{i}].content[{j}].image_url.url")),
        ));
    }
    Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
}

fn assistant_blocks(m: &Message, i: usize) -> Result<Vec<Value>, GatewayError> {
    let mut blocks: Vec<Value> = content_blocks(m.content.as_ref(), i)?
        .into_iter()
        .filter(|b| b.get("text").and_then(Value::as_str) != Some(""))
        .collect();
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let input: Value = if call.function.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.function.arguments).map_err(|e| {
                GatewayError::bad_request(
                    format!("tool call arguments are not valid JSON: {e}"),
                    Some(&format!("messages[{i}].tool_calls[{j}].function.arguments")),
                )
            })?
        };
        blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.function.name, "input": input}));
    }
    Ok(blocks)
}

pub fn finish_reason(stop_reason: &str, json_mode: bool) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" if !json_mode => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI's `usage` from Anthropic's (cache reads and writes count as prompt tokens).
pub fn usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let prompt = n("input_tokens") + n("cache_creation_input_tokens") + n("cache_read_input_tokens");
    let completion = n("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": n("cache_read_input_tokens")},
    })
}

pub fn decode(chat: &ParsedChat, body: &[u8], now_s: u64) -> Result<Value, AttemptError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| AttemptError::Malformed(format!("response is not JSON: {e}")))?;
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| AttemptError::Malformed("response has no `content` array".into()))?;
    let json_mode = json_mode(chat);
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") if json_mode => text.push_str(&b.get("input").unwrap_or(&Value::Null).to_string()),
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": b.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": b.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                },
            })),
            _ => {} // thinking and future block types have no OpenAI equivalent
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }, "refusal": null});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let stop = v.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn");
    Ok(json!({
        "id": v.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": now_s,
        "model": v.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(stop, json_mode)}],
        "usage": usage(v.get("usage").unwrap_or(&Value::Null)),
    }))
}

#[cfg(test)]
mod tests;
