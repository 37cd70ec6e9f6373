use super::*;

fn classes(text: &str) -> Vec<&'static str> {
    detect(text, &PiiClass::ALL).into_iter().map(PiiClass::as_str).collect()
}

/// The adversarial table: personal data in ordinary disguises, and the near misses that must
/// stay clean.
const CASES: &[(&str, &[&str])] = &[
    // cards
    ("my card is 4111 1111 1111 1111, exp 12/29", &["card"]),
    ("4111 1111 1111 1111 12/29", &["card"]),
    ("card 4111 1111 1111 1111 123 (cvv)", &["card"]),
    ("4111111111111111 exp 12/29 cvv 123", &["card"]),
    ("4111.1111.1111.1111", &["card"]),
    ("4111  1111  1111  1111", &["card"]),
    ("4111 - 1111 - 1111 - 1111", &["card"]),
    ("amex 3782 822463 10005", &["card"]),
    ("5500-0000-0000-0004 is the corporate card", &["card"]),
    ("\u{FF14}\u{FF11}\u{FF11}\u{FF11} \u{FF11}\u{FF11}\u{FF11}\u{FF11} \u{FF11}\u{FF11}\u{FF11}\u{FF11} \u{FF11}\u{FF11}\u{FF11}\u{FF11}", &["card"]),
    ("4111\u{200B}1111\u{200B}1111\u{200B}1111", &["card"]),
    ("4111\u{00A0}1111\u{00A0}1111\u{00A0}1111", &["card"]),
    ("6011\u{2013}1111\u{2013}1111\u{2013}1117", &["card"]),
    ("card 4111-1111-1111-1112 fails luhn", &[]),
    ("order number 1234567812345678", &[]),
    ("0000 0000 0000 0000", &[]),
    ("pi is 3.14159265358979323846 and e is 2.718281828459045", &[]),
    ("timestamp 1732972800123 in ms", &[]),
    ("Compute 1234 5678 + 9012 3456", &[]),
    // IBANs
    ("IBAN DE89 3704 0044 0532 0130 00 please", &["iban"]),
    ("GB82WEST12345698765432", &["iban"]),
    ("iban de89 3704 0044 0532 0130 00", &["iban"]),
    ("gb82west12345698765432", &["iban"]),
    ("DE89-3704-0044-0532-0130-00", &["iban"]),
    ("DE 89 370400440532013000", &["iban"]),
    ("pay to FR14 2004 1010 0505 0001 3M02 606 today", &["iban"]),
    ("NL91ABNA0417164300", &["iban"]),
    ("GB82WEST12345698765433 has a bad check", &[]),
    ("AB12 hello world this is some text", &[]),
    ("go12 pieces of the thing we want here", &[]),
    // SSNs
    ("SSN 123-45-6789", &["ssn"]),
    ("ssn 123 45 6789", &["ssn"]),
    ("my SSN is 123456789", &["ssn"]),
    ("social security number: 219099999", &["ssn"]),
    ("SSN 123-45-6789 1985", &["ssn"]),
    ("\u{0661}\u{0662}\u{0663}-\u{0664}\u{0665}-\u{0666}\u{0667}\u{0668}\u{0669}", &["ssn"]),
    ("not an ssn: 666-45-6789 or 123-00-6789 or 123-45-0000", &[]),
    ("the sum 123456789 is odd", &[]),
    ("ISBN 978-3-16-148410-0", &[]),
    ("on 2024-11-30 at 10:00", &[]),
    // e-mail
    ("write to jane.doe+tag@example.co.uk.", &["email"]),
    ("mail jane.doe@gmail.com", &["email"]),
    ("jane [at] gmail [dot] com", &["email"]),
    ("jane(at)gmail(dot)com", &["email"]),
    ("jane {at} mail {dot} corp {dot} com", &["email"]),
    ("reach jane at gmail dot com", &["email"]),
    ("jane @ gmail . com", &["email"]),
    ("\u{FF4A}\u{FF41}\u{FF4E}\u{FF45}\u{FF20}\u{FF47}\u{FF4D}\u{FF41}\u{FF49}\u{FF4C}\u{FF0E}\u{FF43}\u{FF4F}\u{FF4D}", &["email"]),
    ("a@b is not an address, nor is user@localhost", &[]),
    ("the docs use jane@example.com and bob@mail.example", &[]),
    ("look at this dot product", &[]),
    ("meet me at the station at 5", &[]),
    ("compute the dot product of a at index i", &[]),
    ("@decorator at line 5", &[]),
    // phones
    ("call +44 20 7946 0958 tomorrow", &["phone"]),
    ("call (415) 555-2671", &["phone"]),
    ("415-555-2671", &["phone"]),
    ("415.555.2671", &["phone"]),
    ("call me on 415 555 2671", &["phone"]),
    ("my mobile is 4155552671", &["phone"]),
    ("tel: 06 12 34 56 78", &["phone"]),
    ("dial 0044 20 7946 0958", &["phone"]),
    ("the number 4155552671 is even", &[]),
    ("add 250 300 4000 together", &[]),
    ("call the function 3 times with 10 items", &[]),
    // everything else
    ("version 1.2.3 of the api, port 8080, year 2024", &[]),
    ("write a python function that sums a list", &[]),
    ("uuid 123e4567-e89b-12d3-a456-426614174000", &[]),
    ("sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", &[]),
    ("", &[]),
];

