//! A fast detector of personal data in prompt text: payment card numbers (Luhn-checked), IBANs
//! (mod-97-checked), US social security numbers, e-mail addresses and phone numbers.
//!
//! One linear pass per class over the bytes, no regex engine (it would add hundreds of KB to the
//! wasm). Checksums keep false positives low: a 16-digit order number is a card only if its
//! Luhn sum is right. Used twice: as a routing signal (a match makes the prompt `sensitive`,
//! which pins it to local models) and to redact the audit log.

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PiiClass {
    Card,
    Iban,
    Ssn,
    Email,
    Phone,
}

impl PiiClass {
    pub const ALL: [PiiClass; 5] = [Self::Card, Self::Iban, Self::Ssn, Self::Email, Self::Phone];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Iban => "iban",
            Self::Ssn => "ssn",
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn find(self, text: &[u8]) -> Vec<Range<usize>> {
        match self {
            Self::Card => cards(text),
            Self::Iban => ibans(text),
            Self::Ssn => ssns(text),
            Self::Email => emails(text),
            Self::Phone => phones(text),
        }
    }
}

/// The classes found in `text`, in `PiiClass` order, each once.
pub fn detect(text: &str, classes: &[PiiClass]) -> Vec<PiiClass> {
    let mut found: Vec<PiiClass> = classes.iter().copied().filter(|c| !c.find(text.as_bytes()).is_empty()).collect();
    found.sort();
    found.dedup();
    found
}

