//! A fast detector of personal data in prompt text: payment card numbers (Luhn-checked), IBANs
//! (mod-97-checked), US social security numbers, e-mail addresses and phone numbers.
//!
//! The text is first normalised so that ordinary disguises do not hide a match: full-width and
//! other Unicode digits become ASCII, Unicode spaces and dashes become ASCII ones, invisible
//! characters (zero-width spaces, soft hyphens) are dropped, and obfuscated addresses such as
//! `jane [at] example [dot] com` are rewritten as addresses. Then one linear pass per class
//! runs over the bytes, without a regex engine (it would add hundreds of KB to the wasm).
//!
//! Digits are read as *chains*: groups of digits joined by short runs of spaces, dashes or dots
//! (`4111.1111  1111-1111 12/29`). A card is any run of consecutive groups of a card's shape
//! whose Luhn sum is right, so an expiry or CVV written after the number does not hide it. Forms
//! that ordinary numbers share (nine bare digits, a ten-digit number, digits in groups of 3-3-4
//! with spaces) count as an SSN or a phone number only after a cue word such as "ssn" or "call"
//! shortly before them. Checksums and cues keep false positives low; `tests::table` holds the
//! adversarial cases, positives and near misses.
//!
//! Used twice: as a routing signal (a match makes the prompt `sensitive`, which pins it to local
//! models) and to redact the audit log (the normalised text is redacted when normalising changed
//! it).

use std::borrow::Cow;
use std::ops::Range;

pub use crate::config::PiiClass;

impl PiiClass {
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
    let text = normalize(text);
    let mut found: Vec<PiiClass> = classes.iter().copied().filter(|c| !c.find(text.as_bytes()).is_empty()).collect();
    found.sort();
    found.dedup();
    found
}

/// `text` with every match replaced by `[REDACTED:<class>]`. When normalising changed the text
/// (Unicode digits, obfuscated addresses), the normalised text is what is redacted and returned.
///
/// Repeated until the detector finds nothing: a match can hide another (a run of digits read as
/// one chain that is not a phone number holds a shorter run that is), which shows only once the
/// first is gone (found by the `pii` fuzz target). Every pass removes at least one match, and
/// every match holds a digit or an `@`, none of which a placeholder brings back, so it ends, but
/// text built to uncover one match per pass would take a pass per match, each over the whole
/// text. So after `REDACT_PASSES` passes whatever is still found is not looked for further: every
/// digit and `@` left is masked as `#`, and if even that leaves a match the whole text is replaced
/// (fails closed: nothing the detector could find is left).
pub fn redact(text: &str, classes: &[PiiClass]) -> String {
    let mut out = normalize(text).into_owned();
    for _ in 0..REDACT_PASSES {
        match redact_once(&out, classes) {
            Some(next) => out = next,
            None => return out,
        }
    }
    if redact_once(&out, classes).is_none() {
        return out;
    }
    // Masked after normalising, so that written-out forms (`name [at] host`) are masked as `@`.
    let masked: String = normalize(&out).chars().map(|c| if c.is_ascii_digit() || c == '@' { '#' } else { c }).collect();
    if redact_once(&masked, classes).is_none() {
        return masked;
    }
    // Still something to find: nothing of the text is kept.
    format!("[REDACTED:pii, {} bytes]", text.len())
}

/// How many redaction passes `redact` makes before it masks what is left.
const REDACT_PASSES: usize = 64;

/// One pass of `redact` over normalised text; `None` when it holds no match.
fn redact_once(text: &str, classes: &[PiiClass]) -> Option<String> {
    let text = normalize(text);
    let bytes = text.as_bytes();
    let mut spans: Vec<(Range<usize>, PiiClass)> =
        classes.iter().flat_map(|&c| c.find(bytes).into_iter().map(move |r| (r, c))).collect();
    if spans.is_empty() {
        return None;
    }
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
    Some(out)
}

/// Unicode digits, spaces and dashes as ASCII, invisible characters removed, obfuscated e-mail
/// addresses rewritten. Borrowed when nothing changed.
pub fn normalize(text: &str) -> Cow<'_, str> {
    let chars = if text.is_ascii() { Cow::Borrowed(text) } else { Cow::Owned(text.chars().filter_map(fold_char).collect()) };
    match deobfuscate_emails(&chars) {
        Some(s) => Cow::Owned(s),
        None => chars,
    }
}

