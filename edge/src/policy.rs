//! Policy: what a client key may do with a routed request, decided after the router and
//! never overridable by it.
//!
//! The router proposes a route (ordered models); `plan` then narrows it, in this order, and
//! records why each model was dropped:
//! 1. the key's allow-lists (models, routes, capabilities): 403 when nothing is left;
//! 2. data residency: a key without `allow_cloud`, a route with `require_local`, or a
//!    *sensitive* prompt keeps only `locality: local` models. A prompt is sensitive when any
//!    string the request would send upstream (every message, content part, name, tool-call
//!    argument, tool result and passthrough field) holds PII (`pii.rs`) or matches a keyword
//!    rule of a `local_only` capability, or when it holds more text than can be scanned,
//!    whatever the winning capability was: text such as
//!    "this is a coding question" can change the route, not this. An auto-routed sensitive
//!    prompt moves to the `local_only` capability's route; a request naming a cloud model or
//!    route fails closed with 403, never silently to the cloud;
//! 3. the key's `max_cost_usd_per_request` against each model's worst case.
//!
//! The money and tokens to reserve are the worst case over the models left (see `ledger.rs`).

pub mod cost;
pub mod media;
pub mod pii;

use crate::api::ParsedChat;
use crate::auth::ClientKey;
use crate::config::{Config, Locality, Model};
use crate::error::GatewayError;
use crate::router::Decision;
use pii::PiiClass;

/// Why a prompt must stay on local models.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sensitivity {
    pub pii: Vec<PiiClass>,
    /// `local_only` capabilities whose keywords matched.
    pub capabilities: Vec<String>,
    /// The request held more text than `privacy.max_scan_bytes`: not scanned, so treated as
    /// sensitive (fail closed).
    pub unscanned: bool,
    /// Embeddings input given as token ids: no text to scan, so treated as sensitive.
    pub token_ids: bool,
}

impl Sensitivity {
    pub fn is_sensitive(&self) -> bool {
        !self.pii.is_empty() || !self.capabilities.is_empty() || self.unscanned || self.token_ids
    }

    /// The reasons, for the audit record and `/v1/route`: PII classes, capabilities,
    /// `unscanned` and `token_ids`.
    pub fn reasons(&self) -> Vec<String> {
        let mut r: Vec<String> = self.pii.iter().map(|c| c.as_str().to_owned()).collect();
        r.extend(self.capabilities.iter().cloned());
        if self.unscanned {
            r.push("unscanned".to_owned());
        }
        if self.token_ids {
            r.push("token_ids".to_owned());
        }
        r
    }

    pub fn describe(&self) -> String {
        let mut r: Vec<String> = self.pii.iter().map(|c| c.as_str().to_owned()).collect();
        r.extend(self.capabilities.iter().cloned());
        if self.unscanned {
            r.push("too large to scan for personal data".to_owned());
        }
        if self.token_ids {
            r.push("given as token ids, which cannot be scanned for personal data".to_owned());
        }
        r.join(", ")
    }
}

/// Fields whose strings are binary payloads (base64 images, audio, files), not text.
const BINARY_FIELDS: [&str; 3] = ["data", "file_data", "b64_json"];

/// Every string of the request that can reach a provider: every message's content and parts,
/// `name`s, tool-call arguments, tool results, tool definitions and any passthrough field,
/// except the `model` name and base64 payloads (`data:` URLs and binary fields).
fn outbound_strings<'a>(v: &'a serde_json::Value, field: Option<&str>, out: &mut Vec<&'a str>) {
    use serde_json::Value;
    match v {
        Value::String(s) if !(s.starts_with("data:") || field.is_some_and(|f| BINARY_FIELDS.contains(&f))) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| outbound_strings(i, field, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| outbound_strings(v, Some(k), out)),
        _ => {}
    }
}

/// Scans everything the request would send upstream, whole: PII in any string, and the keyword
/// rules of `local_only` capabilities. A request with more text than `privacy.max_scan_bytes`
/// is not scanned and counts as sensitive.
pub fn sensitivity(config: &Config, chat: &ParsedChat) -> Sensitivity {
    let mut s = sensitivity_of(config, &chat.raw);
    // A `/v1/messages` body goes to an Anthropic model as the caller wrote it, fields the
    // translation ignored included: scan it too.
    if let Some(original) = &chat.anthropic {
        let o = sensitivity_of(config, original);
        s.pii.extend(o.pii);
        s.pii.sort();
        s.pii.dedup();
        s.capabilities.extend(o.capabilities);
        s.capabilities.sort();
        s.capabilities.dedup();
        s.unscanned |= o.unscanned;
    }
    s
}

