//! The classifier host's request parser (the guest's `parse_request`) and the prompt it builds
//! from what it accepted.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = classifier_guest::parse_request(data) else { return };
    let text = classifier_guest::sanitize(&req.text, req.settings.max_text_chars);
    let labels: Vec<&classifier_guest::Label> = req.labels.iter().collect();
    let _ = classifier_guest::prompt(req.settings.template, &labels, &text);
});
