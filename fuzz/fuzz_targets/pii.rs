//! The PII detector: no panic on any text, and what `redact` returns holds none of what
//! `detect` finds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use llm_gateway::config::PiiClass;
use llm_gateway::policy::pii;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = pii::normalize(&text);
    let found = pii::detect(&text, &PiiClass::ALL);
    let redacted = pii::redact(&text, &PiiClass::ALL);
    let left = pii::detect(&redacted, &PiiClass::ALL);
    assert!(left.is_empty(), "redaction left {left:?} in {redacted:?} (found {found:?})");
});
