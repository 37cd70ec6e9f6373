//! The gateway's OpenAI chat-completion chunks (`data: {...}` events ending in `data: [DONE]`,
//! or in an OpenAI-shaped error event) as Anthropic's stream: `message_start`, `ping`, then per
//! content block `content_block_start`, `content_block_delta` (`text_delta` or
//! `input_json_delta`) and `content_block_stop`, then `message_delta` (stop reason and usage)
//! and `message_stop`; a broken stream ends with an `error` event. A stream that is already
//! Anthropic's (an Anthropic model's own events, passed through) goes out as it came.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{json, Value};

use super::{message_id, stop_reason, usage};

#[derive(Debug)]
pub struct Translator {
    model: String,
    started: bool,
    /// Anthropic sends a `ping` after the first block starts (or before the end of an empty one).
    pinged: bool,
    done: bool,
    /// The open content block: its index, and the OpenAI tool-call index for a tool_use block.
    open: Option<(u32, Option<u64>)>,
    next_index: u32,
    /// OpenAI tool-call index to the Anthropic block that carries it.
    tools: HashMap<u64, u32>,
    stop_reason: &'static str,
    usage: Value,
    /// Bytes of an event not yet complete.
    buf: Vec<u8>,
    /// The stream is Anthropic's own events (decided by its first event).
    native: Option<bool>,
    /// How far `buf` has been searched for the blank line that ends an event (so a long event in
    /// many small chunks is scanned once, not once per chunk).
    scanned: usize,
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

impl Translator {
    pub fn new(model: &str) -> Self {
        Self { model: model.to_owned(), started: false, pinged: false, done: false, open: None, next_index: 0, tools: HashMap::new(), stop_reason: "end_turn", usage: json!({}), buf: Vec::new(), native: None, scanned: 0 }
    }

    /// The Anthropic events for the next bytes of the OpenAI stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.buf.extend_from_slice(bytes);
        // Events end with a blank line; each byte is searched once, and what was read is dropped
        // from the buffer once, after the loop.
        let mut start = 0;
        while let Some(end) = self.buf[self.scanned.max(start + 1) - 1..].windows(2).position(|w| w == b"\n\n").map(|i| self.scanned.max(start + 1) - 1 + i) {
            let text = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
            start = end + 2;
            self.scanned = start;
            if self.done {
                continue;
            }
            let native = *self.native.get_or_insert_with(|| text.trim_start().starts_with("event:"));
            let name = text.lines().find_map(|l| l.strip_prefix("event:")).map(str::trim);
            let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
            match (native, name) {
                // Checked, then sent as it came when it is one `event:` line and one JSON `data:`
                // line; JSON across several lines goes out on one; anything else ends the stream.
                (true, Some(name)) => match serde_json::from_str::<Value>(&data.join("\n")) {
                    Ok(v) if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                        self.done = matches!(name, "message_stop" | "error");
                        out.push(match data.as_slice() {
                            [one] => Bytes::from(format!("event: {name}\ndata: {one}\n\n")),
                            _ => event(name, &v),
                        });
                    }
                    _ => self.fail("the provider's stream could not be read", &mut out),
                },
                // The gateway's own end marker, or its error event when the stream broke.
                (true, None) if data.first() == Some(&"[DONE]") || data.is_empty() => {}
                _ if !data.is_empty() => self.on_data(&data.join("\n"), &mut out),
                _ => {}
            }
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        out
    }

    /// The events owed when the OpenAI stream ends: an error if it ended before it finished.
    pub fn finish(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if !self.done {
            self.fail("the stream ended before it finished", &mut out);
        }
        out
    }

    fn on_data(&mut self, data: &str, out: &mut Vec<Bytes>) {
        if data == "[DONE]" {
            self.start(None, out);
            self.ping(out);
            self.close(out);
            // message_start carried no input count (it was not known yet): both are reported here.
            let u = usage(&self.usage);
            out.push(event("message_delta", &json!({"type": "message_delta", "delta": {"stop_reason": self.stop_reason, "stop_sequence": null}, "usage": u})));
            out.push(event("message_stop", &json!({"type": "message_stop"})));
            self.done = true;
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            self.fail("the provider's stream could not be read", out);
            return;
        };
        if let Some(message) = chunk.pointer("/error/message").and_then(Value::as_str) {
            self.fail(message, out);
            return;
        }
        self.start(chunk["id"].as_str(), out);
        if chunk["usage"].is_object() {
            self.usage = chunk["usage"].clone();
        }
        let choice = &chunk["choices"][0];
        if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            if !matches!(self.open, Some((_, None))) {
                self.close(out);
                let index = self.open_block(None);
                out.push(event("content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
                self.ping(out);
            }
            let index = self.open.map_or(0, |(i, _)| i);
            out.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}})));
        }
        for call in choice.pointer("/delta/tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let k = call["index"].as_u64().unwrap_or(0);
            if !self.tools.contains_key(&k) {
                self.close(out);
                let index = self.open_block(Some(k));
                self.tools.insert(k, index);
                let block = json!({"type": "tool_use", "id": call["id"], "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null), "input": {}});
                out.push(event("content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": block})));
                self.ping(out);
            }
            if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str).filter(|a| !a.is_empty()) {
                let index = self.tools[&k];
                out.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}})));
            }
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.stop_reason = stop_reason(finish);
        }
    }

    fn start(&mut self, id: Option<&str>, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({"id": message_id(id), "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}});
        out.push(event("message_start", &json!({"type": "message_start", "message": message})));
    }

    fn ping(&mut self, out: &mut Vec<Bytes>) {
        if !self.pinged {
            self.pinged = true;
            out.push(event("ping", &json!({"type": "ping"})));
        }
    }

    fn open_block(&mut self, tool: Option<u64>) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, tool));
        index
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Some((index, _)) = self.open.take() {
            out.push(event("content_block_stop", &json!({"type": "content_block_stop", "index": index})));
        }
    }

    fn fail(&mut self, message: &str, out: &mut Vec<Bytes>) {
        out.push(event("error", &json!({"type": "error", "error": {"type": "api_error", "message": message}})));
        self.done = true;
    }
}
