//! What each fuzz target does with its input, as plain functions: the libFuzzer binaries
//! (`fuzz_targets/`) call them, and so does the stable smoke test that CI runs
//! (`tests/fuzz_smoke.rs`, which replays the committed corpus and mutates it for a few seconds).
//! Each panics on a finding and returns normally otherwise.

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use llm_gateway::config::{Config, PiiClass, ProviderKind};
use llm_gateway::{api::ParsedChat, policy, router};
use std::sync::OnceLock;

/// A target: its cargo-fuzz name (the corpus directory it reads) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 10] = [
    ("chat_request", chat_request),
    ("classifier_request", classifier_request),
    ("config_yaml", config_yaml),
    ("embeddings_request", embeddings_request),
    ("keyword_tier", keyword_tier),
    ("messages_request", messages_request),
    ("messages_stream", messages_stream),
    ("pii", pii),
    ("provider_body", provider_body),
    ("provider_stream", provider_stream),
];

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| Config::bundled().unwrap_or_else(|e| panic!("bundled config: {e}")))
}

/// The chat request parser, then everything the gateway derives from a parsed request before a
/// provider sees it: routing text, token and media estimates, the residency scan, the router.
pub fn chat_request(data: &[u8]) {
    let Ok(chat) = ParsedChat::from_slice(data) else { return };
    let _ = chat.routing_text();
    let _ = policy::cost::estimate_prompt_tokens(&chat.request);
    let _ = policy::media::media_of(&chat.request);
    let _ = policy::sensitivity(config(), &chat);
    let _ = router::decide(config(), &chat, router::Tier2::Off);
}

/// The embeddings request parser, then what the gateway derives from it before a provider sees
/// it: the residency scan, the token estimate and the target. An accepted request holds 1 to
/// 2,048 inputs, none of them an empty string.
pub fn embeddings_request(data: &[u8]) {
    use llm_gateway::api::embeddings::{Input, ParsedEmbeddings, MAX_INPUTS};
    let Ok(req) = ParsedEmbeddings::from_slice(data) else { return };
    let _ = policy::sensitivity_of(config(), &req.raw);
    match &req.input {
        Input::Text(texts) => {
            assert!(!texts.is_empty() && texts.len() <= MAX_INPUTS && texts.iter().all(|t| !t.is_empty()), "accepted {} inputs", texts.len());
            let _ = policy::cost::estimate_input_tokens(texts);
        }
        Input::Tokens { count } => assert!(*count > 0, "accepted no token ids"),
    }
    let _ = router::embeddings_target(config(), &req.model);
}

/// An Anthropic Messages body through its translation to the chat request, then what the
/// gateway derives from that before a provider sees it.
pub fn messages_request(data: &[u8]) {
    let Ok(chat) = llm_gateway::api::messages::to_chat(data) else { return };
    let _ = chat.routing_text();
    let _ = policy::cost::estimate_prompt_tokens(&chat.request);
    let _ = policy::sensitivity(config(), &chat);
    let _ = router::decide(config(), &chat, router::Tier2::Off);
}

/// Any bytes as the gateway's OpenAI chunk stream, in chunks of a fuzzed size, through the
/// translator to Anthropic's events: every event it writes is `event: NAME` and one JSON
/// `data:` line, and the stream ends with `message_stop` or `error`.
pub fn messages_stream(data: &[u8]) {
    let Some((&size, body)) = data.split_first() else { return };
    let mut t = llm_gateway::api::messages::stream::Translator::new("m");
    let mut out = Vec::new();
    for chunk in body.chunks(usize::from(size).max(1)) {
        out.extend(t.feed(chunk));
    }
    out.extend(t.finish());
    let mut last = String::new();
    for e in &out {
        let text = std::str::from_utf8(e).expect("events are UTF-8");
        let mut lines = text.strip_suffix("\n\n").expect("an event ends with a blank line").lines();
        let name = lines.next().and_then(|l| l.strip_prefix("event: ")).expect("event: NAME first");
        let data = lines.next().and_then(|l| l.strip_prefix("data: ")).expect("then data:");
        assert!(lines.next().is_none(), "one data line: {text:?}");
        serde_json::from_str::<serde_json::Value>(data).expect("data is JSON");
        last = name.to_owned();
    }
    assert!(last == "message_stop" || last == "error", "the stream ended with {last:?}");
}