#[test]
fn adversarial_table() {
    let failures: Vec<String> = CASES
        .iter()
        .filter(|(text, want)| classes(text) != *want)
        .map(|(text, want)| format!("{text:?}: want {want:?}, got {:?}", classes(text)))
        .collect();
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    assert!(failures.is_empty(), "{} of {} cases wrong:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

#[test]
fn redacts_each_class() {
    let t = "Jane (jane@gmail.com, +1 415 555 2671) paid with 4111 1111 1111 1111; SSN 123-45-6789.";
    let r = redact(t, &PiiClass::ALL);
    assert_eq!(r, "Jane ([REDACTED:email], [REDACTED:phone]) paid with [REDACTED:card]; SSN [REDACTED:ssn].");
}

#[test]
fn redacts_the_normalised_text_when_normalising_changed_it() {
    let r = redact("write to jane [at] gmail [dot] com about \u{FF14}111 1111 1111 1111", &PiiClass::ALL);
    assert_eq!(r, "write to [REDACTED:email] about [REDACTED:card]");
}

#[test]
fn only_enabled_classes() {
    assert_eq!(detect("jane@gmail.com 123-45-6789", &[PiiClass::Ssn]), vec![PiiClass::Ssn]);
}

#[test]
fn non_ascii_and_binary_do_not_panic() {
    let t = "Übersetze: 電話 +81 3-1234-5678 \u{0}\u{fffd}@@@ +++ 4111\u{a0}1111 [at] (dot) @ . at dot";
    let _ = redact(t, &PiiClass::ALL);
    assert_eq!(classes(t), vec!["phone"]);
}

#[test]
fn normalising_ascii_borrows() {
    assert!(matches!(normalize("plain ascii text"), Cow::Borrowed(_)));
}

/// Found by the `pii` fuzz target: redacting must leave nothing the detector would find.
#[test]
fn redaction_leaves_nothing_to_detect() {
    let text = String::from_utf8_lossy(b"I\xb0 d 3704 +\x030044 0532 0130 0 0e89 3704 +\x030044 0\xb532 0130 0 00").into_owned();
    assert_eq!(detect(&text, &PiiClass::ALL), [PiiClass::Phone]);
    let redacted = redact(&text, &PiiClass::ALL);
    assert!(detect(&redacted, &PiiClass::ALL).is_empty(), "{redacted:?}");
    // The digits after the first match were a phone number of their own once it was gone.
    assert_eq!(redacted.matches("[REDACTED:phone]").count(), 2, "{redacted:?}");
}

#[test]
fn redaction_that_needs_more_passes_than_its_budget_masks_the_rest() {
    // Found by the `pii` fuzz target (2026-12-03): each pass uncovered one more phone number,
    // 65 passes in all, and the 64-pass bound returned text that still held one.
    let text = String::from_utf8_lossy(include_bytes!("redact_65_passes.bin")).into_owned();
    assert!(!detect(&text, &PiiClass::ALL).is_empty());
    let redacted = redact(&text, &PiiClass::ALL);
    assert!(detect(&redacted, &PiiClass::ALL).is_empty(), "{redacted:?}");
    assert!(!redacted.bytes().any(|b| b.is_ascii_digit() || b == b'@'), "past the budget every digit and @ is masked");
    assert!(redacted.contains("[REDACTED:phone]"));
}

#[test]
fn redaction_past_its_budget_masks_written_out_addresses_too() {
    // Found by the `pii` fuzz target (2026-12-04): past the pass budget, masking digits and `@`
    // left `name [at] host .cl` forms that normalisation turns back into an e-mail address.
    let text = String::from_utf8_lossy(include_bytes!("redact_masked_at.bin")).into_owned();
    assert!(!detect(&text, &PiiClass::ALL).is_empty());
    let redacted = redact(&text, &PiiClass::ALL);
    assert!(detect(&redacted, &PiiClass::ALL).is_empty(), "{redacted:?}");
}