/// Zero code points of the Unicode decimal digit blocks a prompt may plausibly use.
const DIGIT_ZEROS: [u32; 24] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66, 0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040,
    0x17E0, 0x1810, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6,
];

fn fold_char(c: char) -> Option<char> {
    let u = c as u32;
    if c.is_ascii() {
        return Some(c);
    }
    if (0xFF01..=0xFF5E).contains(&u) {
        return char::from_u32(u - 0xFEE0); // full-width ASCII
    }
    if let Some(zero) = DIGIT_ZEROS.iter().find(|&&z| (z..z + 10).contains(&u)) {
        return char::from_digit(u - zero, 10);
    }
    match u {
        0x00AD | 0x180E | 0x200B..=0x200D | 0x2060 | 0xFEFF => None,
        0x00A0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000 => Some(' '),
        0x2010..=0x2015 | 0x2212 | 0xFE58 | 0xFE63 => Some('-'),
        0x3002 | 0xFF61 => Some('.'),
        _ => Some(c),
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn dd(s: &[u8]) -> bool {
    s.iter().all(u8::is_ascii_digit)
}

/// A chain of digit groups: `groups[i]` is a maximal run of ASCII digits; `seps[i]` the bytes
/// between group `i` and `i + 1`.
struct Chain<'a> {
    text: &'a [u8],
    groups: Vec<Range<usize>>,
}

impl Chain<'_> {
    fn sep(&self, i: usize) -> &[u8] {
        &self.text[self.groups[i].end..self.groups[i + 1].start]
    }

    fn len(&self, i: usize) -> usize {
        self.groups[i].len()
    }

    fn digits(&self, from: usize, to: usize) -> Vec<u8> {
        self.groups[from..to].iter().flat_map(|g| self.text[g.clone()].iter().map(|b| b - b'0')).collect()
    }

    fn span(&self, from: usize, to: usize) -> Range<usize> {
        self.groups[from].start..self.groups[to - 1].end
    }

    fn has_dot(&self, from: usize, to: usize) -> bool {
        (from..to.saturating_sub(1)).any(|i| self.sep(i).contains(&b'.'))
    }
}

/// Chains of digit groups joined by one to three of ` `, `-`, `.`, not inside a longer word:
/// a chain starts at a digit not preceded by a letter or digit, and a last group glued to
/// letters (`12th`) is dropped.
fn chains(text: &[u8]) -> Vec<Chain<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !text[i].is_ascii_digit() || (i > 0 && is_word(text[i - 1])) {
            i += 1;
            continue;
        }
        let mut groups = Vec::new();
        loop {
            let start = i;
            while i < text.len() && text[i].is_ascii_digit() {
                i += 1;
            }
            groups.push(start..i);
            let mut j = i;
            while j < text.len() && j - i < 3 && matches!(text[j], b' ' | b'-' | b'.') {
                j += 1;
            }
            if j > i && j < text.len() && text[j].is_ascii_digit() {
                i = j;
            } else {
                break;
            }
        }
        if i < text.len() && is_word(text[i]) {
            groups.pop();
        }
        if !groups.is_empty() {
            out.push(Chain { text, groups });
        }
        while i < text.len() && is_word(text[i]) {
            i += 1;
        }
    }
    out
}

