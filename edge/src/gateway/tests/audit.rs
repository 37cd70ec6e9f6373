//! One audit record per request: who, what was decided, what it cost, how it ended; written
//! when a stream ends, never with the caller's PII or a provider key.

use serde_json::json;

use super::support::*;
use crate::testing::request;

#[test]
fn the_record_has_the_request_its_decision_and_cost_and_no_pii() {
    let (p, gw) = setup();
    let email = "jane.audit@fastmail.fm";
    let mut req = request(http::Method::POST, "/v1/chat/completions", Some(&key("main")), &json!({"model": "auto", "messages": user(&format!("please write to {email} about the meeting"))}));
    req.headers.insert("x-request-id", http::HeaderValue::from_static("audit-check-7f3a"));
    let r = p.send(&gw, req);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-request-id"), Some("audit-check-7f3a"));
    let records = audit_records(&p);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    for (field, want) in [("request_id", json!("audit-check-7f3a")), ("key", json!("main")), ("model", json!("localm")), ("status", json!(200)), ("outcome", json!("completed")), ("prompt_tokens", json!(1117)), ("sensitive", json!(["email"]))] {
        assert_eq!(record[field], want, "{field} in {record}");
    }
    let text = record.to_string();
    assert!(!text.contains(email) && text.contains("[REDACTED:email]"), "{text}");
    assert!(record["cost_usd"].is_string(), "{record}");
}

#[test]
fn a_streamed_request_is_recorded_when_its_stream_ends() {
    let (p, gw) = setup();
    let r = chat(&p, &gw, "main", json!({"model": "oa", "messages": user("hi"), "stream": true, "stream_options": {"include_usage": true}}));
    assert!(r.streamed);
    let records = audit_records(&p);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["stream"], true);
    assert_eq!(records[0]["outcome"], "completed");
    assert_eq!(records[0]["usage_reported"], true, "{}", records[0]);
    assert!(records[0]["completion_tokens"].as_u64().is_some_and(|n| n > 0), "{}", records[0]);
}

#[test]
fn refused_requests_are_recorded_without_the_presented_key() {
    let (p, gw) = setup();
    let r = p.send(&gw, request(http::Method::POST, "/v1/chat/completions", Some("gwk_core_nobody"), &json!({"model": "oa", "messages": user("hi")})));
    assert_eq!(r.status, 401);
    let records = audit_records(&p);
    assert_eq!(records[0]["outcome"], "error");
    assert_eq!(records[0]["status"], 401);
    for line in p.logs() {
        let text = line.to_string();
        assert!(!text.contains("gwk_core_nobody") && !text.contains(OPENAI_KEY) && !text.contains(ANTHROPIC_KEY), "{text}");
    }
}
