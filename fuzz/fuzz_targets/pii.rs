//! The PII detector: no panic on any text, and what `redact` returns holds none of what
//! `detect` finds.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_gateway_fuzz::pii(data));
