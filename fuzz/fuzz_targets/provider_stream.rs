//! Both providers' SSE streams through the gateway's decoder and translators: the first byte
//! picks the provider and whether tools/JSON mode are on, the second the chunk size the bytes
//! arrive in, the rest is the stream.
#![no_main]
use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;
use llm_gateway::{api::ParsedChat, config::ProviderKind};

fuzz_target!(|data: &[u8]| {
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
});
