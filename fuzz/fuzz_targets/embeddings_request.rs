//! The embeddings request parser, the residency scan, the token estimate and the target.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_gateway_fuzz::embeddings_request(data));
