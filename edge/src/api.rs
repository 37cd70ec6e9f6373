//! OpenAI chat-completions request types, parsed strictly enough to route and translate, loosely
//! enough to pass every field we do not know straight through to OpenAI-compatible providers.
//!
//! The gateway keeps the caller's original JSON object and, for OpenAI-compatible upstreams,
//! only rewrites `model`; the typed view below is for validation, routing and translation.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::GatewayError;

pub mod embeddings;
pub mod messages;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Everything else (logprobs, seed, metadata...): passed through untouched to OpenAI-compatible
    /// providers.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Message {
    pub role: Role,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
    /// Audio, files, refusals...: kept for pass-through; not translatable to every provider.
    #[serde(untagged)]
    Other(Value),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImageUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ImageUrl {
    /// The media type and payload of a base64 data URL (`data:<type>;base64,<data>`).
    pub fn base64_data(url: &str) -> Option<(&str, &str)> {
        url.strip_prefix("data:")?.split_once(";base64,")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_owned()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionCall {
    pub name: String,
    /// A JSON document encoded as a string, as OpenAI sends it.
    pub arguments: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// "none", "auto" or "required".
    Mode(String),
    Named { #[serde(rename = "type")] kind: String, function: NamedFunction },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NamedFunction {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct JsonSchemaFormat {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

impl Content {
    /// The text of a message: the string, or its text parts joined by newlines.
    pub fn text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// A parsed request: the typed view plus the caller's original JSON object.
#[derive(Debug, Clone)]
pub struct ParsedChat {
    pub request: ChatRequest,
    pub raw: Map<String, Value>,
    /// The caller's Anthropic Messages body, when the request came in on `/v1/messages`: an
    /// Anthropic model is sent this (with its model name) instead of a translation.
    pub anthropic: Option<std::sync::Arc<Map<String, Value>>>,
}

/// Bounds on how many items a request may carry (the body limit bounds bytes; these bound the
/// work and memory per item). OpenAI's own limits where it has them: 128 tools, `n` up to 128.
pub const MAX_MESSAGES: usize = 2_048;
pub const MAX_PARTS: usize = 256;
pub const MAX_TOOL_CALLS: usize = 128;
pub const MAX_TOOLS: usize = 128;
pub const MAX_N: u32 = 128;

fn check_counts(r: &ChatRequest) -> Result<(), GatewayError> {
    let too_many = |what: &str, max: usize, param: String| {
        Err(GatewayError::bad_request(format!("Too many {what}: at most {max} are allowed."), Some(&param)))
    };
    if r.messages.len() > MAX_MESSAGES {
        return too_many("messages", MAX_MESSAGES, "messages".into());
    }
    for (i, m) in r.messages.iter().enumerate() {
        if let Some(Content::Parts(parts)) = &m.content {
            if parts.len() > MAX_PARTS {
                return too_many("content parts in one message", MAX_PARTS, format!("messages[{i}].content"));
            }
        }
        if m.tool_calls.as_ref().is_some_and(|c| c.len() > MAX_TOOL_CALLS) {
            return too_many("tool calls in one message", MAX_TOOL_CALLS, format!("messages[{i}].tool_calls"));
        }
    }
    if r.tools.as_ref().is_some_and(|t| t.len() > MAX_TOOLS) {
        return too_many("tools", MAX_TOOLS, "tools".into());
    }
    if r.n.is_some_and(|n| n == 0 || n > MAX_N) {
        return Err(GatewayError::bad_request(format!("'n' must be between 1 and {MAX_N}."), Some("n")));
    }
    Ok(())
}

impl ParsedChat {
    /// Parses and checks a chat-completions body. Errors name the offending field.
    pub fn from_slice(body: &[u8]) -> Result<Self, GatewayError> {
        let raw: Value = serde_json::from_slice(body).map_err(|e| {
            GatewayError::bad_request(format!("We could not parse the JSON body of your request: {e}"), None)
        })?;
        let Value::Object(raw) = raw else {
            return Err(GatewayError::bad_request("The request body must be a JSON object.", None));
        };
        for field in ["model", "messages"] {
            if !raw.contains_key(field) {
                return Err(GatewayError::bad_request(
                    format!("Missing required parameter: '{field}'."),
                    Some(field),
                ));
            }
        }
        let value = Value::Object(raw.clone());
        let request: ChatRequest = serde_path_to_error::deserialize(&value).map_err(|e| {
            let path = e.path().to_string();
            GatewayError::bad_request(format!("Invalid value for '{path}': {}", e.inner()), Some(&path))
        })?;
        if request.messages.is_empty() {
            return Err(GatewayError::bad_request(
                "'messages' must contain at least one message.",
                Some("messages"),
            ));
        }
        if request.model.trim().is_empty() {
            return Err(GatewayError::bad_request("'model' must not be empty.", Some("model")));
        }
        check_counts(&request)?;
        Ok(Self { request, raw, anthropic: None })
    }

    pub fn include_usage(&self) -> bool {
        self.request.stream_options.as_ref().is_some_and(|o| o.include_usage)
    }

    /// The text the router reads: the last user turn (the newest intent), else the last message.
    pub fn routing_text(&self) -> String {
        let msgs = &self.request.messages;
        msgs.iter()
            .rev()
            .find(|m| m.role == Role::User)
            .or_else(|| msgs.last())
            .and_then(|m| m.content.as_ref())
            .map(Content::text)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ParsedChat, GatewayError> {
        ParsedChat::from_slice(s.as_bytes())
    }

    #[test]
    fn keeps_unknown_fields_and_parses_parts() {
        let p = parse(r#"{"model":"auto","seed":7,"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}]}"#)
            .expect("valid");
        assert_eq!(p.request.extra["seed"], 7);
        assert_eq!(p.routing_text(), "hi");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse(r#"{"model":"auto","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#)
            .expect_err("invalid");
        let body = err.to_json();
        assert_eq!(body["error"]["param"], "temperature", "{body}");
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn bad_role_names_the_path() {
        let err = parse(r#"{"model":"auto","messages":[{"role":"wizard","content":"x"}]}"#).expect_err("invalid");
        assert_eq!(err.to_json()["error"]["param"], "messages[0].role");
    }

    #[test]
    fn missing_and_empty_messages() {
        assert_eq!(parse(r#"{"model":"auto"}"#).expect_err("e").to_json()["error"]["param"], "messages");
        assert_eq!(parse(r#"{"model":"auto","messages":[]}"#).expect_err("e").to_json()["error"]["param"], "messages");
        assert_eq!(parse("[1]").expect_err("e").status(), 400);
        assert_eq!(parse("{not json").expect_err("e").status(), 400);
    }

    #[test]
    fn counts_are_bounded() {
        let msgs = |n: usize| serde_json::json!({"model": "auto", "messages": vec![serde_json::json!({"role": "user", "content": "x"}); n]}).to_string();
        assert!(parse(&msgs(MAX_MESSAGES)).is_ok());
        let e = parse(&msgs(MAX_MESSAGES + 1)).expect_err("too many");
        assert_eq!((e.status(), e.to_json()["error"]["param"].as_str()), (400, Some("messages")));
        let parts = vec![serde_json::json!({"type": "text", "text": "x"}); MAX_PARTS + 1];
        let e = parse(&serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": parts}]}).to_string()).expect_err("parts");
        assert_eq!(e.to_json()["error"]["param"], "messages[0].content");
        let call = serde_json::json!({"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}});
        let body = serde_json::json!({"model": "auto", "messages": [{"role": "assistant", "content": null, "tool_calls": vec![call; MAX_TOOL_CALLS + 1]}]});
        assert_eq!(parse(&body.to_string()).expect_err("calls").to_json()["error"]["param"], "messages[0].tool_calls");
        let tool = serde_json::json!({"type": "function", "function": {"name": "f"}});
        let body = serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": "x"}], "tools": vec![tool; MAX_TOOLS + 1]});
        assert_eq!(parse(&body.to_string()).expect_err("tools").to_json()["error"]["param"], "tools");
        for n in [0, MAX_N + 1] {
            let body = serde_json::json!({"model": "auto", "n": n, "messages": [{"role": "user", "content": "x"}]});
            assert_eq!(parse(&body.to_string()).expect_err("n").to_json()["error"]["param"], "n");
        }
    }

    #[test]
    fn routing_text_is_last_user_turn() {
        let p = parse(r#"{"model":"auto","messages":[{"role":"system","content":"be terse"},{"role":"user","content":"first"},{"role":"assistant","content":"ok"},{"role":"user","content":"second"}]}"#).expect("valid");
        assert_eq!(p.routing_text(), "second");
    }
}
