//! The keyword tier (and the cascade without tier 2) on the bundled config, for any user text.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_gateway_fuzz::keyword_tier(data));
