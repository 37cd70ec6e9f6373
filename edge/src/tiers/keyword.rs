//! Tier 1: keyword rules from the YAML, matched with aho-corasick over the lowercased prompt,
//! whole words only. Microseconds per request; confidence is the winning capability's share of
//! the matched weight.

use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, BuildError};

use super::TierVerdict;

#[derive(Debug, Clone)]
pub struct KeywordRule {
    pub capability: String,
    pub route: String,
    pub keywords: Vec<String>,
    pub weight: f64,
}

#[derive(Debug)]
pub struct KeywordTier {
    automaton: Option<AhoCorasick>,
    /// Pattern id -> (rule index, pattern starts with a word char, ends with one).
    patterns: Vec<(usize, bool, bool)>,
    rules: Vec<KeywordRule>,
    pub min_confidence: f64,
    pub max_scan_bytes: usize,
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl KeywordTier {
    pub fn empty() -> Self {
        Self { automaton: None, patterns: Vec::new(), rules: Vec::new(), min_confidence: 1.0, max_scan_bytes: 0 }
    }

    pub fn new(rules: Vec<KeywordRule>, min_confidence: f64, max_scan_bytes: usize) -> Result<Self, BuildError> {
        let mut words = Vec::new();
        let mut patterns = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            for k in &r.keywords {
                let k = k.trim().to_lowercase();
                let first = k.chars().next().is_some_and(is_word);
                let last = k.chars().last().is_some_and(is_word);
                patterns.push((i, first, last));
                words.push(k);
            }
        }
        let automaton = if words.is_empty() { None } else { Some(AhoCorasick::new(&words)?) };
        Ok(Self { automaton, patterns, rules, min_confidence, max_scan_bytes })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Scores the prompt (its first `max_scan_bytes`). `None` when no keyword matched.
    pub fn classify(&self, text: &str) -> Option<TierVerdict> {
        let mut end = text.len().min(self.max_scan_bytes);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.score(&text[..end])
    }

    /// Every capability with a keyword anywhere in `text` (the whole text: the residency check
    /// for `local_only` capabilities must not stop at `max_scan_bytes`).
    pub fn capabilities_in(&self, text: &str) -> Vec<String> {
        self.score(text).map(|v| v.scores.into_iter().map(|(c, _)| c).collect()).unwrap_or_default()
    }

    fn score(&self, text: &str) -> Option<TierVerdict> {
        let ac = self.automaton.as_ref()?;
        let hay = text.to_lowercase();
        let mut seen = vec![false; self.patterns.len()];
        let mut scores: BTreeMap<(&str, &str), f64> = BTreeMap::new();
        for m in ac.find_overlapping_iter(&hay) {
            let id = m.pattern().as_usize();
            let (rule, word_start, word_end) = self.patterns[id];
            if seen[id] {
                continue;
            }
            let before = hay[..m.start()].chars().next_back();
            let after = hay[m.end()..].chars().next();
            if (word_start && before.is_some_and(is_word)) || (word_end && after.is_some_and(is_word)) {
                continue;
            }
            seen[id] = true;
            let r = &self.rules[rule];
            *scores.entry((r.capability.as_str(), r.route.as_str())).or_default() += r.weight;
        }
        let total: f64 = scores.values().sum();
        let mut ranked: Vec<((&str, &str), f64)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let ((capability, route), top) = *ranked.first()?;
        Some(TierVerdict {
            capability: capability.to_owned(),
            route: route.to_owned(),
            confidence: top / total,
            scores: ranked.iter().map(|((c, _), s)| ((*c).to_owned(), *s)).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier() -> KeywordTier {
        let rule = |cap: &str, kws: &[&str]| KeywordRule {
            capability: cap.into(),
            route: cap.into(),
            keywords: kws.iter().map(|s| s.to_string()).collect(),
            weight: 1.0,
        };
        KeywordTier::new(
            vec![rule("code", &["sql", "python", "c++", "stack trace"]), rule("translation", &["translate", "übersetze"])],
            0.6,
            16 * 1024,
        )
        .expect("builds")
    }

    #[test]
    fn whole_words_case_insensitive() {
        let t = tier();
        let v = t.classify("Fix this SQL query please").expect("match");
        assert_eq!((v.capability.as_str(), v.confidence), ("code", 1.0));
        assert!(t.classify("the sqlite file").is_none(), "sql inside sqlite is not a word match");
        assert!(t.classify("mysql").is_none());
        assert_eq!(t.classify("I love C++ templates").expect("match").capability, "code");
        assert_eq!(t.classify("ÜBERSETZE das bitte").expect("match").capability, "translation");
    }

    #[test]
    fn mixed_signals_lower_confidence() {
        let v = tier().classify("translate this python stack trace").expect("match");
        assert_eq!(v.capability, "code");
        assert!((v.confidence - 2.0 / 3.0).abs() < 1e-9, "{}", v.confidence);
    }

    #[test]
    fn repeated_keyword_counts_once_and_scan_is_bounded() {
        let t = tier();
        let v = t.classify("sql sql sql translate").expect("match");
        assert!((v.confidence - 0.5).abs() < 1e-9);
        let long = format!("{}translate", "é".repeat(20_000));
        assert!(t.classify(&long).is_none(), "keyword past max_scan_bytes is not scanned");
    }
}
