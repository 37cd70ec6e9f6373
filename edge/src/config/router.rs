//! `router:`: the three tiers' settings, each checked against the capabilities and routes.

use super::raw::RawConfig;
use super::{is_loopback_url, is_secret_name, ClassifierLabel, ClassifierTierConfig, Problems};
use crate::tiers::intents::{EmbeddingTierConfig, Intent};
use crate::tiers::keyword::{KeywordRule, KeywordTier};

pub(super) fn validate_embedding(p: &mut Problems, raw: &RawConfig, caps: &[&String], routes: &[&String]) -> Option<EmbeddingTierConfig> {
    let e = raw.router.embedding.as_ref()?;
    let at = "router.embedding";
    let model_file = match e.model.as_deref() {
        None | Some("int8") => "model-int8.onnx".to_owned(),
        Some("f32") => "model-f32.onnx".to_owned(),
        Some(f) if f.ends_with(".onnx") && is_file_name(f) => f.to_owned(),
        Some(f) => {
            p.push(format!("{at}.model"), format!("\"{f}\" is not int8, f32 or an .onnx file name"));
            String::new()
        }
    };
    let mut file = |field: &str, v: Option<&String>, default: &str| -> String {
        let v = v.cloned().unwrap_or_else(|| default.to_owned());
        if !is_file_name(&v) {
            p.push(format!("{at}.{field}"), format!("\"{v}\" is not a plain file name"));
        }
        v
    };
    let tokenizer_file = file("tokenizer", e.tokenizer.as_ref(), "tokenizer.json");
    let intents_file = file("intents_file", e.intents_file.as_ref(), "intents.bin");
    let unit = |p: &mut Problems, field: String, v: f64| {
        if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
            p.push(field, "must be between 0 and 1");
        }
    };
    let min_confidence = e.min_confidence.unwrap_or(0.5);
    unit(p, format!("{at}.min_confidence"), min_confidence);
    let min_margin = e.min_margin.unwrap_or(0.0);
    unit(p, format!("{at}.min_margin"), min_margin);
    let max_tokens = e.max_tokens.unwrap_or(128);
    if !(1..=256).contains(&max_tokens) {
        p.push(format!("{at}.max_tokens"), "must be between 1 and 256 (the model's limit)");
    }
    let tail_tokens = e.tail_tokens.unwrap_or(16);
    if tail_tokens > max_tokens / 2 {
        p.push(format!("{at}.tail_tokens"), format!("must be at most half of max_tokens ({max_tokens})"));
    }
    let head = match e.head.as_deref() {
        None | Some("bundled") => true,
        Some("none") => false,
        Some(other) => {
            p.push(format!("{at}.head"), format!("\"{other}\" is not bundled or none"));
            false
        }
    };
    if let Some(w) = e.example_weight {
        if !(w.is_finite() && (0.0..=100.0).contains(&w)) {
            p.push(format!("{at}.example_weight"), "must be between 0 and 100");
        }
    }
    if let Some(t) = e.sensitive_threshold {
        unit(p, format!("{at}.sensitive_threshold"), t);
    }
    if e.intents.is_empty() && !head {
        p.push(format!("{at}.intents"), "the embedding tier needs at least one intent, or the trained head (head: bundled)");
    }
    // The head's labels that are configured capabilities, with their routes.
    let head_routes: Vec<(String, String)> = if head {
        match crate::tiers::head::Head::bundled() {
            Ok(h) => h.labels.iter().filter_map(|l| raw.capabilities.get(l).map(|c| (l.clone(), c.route.clone()))).collect(),
            Err(err) => {
                p.push(format!("{at}.head"), err.to_string());
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    if head && head_routes.is_empty() {
        p.push(format!("{at}.head"), "none of the trained head's labels is a configured capability (use head: none)");
    }
    let mut intents = Vec::new();
    for (i, r) in e.intents.iter().enumerate() {
        let at = format!("{at}.intents[{i}]");
        let Some(route) = capability_route(p, raw, &at, &r.capability, r.route.as_ref(), caps, routes) else { continue };
        if let Some(t) = r.threshold {
            unit(p, format!("{at}.threshold"), t);
        }
        if r.examples.is_empty() {
            p.push(format!("{at}.examples"), "an intent needs at least one example");
        }
        for (j, x) in r.examples.iter().enumerate() {
            if x.trim().is_empty() {
                p.push(format!("{at}.examples[{j}]"), "examples must not be blank");
            }
        }
        intents.push(Intent { capability: r.capability.clone(), route, threshold: r.threshold, examples: r.examples.clone() });
    }
    Some(EmbeddingTierConfig {
        model_file,
        tokenizer_file,
        intents_file,
        min_confidence,
        min_margin,
        max_tokens,
        tail_tokens,
        intents,
        head,
        head_routes,
        example_weight: e.example_weight,
        sensitive_threshold: e.sensitive_threshold,
    })
}

pub(super) fn validate_classifier(p: &mut Problems, raw: &RawConfig) -> Option<ClassifierTierConfig> {
    let c = raw.router.classifier.as_ref()?;
    let at = "router.classifier";
    let url = c.url.trim_end_matches('/').to_owned();
    let host_ok = url.split_once("://").is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains(['?', '#', ' ']));
    if !host_ok {
        p.push(format!("{at}.url"), format!("\"{}\" is not an http(s) URL", c.url));
    } else if url.starts_with("http://") && !is_loopback_url(&url) {
        p.push(format!("{at}.url"), "must be https (plain http only to a loopback address: 127.0.0.0/8, [::1], localhost)");
    }
    let secret = c.secret.clone().unwrap_or_else(|| "CLASSIFIER_SECRET".to_owned());
    if !is_secret_name(&secret) {
        p.push(format!("{at}.secret"), "the name of a secret: letters, digits and underscores (the value itself never goes in the YAML)");
    }
    let timeout_ms = c.timeout_ms.unwrap_or(300);
    if !(1..=30_000).contains(&timeout_ms) {
        p.push(format!("{at}.timeout_ms"), "must be between 1 and 30000");
    }
    let min_confidence = c.min_confidence.unwrap_or(0.0);
    if !(min_confidence.is_finite() && (0.0..=1.0).contains(&min_confidence)) {
        p.push(format!("{at}.min_confidence"), "must be between 0 and 1");
    }
    let labels: Vec<ClassifierLabel> = raw
        .capabilities
        .iter()
        .map(|(name, cap)| ClassifierLabel { capability: name.clone(), description: cap.description.clone().unwrap_or_default(), route: cap.route.clone() })
        .collect();
    if !(2..=32).contains(&labels.len()) {
        p.push(at, "the classifier chooses among 2 to 32 capabilities");
    }
    for l in &labels {
        if l.description.chars().count() > 300 {
            p.push(format!("capabilities.{}.description", l.capability), "at most 300 characters (the classifier reads it)");
        }
    }
    Some(ClassifierTierConfig { url, secret, timeout_ms, min_confidence, local: c.local.unwrap_or(false), labels })
}

/// The route a router rule sends `capability` to: its own `route`, else the capability's.
/// `None` (with the problem recorded) for an unknown capability.
fn capability_route(
    p: &mut Problems,
    raw: &RawConfig,
    at: &str,
    capability: &str,
    route: Option<&String>,
    caps: &[&String],
    routes: &[&String],
) -> Option<String> {
    let Some(cap) = raw.capabilities.get(capability) else {
        p.unknown(format!("{at}.capability"), "capability", capability, caps);
        return None;
    };
    let route = route.cloned().unwrap_or_else(|| cap.route.clone());
    if !raw.routes.contains_key(&route) {
        p.unknown(format!("{at}.route"), "route", &route, routes);
    } else if super::is_embedding_route(raw, &route) {
        p.push(format!("{at}.route"), format!("route \"{route}\" holds embedding models; the router sends chat requests"));
    }
    Some(route)
}

/// A name without directories: model files are looked up in one place per platform.
fn is_file_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) && !s.starts_with('.')
}