/// True when one of `cues` occurs in the `window` bytes before `at` (case-insensitive).
fn cued(text: &[u8], at: usize, window: usize, cues: &[&str]) -> bool {
    let before = text[at.saturating_sub(window)..at].to_ascii_lowercase();
    cues.iter().any(|c| before.windows(c.len()).any(|w| w == c.as_bytes()))
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

/// 13-19 digits, a major industry identifier of 2-6 (every card network; this also keeps
/// millisecond timestamps, which start with 1, from passing), not one repeated digit, Luhn.
fn card_digits_ok(d: &[u8]) -> bool {
    (13..=19).contains(&d.len()) && (2..=6).contains(&d[0]) && d.iter().any(|&x| x != d[0]) && luhn(d)
}

/// A card is one group of 13-19 digits, or consecutive groups of 3-6 digits (4-4-4-4, 4-6-5,
/// 4-4-4-4-3) adding up to 13-19, with a valid Luhn sum. Dotted chains count only in groups, so
/// the digits after a decimal point are never a card.
fn cards(text: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for c in chains(text) {
        let n = c.groups.len();
        let mut i = 0;
        while i < n {
            let mut found = None;
            if c.len(i) >= 13 && !c.has_dot(i.saturating_sub(1), (i + 2).min(n)) && card_digits_ok(&c.digits(i, i + 1)) {
                found = Some(i + 1);
            }
            let mut total = 0;
            let mut j = i;
            while found.is_none() && j < n && (3..=6).contains(&c.len(j)) && total + c.len(j) <= 19 {
                total += c.len(j);
                j += 1;
                if j - i >= 2 && total >= 13 && card_digits_ok(&c.digits(i, j)) {
                    found = Some(j);
                }
            }
            match found {
                Some(end) => {
                    out.push(c.span(i, end));
                    i = end;
                }
                None => i += 1,
            }
        }
    }
    out
}

const SSN_CUES: [&str; 6] = ["ssn", "social security", "social sec", "soc sec", "soc. sec", "ss#"];

fn ssn_ok(d: &[u8]) -> bool {
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = d[3] * 10 + d[4];
    let serial = d[5..9].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// `ddd-dd-dddd` or `ddd dd dddd` anywhere in a chain (other digits may follow), with the SSA's
/// never-issued areas, groups and serials excluded; nine bare digits only after an SSN cue.
fn ssns(text: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for c in chains(text) {
        for i in 0..c.groups.len() {
            let grouped = i + 2 < c.groups.len()
                && (c.len(i), c.len(i + 1), c.len(i + 2)) == (3, 2, 4)
                && c.sep(i) == c.sep(i + 1)
                && matches!(c.sep(i), b"-" | b" ");
            if grouped && ssn_ok(&c.digits(i, i + 3)) {
                out.push(c.span(i, i + 3));
            } else if c.len(i) == 9 && cued(text, c.groups[i].start, 40, &SSN_CUES) && ssn_ok(&c.digits(i, i + 1)) {
                out.push(c.span(i, i + 1));
            }
        }
    }
    out
}

const PHONE_CUES: [&str; 14] =
    ["phone", "call", "tel:", "tel.", "tel ", "mobile", "cell", "whatsapp", "text me", "sms", "fax", "reach me", "contact", "ring me"];

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
    // North American with parentheses: (ddd) ddd-dddd.
    let mut i = 0;
    while i + 14 <= text.len() {
        let w = &text[i..i + 14];
        let paren = w[0] == b'(' && w[4] == b')' && w[5] == b' ' && dd(&w[1..4]) && dd(&w[6..9]) && w[9] == b'-' && dd(&w[10..14]);
        if paren && (i == 0 || !is_word(text[i - 1])) && (i + 14 >= text.len() || !is_word(text[i + 14])) {
            out.push(i..i + 14);
            i += 14;
        } else {
            i += 1;
        }
    }
    for c in chains(text) {
        let n = c.groups.len();
        let total: usize = c.groups.iter().map(Range::len).sum();
        let start = c.groups[0].start;
        // ddd-ddd-dddd or ddd.ddd.dddd: a North American number without any cue.
        let nanp = n == 3 && (c.len(0), c.len(1), c.len(2)) == (3, 3, 4) && c.sep(0) == c.sep(1) && matches!(c.sep(0), b"-" | b".");
        // "00" and a country code: international without the "+".
        let intl = text[start..].starts_with(b"00") && matches!(text.get(start + 2), Some(b'1'..=b'9')) && (10..=17).contains(&total);
        // Spaced or bare national numbers, after a cue word: "call me on 415 555 2671", "tel 0612345678".
        let cued_national = (9..=15).contains(&total) && cued(text, start, 40, &PHONE_CUES);
        if nanp || intl || cued_national {
            out.push(c.span(0, n));
        }
    }
    out
}

/// Reserved and documentation domains (RFC 2606, RFC 6761): addresses there are nobody's.
fn reserved_domain(domain: &[u8]) -> bool {
    let d = domain.to_ascii_lowercase();
    ["example.com", "example.net", "example.org", "localhost"].iter().any(|r| d == r.as_bytes())
        || [".example", ".test", ".invalid", ".localhost", ".example.com", ".example.net", ".example.org"].iter().any(|s| d.ends_with(s.as_bytes()))
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
        if s < at && tld_ok && !reserved_domain(dom) {
            out.push(s..e);
        }
    }
    out
}

