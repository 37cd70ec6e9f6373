//! The keyword tier (and the cascade without tier 2) on the bundled config, for any user text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llm_gateway::{api::ParsedChat, config::Config, router};
use std::sync::OnceLock;

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| Config::bundled().unwrap_or_else(|e| panic!("bundled config: {e}")))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let body = serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": text}]}).to_string();
    let chat = ParsedChat::from_slice(body.as_bytes()).unwrap_or_else(|e| panic!("a plain user message must parse: {e:?}"));
    let _ = router::decide(config(), &chat, router::Tier2::Off);
});