pub(super) fn validate_keyword(p: &mut Problems, raw: &RawConfig, caps: &[&String], routes: &[&String]) -> KeywordTier {
    let Some(k) = &raw.router.keyword else {
        return KeywordTier::empty();
    };
    let min_confidence = k.min_confidence.unwrap_or(0.6);
    if !(min_confidence > 0.0 && min_confidence <= 1.0) {
        p.push("router.keyword.min_confidence", "must be in (0, 1]");
    }
    let mut rules = Vec::new();
    for (i, r) in k.rules.iter().enumerate() {
        let at = format!("router.keyword.rules[{i}]");
        let Some(route) = capability_route(p, raw, &at, &r.capability, r.route.as_ref(), caps, routes) else { continue };
        if r.keywords.is_empty() {
            p.push(format!("{at}.keywords"), "a rule needs at least one keyword");
        }
        for (j, w) in r.keywords.iter().enumerate() {
            if w.trim().is_empty() {
                p.push(format!("{at}.keywords[{j}]"), "keywords must not be blank");
            }
        }
        let weight = r.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight > 0.0) {
            p.push(format!("{at}.weight"), "must be a positive number");
        }
        rules.push(KeywordRule { capability: r.capability.clone(), route, keywords: r.keywords.clone(), weight });
    }
    match KeywordTier::new(rules, min_confidence, k.max_scan_bytes.unwrap_or(16 * 1024)) {
        Ok(t) => t,
        Err(e) => {
            p.push("router.keyword", e.to_string());
            KeywordTier::empty()
        }
    }
}