/// [`sensitivity`] of any request body that goes upstream as it is (chat, embeddings): every
/// string but `model`.
pub fn sensitivity_of(config: &Config, raw: &serde_json::Map<String, serde_json::Value>) -> Sensitivity {
    let mut strings = Vec::new();
    for (k, v) in raw {
        if k != "model" {
            outbound_strings(v, Some(k), &mut strings);
        }
    }
    let mut s = Sensitivity::default();
    let total: usize = strings.iter().map(|t| t.len()).sum();
    if total > config.privacy.max_scan_bytes {
        s.unscanned = true;
        return s;
    }
    let local_only: Vec<&str> = config.capabilities.iter().filter(|(_, c)| c.local_only).map(|(n, _)| n.as_str()).collect();
    for text in strings {
        s.pii.extend(pii::detect(text, &config.privacy.pii));
        if !local_only.is_empty() {
            s.capabilities.extend(config.router.keyword.capabilities_in(text).into_iter().filter(|c| local_only.contains(&c.as_str())));
        }
    }
    s.pii.sort();
    s.pii.dedup();
    s.capabilities.sort();
    s.capabilities.dedup();
    s
}

/// A model the policy removed, and why (for the error message and `/v1/route`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub model: String,
    pub reason: String,
}

/// The narrowed decision and what to reserve.
#[derive(Debug, Clone)]
pub struct Plan {
    pub models: Vec<String>,
    pub rejected: Vec<Rejected>,
    /// Estimated prompt tokens: the most over the models left (media count per provider).
    pub prompt_tokens: u64,
    /// Estimated prompt tokens on each model left, in `models` order.
    pub model_prompt_tokens: Vec<u64>,
    /// Prompt plus the most output tokens, over the models left.
    pub reserve_tokens: u64,
    /// Worst-case nano-dollars over the models left.
    pub reserve_cost: u64,
    /// The route was changed to keep a sensitive prompt local.
    pub pinned_local: bool,
}

fn forbidden(message: String, code: &'static str) -> GatewayError {
    GatewayError::Forbidden { message, code }
}

/// Applies the key's policy and data residency to the router's decision (which it may move to
/// the local route).
pub fn plan(config: &Config, key: &ClientKey, decision: &mut Decision, chat: &ParsedChat, s: &Sensitivity) -> Result<Plan, GatewayError> {
    check_allowed(key, decision)?;
    if let Some(cap) = &decision.capability {
        if !key.may_use_capability(cap) {
            return Err(forbidden(format!("This API key may not be used for `{cap}` requests."), "capability_not_allowed"));
        }
    }
    let mut pinned_local = false;
    if s.is_sensitive() && decision.tier.is_cascade() {
        // Auto-routed: move to the route of the local-only capability (validated to hold a
        // local model), unless the chosen route is already local.
        let local_cap = config.capabilities.iter().find(|(_, c)| c.local_only);
        let route_is_local = decision.models.iter().any(|m| is_local(config, m));
        if let (false, Some((name, cap))) = (route_is_local, local_cap) {
            if let Some(route) = config.routes.get(&cap.route) {
                decision.route = route.name.clone();
                decision.models = route.models.clone();
                decision.capability = Some(name.clone());
                pinned_local = true;
            }
        }
    }
    let text_tokens = cost::estimate_text_tokens(&chat.request);
    let media = media::media_of(&chat.request);
    let mut plan = narrow(config, key, decision, s, |model| {
        let prompt_tokens = cost::prompt_tokens_on(text_tokens, &media, model);
        let (tokens, worst) = worst_case(model, chat, prompt_tokens);
        (prompt_tokens, tokens, worst)
    })?;
    plan.pinned_local = pinned_local;
    Ok(plan)
}

/// The plan of an embeddings request of `tokens` input tokens (an upper bound for text, exact for
/// token ids) on the named embedding model or route: the key's allow-lists, data residency and
/// per-request cost cap as for chat, with input tokens only.
pub fn plan_embeddings(config: &Config, key: &ClientKey, decision: &mut Decision, tokens: u64, s: &Sensitivity) -> Result<Plan, GatewayError> {
    check_allowed(key, decision)?;
    narrow(config, key, decision, s, |model| (tokens, tokens, cost::cost_nanos(&model.price, tokens, 0)))
}

