//! The chat request parser, then everything the gateway derives from a parsed request before a
//! provider sees it: routing text, token and media estimates, the residency scan, the router.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llm_gateway::{api::ParsedChat, config::Config, policy, router};
use std::sync::OnceLock;

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| Config::bundled().unwrap_or_else(|e| panic!("bundled config: {e}")))
}

fuzz_target!(|data: &[u8]| {
    let Ok(chat) = ParsedChat::from_slice(data) else { return };
    let _ = chat.routing_text();
    let _ = policy::cost::estimate_prompt_tokens(&chat.request);
    let _ = policy::media::media_of(&chat.request);
    let _ = policy::sensitivity(config(), &chat);
    let _ = router::decide(config(), &chat, router::Tier2::Off);
});