/// `text` with every match replaced by `[REDACTED:<class>]`.
pub fn redact(text: &str, classes: &[PiiClass]) -> String {
    let bytes = text.as_bytes();
    let mut spans: Vec<(Range<usize>, PiiClass)> =
        classes.iter().flat_map(|&c| c.find(bytes).into_iter().map(move |r| (r, c))).collect();
    spans.sort_by_key(|(r, _)| (r.start, std::cmp::Reverse(r.end)));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (r, c) in spans {
        if r.start < at {
            continue; // inside a span already redacted
        }
        // Matches start and end on ASCII bytes, so these are char boundaries.
        out.push_str(&text[at..r.start]);
        out.push_str("[REDACTED:");
        out.push_str(c.as_str());
        out.push(']');
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Runs of digits joined by single spaces or dashes, not inside a longer word.
fn digit_runs(text: &[u8], seps: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !text[i].is_ascii_digit() || (i > 0 && is_word(text[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        while i < text.len() {
            if text[i].is_ascii_digit() {
                i += 1;
                end = i;
            } else if seps.contains(&text[i]) && i + 1 < text.len() && text[i + 1].is_ascii_digit() {
                i += 1;
            } else {
                break;
            }
        }
        if end >= text.len() || !is_word(text[end]) {
            out.push(start..end);
        }
        i = end.max(start + 1);
    }
    out
}

fn digits(text: &[u8], r: &Range<usize>) -> Vec<u8> {
    text[r.clone()].iter().filter(|b| b.is_ascii_digit()).map(|b| b - b'0').collect()
}

pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn cards(text: &[u8]) -> Vec<Range<usize>> {
    digit_runs(text, b" -")
        .into_iter()
        .filter(|r| {
            let d = digits(text, r);
            (13..=19).contains(&d.len()) && d.iter().any(|&x| x != d[0]) && luhn(&d)
        })
        .collect()
}

fn ssns(text: &[u8]) -> Vec<Range<usize>> {
    // ddd-dd-dddd (or spaces), with the SSA's never-issued areas, groups and serials excluded.
    digit_runs(text, b" -")
        .into_iter()
        .filter(|r| {
            let s = &text[r.clone()];
            if s.len() != 11 || s[3] != s[6] || !matches!(s[3], b'-' | b' ') {
                return false;
            }
            let d = digits(text, r);
            let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
            let group = d[3] * 10 + d[4];
            let serial = d[5..].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
            d.len() == 9 && area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
        })
        .collect()
}

fn phones(text: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    // International: "+" then 8 to 15 digits with optional separators.
    for (i, _) in text.iter().enumerate().filter(|(_, &b)| b == b'+') {
        if i > 0 && is_word(text[i - 1]) {
            continue;
        }
        let mut j = i + 1;
        let mut n = 0;
        while j < text.len() && (text[j].is_ascii_digit() || (matches!(text[j], b' ' | b'-' | b'.' | b'(' | b')') && n > 0)) {
            if text[j].is_ascii_digit() {
                n += 1;
            }
            j += 1;
        }
        while j > i && !text[j - 1].is_ascii_digit() {
            j -= 1;
        }
        if (8..=15).contains(&n) && (j >= text.len() || !is_word(text[j])) {
            out.push(i..j);
        }
    }
    // North American: (ddd) ddd-dddd, ddd-ddd-dddd, ddd.ddd.dddd.
    let mut i = 0;
    while i + 12 <= text.len() {
        let w = &text[i..];
        let paren = w.len() >= 14 && w[0] == b'(' && w[4] == b')' && w[5] == b' ' && dd(&w[1..4]) && dd(&w[6..9]) && w[9] == b'-' && dd(&w[10..14]);
        let plain = dd(&w[0..3]) && matches!(w[3], b'-' | b'.') && dd(&w[4..7]) && w[7] == w[3] && dd(&w[8..12]);
        let len = if paren { 14 } else { 12 };
        let bounded = (i == 0 || !is_word(text[i - 1])) && (i + len >= text.len() || !is_word(text[i + len]));
        if (paren || plain) && bounded {
            out.push(i..i + len);
            i += len;
        } else {
            i += 1;
        }
    }
    out
}

fn dd(s: &[u8]) -> bool {
    s.iter().all(u8::is_ascii_digit)
}

fn emails(text: &[u8]) -> Vec<Range<usize>> {
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
    let domain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    let mut out = Vec::new();
    for (at, _) in text.iter().enumerate().filter(|(_, &b)| b == b'@') {
        let mut s = at;
        while s > 0 && local(text[s - 1]) {
            s -= 1;
        }
        let mut e = at + 1;
        while e < text.len() && domain(text[e]) {
            e += 1;
        }
        while e > at + 1 && text[e - 1] == b'.' {
            e -= 1; // a sentence's full stop
        }
        let dom = &text[at + 1..e];
        let tld_ok = dom.iter().rposition(|&b| b == b'.').is_some_and(|d| d > 0 && dom.len() - d > 2 && dom[d + 1..].iter().all(u8::is_ascii_alphabetic));
        if s < at && tld_ok {
            out.push(s..e);
        }
    }
    out
}

fn ibans(text: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 15 <= text.len() {
        let starts = text[i].is_ascii_uppercase() && text[i + 1].is_ascii_uppercase() && dd(&text[i + 2..i + 4]) && (i == 0 || !is_word(text[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        // Country, check digits, then up to 30 alphanumerics, optionally grouped by 4 with spaces.
        let mut j = i;
        let mut chars = Vec::new();
        while j < text.len() && chars.len() < 34 {
            let b = text[j];
            if b.is_ascii_alphanumeric() {
                chars.push(b.to_ascii_uppercase());
                j += 1;
            } else if b == b' ' && j + 1 < text.len() && text[j + 1].is_ascii_alphanumeric() && chars.len() % 4 == 0 {
                j += 1;
            } else {
                break;
            }
        }
        if chars.len() >= 15 && (j >= text.len() || !is_word(text[j])) && iban_ok(&chars) {
            out.push(i..j);
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn iban_ok(chars: &[u8]) -> bool {
    // Move the first four characters to the end, letters to 10..35, then mod 97 must be 1.
    let mut rem: u32 = 0;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        let v = if c.is_ascii_digit() { u32::from(c - b'0') } else { u32::from(c - b'A') + 10 };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(text: &str) -> Vec<&'static str> {
        detect(text, &PiiClass::ALL).into_iter().map(PiiClass::as_str).collect()
    }

    #[test]
    fn table() {
        let cases: &[(&str, &[&str])] = &[
            ("my card is 4111 1111 1111 1111, exp 12/29", &["card"]),
            ("card 4111-1111-1111-1112 fails luhn", &[]),
            ("order number 1234567812345678", &[]),
            ("0000 0000 0000 0000", &[]),
            ("IBAN DE89 3704 0044 0532 0130 00 please", &["iban"]),
            ("GB82WEST12345698765432", &["iban"]),
            ("GB82WEST12345698765433 has a bad check", &[]),
            ("SSN 123-45-6789", &["ssn"]),
            ("not an ssn: 666-45-6789 or 123-00-6789 or 123-45-0000", &[]),
            ("call +44 20 7946 0958 tomorrow", &["phone"]),
            ("call (415) 555-2671", &["phone"]),
            ("415-555-2671", &["phone"]),
            ("write to jane.doe+tag@example.co.uk.", &["email"]),
            ("a@b is not an address, nor is user@localhost", &[]),
            ("version 1.2.3 of the api, port 8080, year 2024", &[]),
            ("write a python function that sums a list", &[]),
            ("", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(classes(text), *want, "{text}");
        }
    }

    #[test]
    fn redacts_each_class() {
        let t = "Jane (jane@example.com, +1 415 555 2671) paid with 4111 1111 1111 1111; SSN 123-45-6789.";
        let r = redact(t, &PiiClass::ALL);
        assert_eq!(r, "Jane ([REDACTED:email], [REDACTED:phone]) paid with [REDACTED:card]; SSN [REDACTED:ssn].");
    }

    #[test]
    fn only_enabled_classes() {
        assert_eq!(detect("jane@example.com 123-45-6789", &[PiiClass::Ssn]), vec![PiiClass::Ssn]);
    }

    #[test]
    fn non_ascii_and_binary_do_not_panic() {
        let t = "Übersetze: 電話 +81 3-1234-5678 \u{0}\u{fffd}@@@ +++ 4111\u{a0}1111";
        let _ = redact(t, &PiiClass::ALL);
        assert_eq!(classes(t), vec!["phone"]);
    }
}
