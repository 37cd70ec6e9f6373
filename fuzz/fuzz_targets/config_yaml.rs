//! The YAML config validator (what a KV config replacement goes through).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_gateway_fuzz::config_yaml(data));
