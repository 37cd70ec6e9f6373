//! An Anthropic Messages body through its translation and the router.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_gateway_fuzz::messages_request(data));
