//! Providers: encode an OpenAI request for a provider, decode its response or stream events back
//! into OpenAI's shapes. No I/O here; `proxy` sends what these build.

pub mod anthropic;
pub mod openai;

use bytes::Bytes;
use eventsource_stream::Event;
use serde_json::Value;

use crate::api::ParsedChat;
use crate::config::Model;
use crate::error::{AttemptError, GatewayError};
use crate::platform::UpstreamRequest;

/// An encoded upstream request: URL, headers (credentials included), body.
pub type Encoded = (String, Vec<(String, String)>, Vec<u8>);

pub use crate::config::ProviderKind;

impl ProviderKind {
    /// Builds the upstream request. Fails only when the request cannot be expressed for this
    /// provider (a client error, not worth a fallback).
    pub fn encode(self, model: &Model, chat: &ParsedChat, api_key: Option<&str>) -> Result<UpstreamRequest, GatewayError> {
        let (url, mut headers, body) = match self {
            Self::OpenAi => openai::encode(model, chat, api_key)?,
            Self::Anthropic => anthropic::encode(model, chat, api_key)?,
        };
        headers.push(("content-type".into(), "application/json".into()));
        headers.push(("accept".into(), if chat.request.stream { "text/event-stream" } else { "application/json" }.into()));
        Ok(UpstreamRequest { url, headers, body: Bytes::from(body) })
    }

    /// Builds the upstream embeddings request. Anthropic has no embeddings API (the config
    /// refuses an Anthropic model of `kind: embedding`, so this is never reached from a route).
    pub fn encode_embeddings(self, model: &Model, raw: &serde_json::Map<String, Value>, api_key: Option<&str>) -> Result<UpstreamRequest, GatewayError> {
        let (url, mut headers, body) = match self {
            Self::OpenAi => openai::encode_embeddings(model, raw, api_key)?,
            Self::Anthropic => return Err(GatewayError::bad_request(format!("`{}` is an Anthropic model, and Anthropic has no embeddings API.", model.name), Some("model"))),
        };
        headers.push(("content-type".into(), "application/json".into()));
        headers.push(("accept".into(), "application/json".into()));
        Ok(UpstreamRequest { url, headers, body: Bytes::from(body) })
    }

    /// Decodes a successful non-streaming body into an OpenAI `chat.completion` object.
    pub fn decode(self, chat: &ParsedChat, body: &[u8], now_s: u64) -> Result<Value, AttemptError> {
        match self {
            Self::OpenAi => openai::decode(body),
            Self::Anthropic => anthropic::decode(chat, body, now_s),
        }
    }

    /// The `message` of an error body, when the provider sent one we can read.
    pub fn error_message(self, body: &[u8]) -> Option<String> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let msg = v.pointer("/error/message").or_else(|| v.get("message"))?;
        msg.as_str().map(str::to_owned)
    }

    pub fn stream_translator(self, chat: &ParsedChat, now_s: u64) -> StreamTranslator {
        match self {
            Self::OpenAi => StreamTranslator::OpenAi(openai::StreamPassthrough::default()),
            Self::Anthropic if chat.anthropic.is_some() => StreamTranslator::AnthropicNative(anthropic::stream::Translator::new(chat, now_s)),
            Self::Anthropic => StreamTranslator::Anthropic(anthropic::stream::Translator::new(chat, now_s)),
        }
    }
}

/// What one upstream SSE event becomes downstream.
#[derive(Debug, Default, PartialEq)]
pub struct Translated {
    /// `data:` payloads to send, in order (without the `data: ` prefix).
    pub data: Vec<String>,
    /// The upstream said the stream is complete.
    pub done: bool,
    /// The upstream event itself, to send as it came instead of `data` (an Anthropic model's
    /// events for a client of `/v1/messages`).
    pub native: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("upstream sent an error event: {0}")]
    Upstream(String),
    #[error("upstream sent a malformed event: {0}")]
    Malformed(String),
}

/// Per-stream state that turns provider events into OpenAI chunks.
#[derive(Debug)]
pub enum StreamTranslator {
    OpenAi(openai::StreamPassthrough),
    Anthropic(anthropic::stream::Translator),
    /// Anthropic's events passed through as they came; the translator still reads them, for
    /// errors and for whether the stream finished.
    AnthropicNative(anthropic::stream::Translator),
}

impl StreamTranslator {
    pub fn on_event(&mut self, event: &Event) -> Result<Translated, StreamError> {
        match self {
            Self::OpenAi(t) => t.on_event(event),
            Self::Anthropic(t) => t.on_event(event),
            Self::AnthropicNative(t) => {
                let done = t.on_event(event)?.done;
                // One `data:` line per line of the event's data, as SSE frames it.
                let data: String = event.data.lines().map(|l| format!("data: {l}\n")).collect();
                Ok(Translated { data: Vec::new(), done, native: Some(format!("event: {}\n{data}\n", event.event)) })
            }
        }
    }

    /// Whether the stream so far is complete enough to end cleanly if the upstream closes now.
    pub fn complete(&self) -> bool {
        match self {
            Self::OpenAi(t) => t.complete(),
            Self::Anthropic(t) | Self::AnthropicNative(t) => t.complete(),
        }
    }
}
