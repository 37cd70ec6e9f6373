//! Both providers' non-streaming answers and error bodies through the gateway's decoders.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_gateway_fuzz::provider_body(data));
