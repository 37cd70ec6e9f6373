//! The audit record: one structured JSON line per request, written to the platform's log
//! (Workers logs, Spin/host stderr) when the request is over: for a stream, when its last byte
//! has gone out or the client went away.
//!
//! It says who (key name), what (route, tier, capability, confidence, model, attempts), how
//! much (tokens, cost in USD) and how it went (status, error, latency). Prompts and completions
//! are left out unless `audit.include_prompts` is on, and then their PII is redacted. Provider
//! keys never reach it: errors are redacted before they are recorded.

use serde_json::{json, Value};

use crate::policy::cost;
use crate::policy::pii::{self, PiiClass};
use crate::router::Decision;

#[derive(Debug, Clone, Default)]
pub struct Record {
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub started_ms: u64,
    pub key: Option<String>,
    pub decision: Option<Decision>,
    pub model: Option<String>,
    pub attempts: u32,
    pub stream: bool,
    /// Prompt and completion tokens as the provider reported them (estimates when it did not).
    pub tokens: Option<(u64, u64)>,
    pub usage_reported: bool,
    pub cost_nanos: Option<u64>,
    /// PII classes and local-only capabilities that made the prompt sensitive.
    pub sensitive: Vec<String>,
    pub pinned_local: bool,
    pub rejected: Vec<(String, String)>,
    pub status: u16,
    pub error: Option<(String, &'static str)>,
    /// Set only when `audit.include_prompts` is on, already redacted.
    pub prompt: Option<String>,
    pub completion: Option<String>,
    /// `completed`, `error`, `client_closed`, `stream_error`.
    pub outcome: &'static str,
}

impl Record {
    pub fn to_json(&self, now_ms: u64) -> Value {
        let d = self.decision.as_ref();
        let mut v = json!({
            "event": "audit",
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "key": self.key,
            "route": d.map(|d| d.route.clone()),
            "tier": d.map(|d| d.tier.as_str()),
            "capability": d.and_then(|d| d.capability.clone()),
            "confidence": d.and_then(|d| d.confidence),
            "model": self.model,
            "attempts": self.attempts,
            "stream": self.stream,
            "prompt_tokens": self.tokens.map(|t| t.0),
            "completion_tokens": self.tokens.map(|t| t.1),
            "usage_reported": self.usage_reported,
            "cost_usd": self.cost_nanos.map(cost::usd),
            "status": self.status,
            "outcome": self.outcome,
            "latency_ms": now_ms.saturating_sub(self.started_ms),
        });
        if !self.sensitive.is_empty() {
            v["sensitive"] = json!(self.sensitive);
            v["pinned_local"] = json!(self.pinned_local);
        }
        if !self.rejected.is_empty() {
            v["rejected"] = self.rejected.iter().map(|(m, r)| json!({"model": m, "reason": r})).collect();
        }
        if let Some((message, level)) = &self.error {
            v["error"] = json!(message);
            v["level"] = json!(level);
        }
        if let Some(p) = &self.prompt {
            v["prompt"] = json!(p);
        }
        if let Some(c) = &self.completion {
            v["completion"] = json!(c);
        }
        v
    }
}

/// The request's messages as `role: text` lines, PII-redacted, for an opted-in audit record.
pub fn redacted_prompt(chat: &crate::api::ParsedChat, classes: &[PiiClass]) -> String {
    let lines: Vec<String> = chat
        .request
        .messages
        .iter()
        .map(|m| {
            let text = m.content.as_ref().map(crate::api::Content::text).unwrap_or_default();
            format!("{}: {}", format!("{:?}", m.role).to_lowercase(), pii::redact(&text, classes))
        })
        .collect();
    lines.join("\n")
}
