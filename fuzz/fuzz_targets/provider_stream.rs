//! Both providers' SSE streams through the gateway's decoder and translators: the first byte
//! picks the provider and whether tools/JSON mode are on, the second the chunk size the bytes
//! arrive in, the rest is the stream.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_gateway_fuzz::provider_stream(data));
