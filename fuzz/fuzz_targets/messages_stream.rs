//! OpenAI chunks through the translator to Anthropic's stream events.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_gateway_fuzz::messages_stream(data));