/// An "at" or "dot" written out to fool address scrapers, at `i`: returns its length.
/// Bracketed forms (`[at]`, `(dot)`, `{at}`, `<dot>`, with optional inner spaces) and a spaced
/// `@`/`.` always count; the bare words `at`/`dot` only when `words` is set.
fn obfuscated(text: &[u8], i: usize, word: &[u8], sym: u8, words: bool) -> Option<usize> {
    let rest = &text[i..];
    let open = rest.first()?;
    if let Some(close) = match open {
        b'[' => Some(b']'),
        b'(' => Some(b')'),
        b'{' => Some(b'}'),
        b'<' => Some(b'>'),
        _ => None,
    } {
        let mut j = 1;
        while rest.get(j) == Some(&b' ') {
            j += 1;
        }
        if rest.get(j..j + word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word)) || rest.get(j) == Some(&sym) {
            let mut k = j + if rest.get(j) == Some(&sym) { 1 } else { word.len() };
            while rest.get(k) == Some(&b' ') {
                k += 1;
            }
            if rest.get(k) == Some(&close) {
                return Some(k + 1);
            }
        }
        return None;
    }
    if words && rest.len() > word.len() + 1 && rest[..word.len()].eq_ignore_ascii_case(word) && !is_word(rest[word.len()]) {
        return Some(word.len());
    }
    None
}

/// Top-level domains accepted after a bare `dot` (none of them an English word).
const BARE_TLDS: [&str; 26] = [
    "com", "org", "net", "edu", "gov", "io", "co", "uk", "de", "fr", "es", "nl", "ca", "au", "jp", "cn", "ru", "br", "ch", "se", "dk", "fi", "pl", "ie",
    "info", "biz",
];