/// The classifier host's request parser (the guest's `parse_request`) and the prompt it builds
/// from what it accepted.
pub fn classifier_request(data: &[u8]) {
    let Ok(req) = classifier_guest::parse_request(data) else { return };
    let text = classifier_guest::sanitize(&req.text, req.settings.max_text_chars);
    let labels: Vec<&classifier_guest::Label> = req.labels.iter().collect();
    let _ = classifier_guest::prompt(req.settings.template, &labels, &text);
}

/// The YAML config validator (what a KV config replacement goes through).
pub fn config_yaml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_yaml(text);
    }
}

/// The keyword tier (and the cascade without tier 2) on the bundled config, for any user text.
pub fn keyword_tier(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let body = serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": text}]}).to_string();
    let chat = ParsedChat::from_slice(body.as_bytes()).unwrap_or_else(|e| panic!("a plain user message must parse: {e:?}"));
    let _ = router::decide(config(), &chat, router::Tier2::Off);
}

/// The PII detector: no panic on any text, and what `redact` returns holds none of what
/// `detect` finds.
pub fn pii(data: &[u8]) {
    use policy::pii;
    let text = String::from_utf8_lossy(data);
    let _ = pii::normalize(&text);
    let found = pii::detect(&text, &PiiClass::ALL);
    let redacted = pii::redact(&text, &PiiClass::ALL);
    let left = pii::detect(&redacted, &PiiClass::ALL);
    assert!(left.is_empty(), "redaction left {left:?} in {redacted:?} (found {found:?})");
}

/// Both providers' non-streaming answers and error bodies through the gateway's decoders.
pub fn provider_body(data: &[u8]) {
    let [mode, body @ ..] = data else { return };
    let provider = if mode & 1 == 0 { ProviderKind::OpenAi } else { ProviderKind::Anthropic };
    let req = if mode & 2 == 0 {
        serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    } else {
        serde_json::json!({"model": "m", "response_format": {"type": "json_object"}, "messages": [{"role": "user", "content": "hi"}]})
    };
    let Ok(chat) = ParsedChat::from_slice(req.to_string().as_bytes()) else { return };
    let _ = provider.decode(&chat, body, 0);
    let _ = provider.error_message(body);
}

/// Both providers' SSE streams through the gateway's decoder and translators: the first byte
/// picks the provider and whether tools/JSON mode are on, the second the chunk size the bytes
/// arrive in, the rest is the stream.
pub fn provider_stream(data: &[u8]) {
    let [mode, chunk, body @ ..] = data else { return };
    let provider = if mode & 1 == 0 { ProviderKind::OpenAi } else { ProviderKind::Anthropic };
    let mut req = serde_json::json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]});
    if mode & 2 != 0 {
        req["tools"] = serde_json::json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    }
    if mode & 4 != 0 {
        req["response_format"] = serde_json::json!({"type": "json_object"});
    }
    let Ok(chat) = ParsedChat::from_slice(req.to_string().as_bytes()) else { return };
    let size = usize::from(*chunk).max(1);
    let chunks: Vec<Result<Bytes, std::io::Error>> = body.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let mut translator = provider.stream_translator(&chat, 0);
    futures::executor::block_on(async {
        let mut events = futures::stream::iter(chunks).eventsource();
        while let Some(event) = events.next().await {
            let Ok(event) = event else { break };
            if translator.on_event(&event).is_err() {
                break;
            }
        }
    });
    let _ = translator.complete();
}
