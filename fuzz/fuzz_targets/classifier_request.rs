//! The classifier host's request parser (the guest's `parse_request`) and the prompt it builds
//! from what it accepted.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_gateway_fuzz::classifier_request(data));