/// The key may use the model or route the request named (or the router chose).
fn check_allowed(key: &ClientKey, decision: &Decision) -> Result<(), GatewayError> {
    use crate::router::Tier;
    if matches!(decision.tier, Tier::Model) && !key.may_use_model(&decision.route) {
        return Err(forbidden(format!("This API key may not use the model `{}`.", decision.route), "model_not_allowed"));
    }
    if !matches!(decision.tier, Tier::Model) && !key.may_use_route(&decision.route) {
        return Err(forbidden(format!("This API key may not use the route `{}`.", decision.route), "route_not_allowed"));
    }
    Ok(())
}

/// Drops the route's models the key may not use, that residency keeps from this prompt, or that
/// may cost more than the key's cap; `cost_of(model)` is `(prompt tokens, tokens to reserve,
/// worst-case nano-dollars)` on it. 403 when none is left.
fn narrow(config: &Config, key: &ClientKey, decision: &mut Decision, s: &Sensitivity, cost_of: impl Fn(&Model) -> (u64, u64, u64)) -> Result<Plan, GatewayError> {
    let require_local = config.routes.get(&decision.route).is_some_and(|r| r.require_local);
    let mut models = Vec::new();
    let mut model_prompt_tokens = Vec::new();
    let mut rejected = Vec::new();
    let mut reserve_tokens = 0;
    let mut reserve_cost = 0;
    for name in &decision.models {
        let Some(model) = config.models.get(name) else { continue };
        let reject = |reason: String| Rejected { model: name.clone(), reason };
        if !key.may_use_model(name) {
            rejected.push(reject("not allowed for this key".into()));
            continue;
        }
        if model.locality == Locality::Cloud {
            if s.is_sensitive() {
                rejected.push(reject(format!("cloud model; the prompt is sensitive ({})", s.describe())));
                continue;
            }
            if !key.allow_cloud {
                rejected.push(reject("cloud model; this key's prompts must stay local".into()));
                continue;
            }
            if require_local {
                rejected.push(reject(format!("cloud model; route `{}` requires local models", decision.route)));
                continue;
            }
        }
        let (prompt_tokens, tokens, worst) = cost_of(model);
        if let Some(cap) = key.max_cost_per_request {
            if worst > cap {
                rejected.push(reject(format!(
                    "may cost up to ${}, above this key's limit of ${} per request (lower max_tokens)",
                    cost::usd(worst),
                    cost::usd(cap)
                )));
                continue;
            }
        }
        reserve_tokens = reserve_tokens.max(tokens);
        reserve_cost = reserve_cost.max(worst);
        models.push(name.clone());
        model_prompt_tokens.push(prompt_tokens);
    }
    if models.is_empty() {
        let why: Vec<String> = rejected.iter().map(|r| format!("{}: {}", r.model, r.reason)).collect();
        let code = if s.is_sensitive() || !key.allow_cloud || require_local { "data_residency" } else { "no_permitted_model" };
        return Err(forbidden(format!("No model on route `{}` may serve this request ({}).", decision.route, why.join("; ")), code));
    }
    decision.models.clone_from(&models);
    let prompt_tokens = model_prompt_tokens.iter().copied().max().unwrap_or(0);
    Ok(Plan { models, rejected, prompt_tokens, model_prompt_tokens, reserve_tokens, reserve_cost, pinned_local: false })
}

impl Plan {
    /// Estimated prompt tokens on `model` (the most over the route for a model not on it).
    pub fn prompt_tokens_on(&self, model: &str) -> u64 {
        self.models.iter().position(|m| m == model).and_then(|i| self.model_prompt_tokens.get(i).copied()).unwrap_or(self.prompt_tokens)
    }
}

fn is_local(config: &Config, model: &str) -> bool {
    config.models.get(model).is_some_and(|m| m.locality == Locality::Local)
}

/// `(tokens, nano-dollars)` at most for this request on `model`.
pub fn worst_case(model: &Model, chat: &ParsedChat, prompt_tokens: u64) -> (u64, u64) {
    let out = cost::max_output_tokens(&chat.request, model);
    (prompt_tokens + out, cost::cost_nanos(&model.price, prompt_tokens, out))
}

#[cfg(test)]
mod tests;
