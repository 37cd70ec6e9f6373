//! The chat request parser, then everything the gateway derives from a parsed request before a
//! provider sees it: routing text, token and media estimates, the residency scan, the router.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_gateway_fuzz::chat_request(data));
