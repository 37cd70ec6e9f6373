//! Both providers' non-streaming answers and error bodies through the gateway's decoders.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llm_gateway::{api::ParsedChat, config::ProviderKind};

fuzz_target!(|data: &[u8]| {
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
});
