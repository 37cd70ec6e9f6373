//! Tier 3 from the edge: a signed request, a verified answer, and every failure (down, late,
//! forged, unsigned, off-label) degrading to a served request, never a failed one.

use gateway_signing::{Secret, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use serde_json::{json, Value};

use super::support::*;
use crate::testing::{MemoryPlatform, Upstream};

/// What the classifier host does with a request.
#[derive(Clone, Copy)]
enum Host {
    Answers(&'static str),
    Down,
    Late,
    Forged,
    Unsigned,
    OffLabel,
}

fn with_host(p: &MemoryPlatform, host: Host) {
    p.on_fetch(move |req| {
        if !req.url.ends_with("/tier3/v1/classify") {
            return provider(req);
        }
        let nonce = req.headers.iter().find(|(k, _)| k == NONCE_HEADER).map(|(_, v)| v.clone()).unwrap_or_default();
        let label = match host {
            Host::Answers(l) => l,
            Host::OffLabel => "astrology",
            _ => "code",
        };
        let body = json!({"label": label, "probabilities": [{"label": label, "probability": 0.93}], "latency_ms": 12.0}).to_string();
        let secret = Secret::new(CLASSIFIER_SECRET).unwrap_or_else(|e| panic!("{e}"));
        let signature = gateway_signing::sign_response(&secret, &nonce, 200, body.as_bytes());
        let answer = Upstream::json(200, serde_json::from_str(&body).unwrap_or(Value::Null));
        match host {
            Host::Down => Upstream::Refuse("connection refused".into()),
            Host::Late => answer.header(SIGNATURE_HEADER, &signature).after(9_000),
            Host::Forged => answer.header(SIGNATURE_HEADER, &format!("v1={}", "ab".repeat(32))),
            Host::Unsigned => answer,
            _ => answer.header(SIGNATURE_HEADER, &signature),
        }
    });
}

fn classifier_calls(p: &MemoryPlatform) -> Vec<crate::testing::Fetched> {
    p.fetches().into_iter().filter(|f| f.request.url.ends_with("/v1/classify")).collect()
}

#[test]
fn an_unsure_prompt_is_classified_by_a_signed_exchange_and_routed_by_its_label() {
    let (p, gw) = setup();
    with_host(&p, Host::Answers("code"));
    let r = chat(&p, &gw, "main", json!({"model": "auto", "messages": user("my loop never ends, what did I do wrong")}));
    assert_served(&r, "an", 1);
    assert_eq!(r.header("x-gateway-tier"), Some("classifier"));
    assert_eq!(r.header("x-gateway-route"), Some("code"));
    let calls = classifier_calls(&p);
    assert_eq!(calls.len(), 1);
    let sent = &calls[0];
    assert!(sent.header(TIMESTAMP_HEADER).is_some() && sent.header(SIGNATURE_HEADER).is_some_and(|s| s.starts_with("v1=")));
    let body = sent.body_json();
    let labels: Vec<&str> = body["labels"].as_array().into_iter().flatten().filter_map(|l| l["name"].as_str()).collect();
    assert!(labels.contains(&"code") && labels.contains(&"general"), "{labels:?}");
    // The host shares its queue per client key: an opaque id, never the key's name.
    let caller = body["caller"].as_str().unwrap_or_default();
    assert_eq!(caller, crate::gateway::escalate::caller_id("main"));
    assert!(caller.len() == 16 && !caller.contains("main"), "{caller}");
    assert_ne!(caller, crate::gateway::escalate::caller_id("other"));
}

#[test]
fn a_keyword_decision_never_asks_the_classifier() {
    let (p, gw) = setup();
    with_host(&p, Host::Answers("general"));
    let r = chat(&p, &gw, "main", json!({"model": "auto", "messages": user("Why is this SQL query slow?")}));
    assert_eq!(r.header("x-gateway-tier"), Some("keyword"));
    assert!(classifier_calls(&p).is_empty());
}

#[test]
fn every_classifier_failure_degrades_and_still_serves() {
    for (host, why) in [
        (Host::Down, "unreachable"),
        (Host::Late, "did not answer within 8000 ms"),
        (Host::Forged, "failed verification"),
        (Host::Unsigned, "without a signature"),
        (Host::OffLabel, "not a configured capability"),
    ] {
        let (p, gw) = setup();
        with_host(&p, host);
        let r = chat(&p, &gw, "main", json!({"model": "auto", "messages": user("my loop never ends, what did I do wrong")}));
        assert_served(&r, "oa", 1);
        assert_eq!(r.header("x-gateway-tier"), Some("embedding-degraded"), "{why}");
        let warned = p.logs().into_iter().find(|l| l["event"] == "classifier_unavailable").unwrap_or_default();
        assert!(warned["error"].as_str().is_some_and(|e| e.contains(why)), "{why}: {warned}");
        assert!(!warned.to_string().contains(CLASSIFIER_SECRET));
    }
}

#[test]
fn a_late_classifier_costs_its_timeout_and_no_more() {
    let (p, gw) = setup();
    with_host(&p, Host::Late);
    let start = crate::platform::Clock::now_ms(&p);
    chat(&p, &gw, "main", json!({"model": "auto", "messages": user("my loop never ends, what did I do wrong")}));
    assert_eq!(crate::platform::Clock::now_ms(&p) - start, 8000);
}

#[test]
fn a_sensitive_prompt_is_not_sent_to_a_cloud_classifier() {
    let (p, gw) = setup();
    let yaml = yaml().replace("    timeout_ms: 8000\n", "    timeout_ms: 8000\n    local: false\n");
    let gw2 = crate::Gateway::new(&yaml);
    drop(gw);
    with_host(&p, Host::Answers("general"));
    // An IBAN: the PII detector finds it before any tier would send the text anywhere.
    let r = chat(&p, &gw2, "main", json!({"model": "auto", "messages": user("can you check my transfer to GB82 WEST 1234 5698 7654 32 went through")}));
    assert_served(&r, "localm", 1);
    assert!(classifier_calls(&p).is_empty(), "the prompt went to a non-local classifier host");
    assert!(p.fetched_urls().iter().all(|u| u.contains("/local/")), "{:?}", p.fetched_urls());
}