/// Rewrites `name [at] example [dot] com`, `name(at)example(dot)com`, `name @ example . com`
/// and `name at example dot com` as `name@example.com`. `None` when there is nothing to rewrite.
fn deobfuscate_emails(text: &str) -> Option<String> {
    let b = text.as_bytes();
    // Runs on every string a request carries: a quick look without allocating first.
    if !(b.windows(2).any(|w| w.eq_ignore_ascii_case(b"at")) || b.windows(3).any(|w| w == b" @ ")) {
        return None;
    }
    let label = |s: &[u8]| s.iter().take_while(|&&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_').count();
    let local = |s: &[u8]| s.iter().rev().take_while(|&&c| c.is_ascii_alphanumeric() || b"._%+-".contains(&c)).count();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut changed = false;
    'outer: while i < b.len() {
        // A separator after a local part: spaces, then an obfuscated or spaced "at".
        if b[i] == b' ' || matches!(b[i], b'[' | b'(' | b'{' | b'<') {
            let lp = local(&out);
            if lp > 0 {
                let mut j = i;
                while b.get(j) == Some(&b' ') {
                    j += 1;
                }
                for words in [false, true] {
                    let at_len = if b.get(j) == Some(&b'@') && j > i { Some(1) } else { obfuscated(b, j, b"at", b'@', words) };
                    let Some(at_len) = at_len else { continue };
                    if words && j == i {
                        continue; // a bare "at" needs spaces around it
                    }
                    let mut k = j + at_len;
                    while b.get(k) == Some(&b' ') {
                        k += 1;
                    }
                    // domain: label (dot label)+, the last label alphabetic, 2+ letters
                    let mut dom = Vec::new();
                    let mut labels = 0;
                    let mut last_alpha = false;
                    let mut last = 0..0;
                    loop {
                        let n = label(&b[k..]);
                        if n == 0 {
                            break;
                        }
                        dom.extend_from_slice(&b[k..k + n]);
                        labels += 1;
                        last_alpha = n >= 2 && b[k..k + n].iter().all(u8::is_ascii_alphabetic);
                        last = k..k + n;
                        k += n;
                        let mut m = k;
                        while b.get(m) == Some(&b' ') {
                            m += 1;
                        }
                        let dot = if b.get(m) == Some(&b'.') && (m > k || words || at_len > 1) {
                            Some(1)
                        } else {
                            obfuscated(b, m, b"dot", b'.', words).filter(|_| !words || m > k)
                        };
                        let Some(dot_len) = dot else { break };
                        let mut after = m + dot_len;
                        while b.get(after) == Some(&b' ') {
                            after += 1;
                        }
                        if label(&b[after..]) == 0 {
                            break;
                        }
                        dom.push(b'.');
                        k = after;
                    }
                    // Bare words ("at this dot product") also need a common top-level domain.
                    let tld_ok = !words || BARE_TLDS.iter().any(|t| b[last.clone()].eq_ignore_ascii_case(t.as_bytes()));
                    if labels >= 2 && last_alpha && tld_ok && dom.last() != Some(&b'.') {
                        out.push(b'@');
                        out.extend_from_slice(&dom);
                        i = k;
                        changed = true;
                        continue 'outer;
                    }
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    // Only ASCII bytes were replaced, between ASCII bytes, so the result is still UTF-8.
    changed.then(|| String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// IBANs: two letters, two check digits, then 11-30 letters or digits, in either case, written
/// solid, in the printed groups of four, or (when the rest is all digits) with any single spaces
/// or dashes; the longest prefix that passes mod 97 counts.
fn ibans(text: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 15 <= text.len() {
        let starts = text[i].is_ascii_alphabetic() && text[i + 1].is_ascii_alphabetic() && (i == 0 || !is_word(text[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        // Collect characters across separators, remembering where each group ends.
        let mut j = i;
        let mut chars = Vec::new();
        let mut ends = Vec::new(); // (chars so far, byte end) at each group end
        let mut group_lens = Vec::new();
        let mut group = 0;
        while j < text.len() && chars.len() < 34 {
            let b = text[j];
            if b.is_ascii_alphanumeric() {
                chars.push(b.to_ascii_uppercase());
                group += 1;
                j += 1;
            } else if matches!(b, b' ' | b'-') && j + 1 < text.len() && text[j + 1].is_ascii_alphanumeric() && group > 0 {
                ends.push((chars.len(), j));
                group_lens.push(group);
                group = 0;
                j += 1;
            } else {
                break;
            }
        }
        if group > 0 {
            ends.push((chars.len(), j));
            group_lens.push(group);
        }
        let mut found = None;
        if chars.len() >= 4 && dd(&chars[2..4]) {
            for (k, &(n, end)) in ends.iter().enumerate().rev() {
                if !(15..=34).contains(&n) || (end < text.len() && is_word(text[end])) {
                    continue;
                }
                let body = &chars[4..n];
                // Groups of four (the last shorter), one solid word, "DE 89 ..." with digits after,
                // or any spacing when everything after the country code is digits.
                let printed = group_lens[..=k].iter().take(k).all(|&g| g == 4) || k == 0;
                let loose = dd(body) || (group_lens[0] == 2 && group_lens[1..=k].iter().take(k.saturating_sub(1)).all(|&g| g == 4));
                if (printed || loose) && iban_ok(&chars[..n]) {
                    found = Some(end);
                    break;
                }
            }
        }
        match found {
            Some(end) => {
                out.push(i..end);
                i = end;
            }
            None => i += 1,
        }
    }
    out
}

fn iban_ok(chars: &[u8]) -> bool {
    // Move the first four characters to the end, letters to 10..35, then mod 97 must be 1.
    if !chars[..2].iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        let v = if c.is_ascii_digit() { u32::from(c - b'0') } else { u32::from(c - b'A') + 10 };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

#[cfg(test)]
mod tests;
