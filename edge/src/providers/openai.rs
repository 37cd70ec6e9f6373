//! OpenAI and every OpenAI-compatible server (vLLM, llama.cpp, Ollama, TGI): the caller's JSON
//! goes through with only `model` rewritten; responses and stream chunks come back verbatim.

use eventsource_stream::Event;
use serde_json::Value;

use super::{Encoded, StreamError, Translated};
use crate::api::ParsedChat;
use crate::config::Model;
use crate::error::{AttemptError, GatewayError};

pub fn encode(
    model: &Model,
    chat: &ParsedChat,
    api_key: Option<&str>,
) -> Result<Encoded, GatewayError> {
    let mut body = chat.raw.clone();
    body.insert("model".into(), Value::String(model.upstream_model.clone()));
    // The reservation assumed `max_output_tokens` when the caller set no cap: send that cap, so
    // the provider cannot bill past what the budget reserved.
    if !body.contains_key("max_tokens") && !body.contains_key("max_completion_tokens") {
        body.insert(output_cap_field(model).into(), Value::from(model.max_output_tokens));
    }
    let mut headers = Vec::new();
    if let Some(key) = api_key {
        headers.push(("authorization".into(), format!("Bearer {key}")));
    }
    let bytes = serde_json::to_vec(&body).map_err(|e| GatewayError::Internal {
        request_id: String::new(),
        detail: format!("encoding request: {e}"),
    })?;
    Ok((format!("{}/chat/completions", model.base_url), headers, bytes))
}

/// An embeddings request: the caller's object with `model` rewritten, to `{base_url}/embeddings`.
pub fn encode_embeddings(model: &Model, raw: &serde_json::Map<String, Value>, api_key: Option<&str>) -> Result<Encoded, GatewayError> {
    let mut body = raw.clone();
    body.insert("model".into(), Value::String(model.upstream_model.clone()));
    let mut headers = Vec::new();
    if let Some(key) = api_key {
        headers.push(("authorization".into(), format!("Bearer {key}")));
    }
    let bytes = serde_json::to_vec(&body).map_err(|e| GatewayError::Internal { request_id: String::new(), detail: format!("encoding request: {e}") })?;
    Ok((format!("{}/embeddings", model.base_url), headers, bytes))
}

/// An embeddings response, checked for its `data` array and passed on as it came.
pub fn decode_embeddings(body: &[u8]) -> Result<Value, AttemptError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| AttemptError::Malformed(format!("response is not JSON: {e}")))?;
    if !v.get("data").is_some_and(Value::is_array) {
        return Err(AttemptError::Malformed("response has no `data` array".into()));
    }
    Ok(v)
}

/// OpenAI's own API takes `max_completion_tokens` (its reasoning models refuse `max_tokens`);
/// the OpenAI-compatible servers (vLLM, llama.cpp, Ollama, TGI) all read `max_tokens`.
fn output_cap_field(model: &Model) -> &'static str {
    let host = model.base_url.split("://").nth(1).unwrap_or_default().split(['/', ':']).next().unwrap_or_default();
    if host.eq_ignore_ascii_case("api.openai.com") {
        "max_completion_tokens"
    } else {
        "max_tokens"
    }
}

pub fn decode(body: &[u8]) -> Result<Value, AttemptError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| AttemptError::Malformed(format!("response is not JSON: {e}")))?;
    if !v.get("choices").is_some_and(Value::is_array) {
        return Err(AttemptError::Malformed("response has no `choices` array".into()));
    }
    Ok(v)
}

/// Passes chunks through, watching for the end marker, finish reasons and error events.
#[derive(Debug, Default)]
pub struct StreamPassthrough {
    finished: bool,
    done: bool,
}

impl StreamPassthrough {
    pub fn on_event(&mut self, event: &Event) -> Result<Translated, StreamError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(Translated { data: Vec::new(), done: true, native: None });
        }
        if data.is_empty() {
            return Ok(Translated::default());
        }
        let v: Value = serde_json::from_str(data).map_err(|e| StreamError::Malformed(e.to_string()))?;
        if let Some(err) = v.get("error") {
            let msg = err.get("message").and_then(Value::as_str).unwrap_or("unknown error");
            return Err(StreamError::Upstream(msg.to_owned()));
        }
        let has_finish = v
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c.get("finish_reason").is_some_and(|f| !f.is_null())));
        self.finished |= has_finish;
        Ok(Translated { data: vec![data.to_owned()], done: false, native: None })
    }

    /// Complete once `[DONE]` arrived or a choice finished (some servers omit `[DONE]`).
    pub fn complete(&self) -> bool {
        self.done || self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_carries_the_output_cap_the_reservation_assumed() {
        let config = crate::config::Config::bundled().expect("bundled");
        let body = |m: &str, extra: serde_json::Value| {
            let mut req = serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
            req.as_object_mut().expect("object").extend(extra.as_object().cloned().unwrap_or_default());
            let chat = ParsedChat::from_slice(req.to_string().as_bytes()).expect("valid");
            let (_, _, bytes) = encode(&config.models[m], &chat, None).expect("encodes");
            serde_json::from_slice::<Value>(&bytes).expect("json")
        };
        let cloud = body("gpt-4o-mini", serde_json::json!({}));
        assert_eq!(cloud["max_completion_tokens"], config.models["gpt-4o-mini"].max_output_tokens);
        assert!(cloud.get("max_tokens").is_none());
        let local = body("local-llama", serde_json::json!({}));
        assert_eq!(local["max_tokens"], config.models["local-llama"].max_output_tokens);
        // The caller's own cap is kept as sent.
        assert_eq!(body("gpt-4o-mini", serde_json::json!({"max_tokens": 7}))["max_tokens"], 7);
        assert!(body("local-llama", serde_json::json!({"max_completion_tokens": 9})).get("max_tokens").is_none());
    }

    fn ev(data: &str) -> Event {
        Event { event: "message".into(), data: data.into(), id: String::new(), retry: None }
    }

    #[test]
    fn passthrough_tracks_completion_and_errors() {
        let mut t = StreamPassthrough::default();
        let out = t.on_event(&ev(r#"{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#)).expect("ok");
        assert_eq!(out.data.len(), 1);
        assert!(!t.complete());
        t.on_event(&ev(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#)).expect("ok");
        assert!(t.complete());
        assert!(t.on_event(&ev("[DONE]")).expect("ok").done);
        assert!(matches!(t.on_event(&ev(r#"{"error":{"message":"boom"}}"#)), Err(StreamError::Upstream(m)) if m == "boom"));
        assert!(matches!(t.on_event(&ev("{not json")), Err(StreamError::Malformed(_))));
    }

    #[test]
    fn decode_requires_choices() {
        assert!(decode(br#"{"choices":[]}"#).is_ok());
        assert!(matches!(decode(br#"{"object":"x"}"#), Err(AttemptError::Malformed(_))));
        assert!(matches!(decode(b"<html>"), Err(AttemptError::Malformed(_))));
    }
}
