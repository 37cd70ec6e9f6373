//! Anthropic's named SSE events (`message_start`, `content_block_delta`...) translated into
//! OpenAI `chat.completion.chunk` payloads, tool-call argument deltas included.

use std::collections::HashMap;

use eventsource_stream::Event;
use serde_json::{json, Value};

use super::{finish_reason, json_mode, usage};
use crate::api::ParsedChat;
use crate::providers::{StreamError, Translated};

#[derive(Debug)]
pub struct Translator {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    json_mode: bool,
    /// Anthropic content-block index -> OpenAI tool_calls index.
    tool_index: HashMap<u64, usize>,
    usage: Value,
    stopped: bool,
}

impl Translator {
    pub fn new(chat: &ParsedChat, now_s: u64) -> Self {
        Self {
            id: String::new(),
            model: String::new(),
            created: now_s,
            include_usage: chat.include_usage(),
            json_mode: json_mode(chat),
            tool_index: HashMap::new(),
            usage: json!({}),
            stopped: false,
        }
    }

    pub fn complete(&self) -> bool {
        self.stopped
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let mut c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if self.include_usage {
            c["usage"] = Value::Null;
        }
        c.to_string()
    }

    pub fn on_event(&mut self, event: &Event) -> Result<Translated, StreamError> {
        let v: Value = serde_json::from_str(&event.data).map_err(|e| StreamError::Malformed(e.to_string()))?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(event.event.as_str());
        let mut out = Translated::default();
        match kind {
            "message_start" => {
                let msg = v.get("message").unwrap_or(&Value::Null);
                self.id = msg.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
                self.model = msg.get("model").and_then(Value::as_str).unwrap_or("").to_owned();
                merge(&mut self.usage, msg.get("usage"));
                out.data.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" => {
                let block = v.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            out.data.push(self.chunk(json!({"content": text}), None));
                        }
                    }
                    Some("tool_use") if !self.json_mode => {
                        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let n = self.tool_index.len();
                        self.tool_index.insert(index, n);
                        let call = json!({"index": n, "id": block.get("id"), "type": "function",
                            "function": {"name": block.get("name"), "arguments": ""}});
                        out.data.push(self.chunk(json!({"tool_calls": [call]}), None));
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = v.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta.get("text").and_then(Value::as_str).unwrap_or("");
                        out.data.push(self.chunk(json!({"content": text}), None));
                    }
                    Some("input_json_delta") => {
                        let part = delta.get("partial_json").and_then(Value::as_str).unwrap_or("");
                        if !part.is_empty() {
                            if self.json_mode {
                                out.data.push(self.chunk(json!({"content": part}), None));
                            } else {
                                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                                let n = self.tool_index.get(&index).copied().ok_or_else(|| {
                                    StreamError::Malformed(format!("argument delta for unknown block {index}"))
                                })?;
                                let call = json!({"index": n, "function": {"arguments": part}});
                                out.data.push(self.chunk(json!({"tool_calls": [call]}), None));
                            }
                        }
                    }
                    _ => {} // thinking and signature deltas have no OpenAI equivalent
                }
            }
            "message_delta" => {
                merge(&mut self.usage, v.get("usage"));
                if let Some(reason) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    let finish = finish_reason(reason, self.json_mode);
                    out.data.push(self.chunk(json!({}), Some(finish)));
                }
            }
            "message_stop" => {
                self.stopped = true;
                if self.include_usage {
                    let c = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "system_fingerprint": null, "choices": [],
                        "usage": usage(&self.usage),
                    });
                    out.data.push(c.to_string());
                }
                out.done = true;
            }
            "error" => {
                let msg = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("unknown error");
                return Err(StreamError::Upstream(msg.to_owned()));
            }
            _ => {} // ping, content_block_stop, and event types added later
        }
        Ok(out)
    }
}

/// Anthropic reports usage in pieces (input at start, output at the end): keep the latest.
fn merge(into: &mut Value, from: Option<&Value>) {
    if let (Some(obj), Some(Value::Object(from))) = (into.as_object_mut(), from) {
        for (k, v) in from {
            if v.is_number() {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
}
