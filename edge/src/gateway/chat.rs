//! `POST /v1/chat/completions`, the zero-trust path: authenticate the key, parse, route, apply
//! the key's policy and data residency, reserve rate-limit tokens and budget, proxy, then
//! settle the reservation with the provider's usage and write the audit record.
//!
//! Counters live where `auth.counters` says: the platform's shared store (`Platform::ledger`:
//! a Durable Object per subject on Workers, compare-and-swap on the key-value store on Spin),
//! or this instance's memory.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use serde_json::Value;

use super::{read_limited, Body, Request, Response};
use crate::api::ParsedChat;
use crate::audit::{self, Record};
use crate::auth::{self, ClientKey};
use crate::config::{Config, Counters, Model};
use crate::error::{AttemptError, GatewayError};
use crate::platform::Platform;
use crate::policy::ledger::{Denial, LedgerState, Limits, Op, Reply};
use crate::policy::{self, cost};
use crate::proxy::{self, Output};
use crate::router;

/// Bound on cached KV key lookups per isolate.
const KEY_CACHE_MAX: usize = 10_000;

/// `sha256(key)` -> (expiry ms, the record or `None` for "no such key").
type KeyCache = HashMap<[u8; 32], (u64, Option<Arc<ClientKey>>)>;

/// State shared by the requests of one isolate / instance.
#[derive(Default)]
pub struct Shared {
    memory: RefCell<HashMap<String, LedgerState>>,
    key_cache: RefCell<KeyCache>,
    semantic: super::semantic::SemanticCache,
}

/// Runs the router: tier 2 loaded first when the cascade will need it, and tier 3 (the
/// classifier host) asked when tiers 1-2 fall through, unless the prompt is sensitive and the
/// host is not declared local: residency is decided before any tier sends the prompt anywhere.
pub async fn route<P: Platform>(shared: &Shared, p: &P, config: &Config, chat: &ParsedChat, sensitivity: &policy::Sensitivity) -> Result<router::Decision, GatewayError> {
    let mut decision = match config.router.embedding.as_ref().filter(|_| router::needs_semantic(config, chat)) {
        None => router::decide(config, chat, router::Tier2::Off)?,
        Some(cfg) => match shared.semantic.get(p, cfg).await {
            Ok(loaded) => router::decide(config, chat, router::Tier2::Ready(&*loaded))?,
            Err(e) => router::decide(config, chat, router::Tier2::Unavailable(e))?,
        },
    };
    if let Some(cfg) = router::escalation(config, &decision, sensitivity.is_sensitive()) {
        let answer = super::escalate::classify(p, cfg, &chat.routing_text(), &router::embedding_scores(&decision)).await;
        if let Err(e) = &answer {
            p.log(&serde_json::json!({"level": "warn", "event": "classifier_unavailable", "error": e}));
        }
        router::apply_classifier(config, &mut decision, answer);
    }
    Ok(decision)
}

/// Authenticates the caller (draining the body of a refused one), then reads and parses the
/// chat body within the size limit.
async fn authenticated_chat<P: Platform>(shared: &Shared, p: &P, config: &Config, req: Request, rec: &mut Record) -> Result<(Arc<ClientKey>, ParsedChat), GatewayError> {
    let key = match authenticate(shared, p, config, &req.headers).await {
        Ok(k) => k,
        Err(e) => {
            super::drain(req.body).await;
            return Err(e);
        }
    };
    rec.key = Some(key.name.clone());
    let body = read_limited(req.body, &req.headers, config.server.max_body_bytes).await?;
    Ok((key, ParsedChat::from_slice(&body)?))
}

/// `POST /v1/route`: the decision for a chat body, without calling a provider: the tiers that
/// ran with their scores, the route, the models in order, and those the key's policy removed.
pub async fn explain<P: Platform>(shared: &Rc<Shared>, p: &P, config: Arc<Config>, req: Request, rec: &mut Record) -> Result<Response, GatewayError> {
    let (key, chat) = authenticated_chat(shared, p, &config, req, rec).await?;
    let sensitivity = policy::sensitivity(&config, &chat);
    let mut decision = route(shared, p, &config, &chat, &sensitivity).await?;
    let plan = policy::plan(&config, &key, &mut decision, &chat, &sensitivity);
    rec.decision = Some(decision.clone());
    let d = &decision;
    let mut out = serde_json::json!({
        "object": "route.decision",
        "tier": d.tier.as_str(),
        "route": d.route,
        "capability": d.capability,
        "confidence": d.confidence,
        "best_guess": d.best_guess.as_ref().map(|g| serde_json::json!({"capability": g.capability, "route": g.route, "confidence": g.confidence})),
        "tiers": d.trace,
        "sensitive": sensitivity.reasons(),
    });
    match plan {
        Ok(plan) => {
            out["model"] = plan.models.first().cloned().into();
            out["candidates"] = plan.models.clone().into();
            out["pinned_local"] = plan.pinned_local.into();
            out["rejected"] = plan.rejected.iter().map(|r| serde_json::json!({"model": r.model, "reason": r.reason})).collect::<Vec<_>>().into();
            out["estimated_prompt_tokens"] = plan.prompt_tokens.into();
            out["max_cost_usd"] = cost::usd(plan.reserve_cost).into();
        }
        Err(e) => {
            out["model"] = Value::Null;
            out["refused"] = serde_json::json!({"status": e.status(), "error": e.to_json()["error"]});
        }
    }
    Ok(Response::json(200, &out))
}

/// Applies `op` to the counters of `subject` in the configured store.
pub async fn ledger<P: Platform>(shared: &Shared, p: &P, config: &Config, subject: &str, op: &Op) -> Result<Reply, GatewayError> {
    match config.auth.counters {
        Counters::Memory => {
            let mut m = shared.memory.borrow_mut();
            Ok(m.entry(subject.to_owned()).or_default().apply(p.now_ms(), op))
        }
        Counters::Platform => p.ledger(subject, op).await.map_err(|e| GatewayError::Internal {
            request_id: String::new(),
            detail: format!("rate-limit counters unavailable: {e}"),
        }),
    }
}

/// Finds the caller's key in the YAML, then (with `auth.kv_keys`) in KV, caching KV answers.
pub async fn authenticate<P: Platform>(shared: &Shared, p: &P, config: &Config, headers: &http::HeaderMap) -> Result<Arc<ClientKey>, GatewayError> {
    let presented = auth::presented_key(headers).ok_or(GatewayError::Unauthorized)?;
    let hash = auth::hash_key(presented);
    let found = match auth::find(&config.keys, &hash) {
        Some(k) => Some(Arc::clone(k)),
        None if config.auth.kv_keys => kv_key(shared, p, config, hash).await?,
        None => None,
    };
    match found {
        Some(k) if !k.revoked => Ok(k),
        _ => Err(GatewayError::Unauthorized),
    }
}

async fn kv_key<P: Platform>(shared: &Shared, p: &P, config: &Config, hash: [u8; 32]) -> Result<Option<Arc<ClientKey>>, GatewayError> {
    let now = p.now_ms();
    if let Some((expires, k)) = shared.key_cache.borrow().get(&hash) {
        if *expires > now {
            return Ok(k.clone());
        }
    }
    let name = format!("apikey:{}", hex::encode(hash));
    let internal = |detail: String| GatewayError::Internal { request_id: String::new(), detail };
    let bytes = p.kv_get(&name).await.map_err(|e| internal(format!("reading {name}: {e}")))?;
    let key = match bytes {
        None => None,
        Some(b) => {
            let known = auth::Known {
                models: config.models.keys().collect(),
                routes: config.routes.keys().collect(),
                capabilities: config.capabilities.keys().collect(),
            };
            let raw: crate::config::raw::RawKey = serde_yaml::from_slice(&b).map_err(|e| internal(format!("{name}: {e}")))?;
            let key_name = raw.name.clone().ok_or_else(|| internal(format!("{name}: the record has no name")))?;
            let k = auth::validate_key(&format!("kv {name}"), &key_name, &raw, Some(hash), &known).map_err(|problems| {
                let text: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect();
                internal(text.join("; "))
            })?;
            Some(Arc::new(k))
        }
    };
    let mut cache = shared.key_cache.borrow_mut();
    if cache.len() >= KEY_CACHE_MAX {
        cache.clear();
    }
    cache.insert(hash, (now + config.auth.kv_cache_secs * 1000, key.clone()));
    Ok(key)
}

fn key_limits(k: &ClientKey) -> Limits {
    Limits { rpm: k.rpm, tpm: k.tpm, budget_day: k.budget_day, budget_month: k.budget_month }
}

fn model_limits(m: &Model) -> Limits {
    Limits { rpm: m.rpm, tpm: m.tpm, budget_day: None, budget_month: None }
}

/// What was reserved for the key, to settle once usage is known.
#[derive(Clone)]
struct Reservation {
    subject: String,
    limits: Limits,
    tokens: u64,
    cost: u64,
    at_ms: u64,
}

/// Turns a denial into the 429 the caller sees.
fn denied(who: &str, reason: Denial, retry_after_ms: Option<u64>, tokens: u64) -> GatewayError {
    let message = match reason {
        Denial::Requests => format!("Rate limit reached for {who}: requests per minute. Retry after the time in Retry-After."),
        Denial::Tokens => format!("Rate limit reached for {who}: tokens per minute. Retry after the time in Retry-After."),
        Denial::TooLarge => format!("Request too large for {who}: it may use up to {tokens} tokens, more than the tokens-per-minute limit. Lower max_tokens or the prompt."),
        Denial::BudgetDay => return GatewayError::QuotaExceeded { message: format!("The daily budget of {who} is spent. It renews at 00:00 UTC."), retry_after_ms },
        Denial::BudgetMonth => return GatewayError::QuotaExceeded { message: format!("The monthly budget of {who} is spent. It renews on the 1st (UTC)."), retry_after_ms },
    };
    GatewayError::RateLimited { message, retry_after_ms }
}

fn ratelimit_headers(limits: &Limits, reply: &Reply) -> Vec<(String, String)> {
    let mut h = Vec::new();
    if let Reply::Granted { remaining_requests, remaining_tokens, reset_requests_ms, reset_tokens_ms } = reply {
        let secs = |ms: u64| format!("{:.3}s", ms as f64 / 1000.0);
        for (name, v) in [("x-ratelimit-limit-requests", limits.rpm), ("x-ratelimit-limit-tokens", limits.tpm)] {
            if let Some(v) = v {
                h.push((name.to_owned(), v.to_string()));
            }
        }
        for (name, v) in [("x-ratelimit-remaining-requests", remaining_requests), ("x-ratelimit-remaining-tokens", remaining_tokens)] {
            if let Some(v) = v {
                h.push((name.to_owned(), v.to_string()));
            }
        }
        for (name, v) in [("x-ratelimit-reset-requests", reset_requests_ms), ("x-ratelimit-reset-tokens", reset_tokens_ms)] {
            if let Some(v) = v {
                h.push((name.to_owned(), secs(*v)));
            }
        }
    }
    h
}

/// `settled - reserved` as the signed adjustment, saturating (provider-reported usage is
/// untrusted input).
fn delta(settled: u64, reserved: u64) -> i64 {
    let d = i128::from(settled) - i128::from(reserved);
    i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
}

/// Everything needed after the response: settle the counters, finish the audit record.
pub struct Finish<P: Platform> {
    p: P,
    shared: Rc<Shared>,
    config: Arc<Config>,
    key: Option<Reservation>,
    /// The served model, its subject's limits and what its attempt reserved.
    model: Option<(Arc<Model>, u64)>,
    include_prompts: bool,
}

impl<P: Platform> Finish<P> {
    /// Settles with `usage` (`(prompt, completion)` as reported), or with the served model's
    /// worst case when the provider reported none, or refunds everything when nothing was served.
    async fn settle(&self, usage: Option<(u64, u64)>, served: bool, rec: &mut Record) {
        let Some((model, model_reserved)) = &self.model else {
            if let Some(r) = &self.key {
                self.adjust(r, -1, delta(0, r.tokens), delta(0, r.cost), rec).await;
            }
            return;
        };
        let (tokens, cost) = match usage {
            Some((pi, po)) => (pi.saturating_add(po), cost::cost_nanos(&model.price, pi, po)),
            None => (*model_reserved, rec.cost_nanos.unwrap_or(0)),
        };
        // The audit records what the provider reported; the counters never settle above the
        // reservation (the request carried the output cap the reservation assumed, and the
        // prompt estimate is an upper bound), so a budget is a hard cap.
        rec.cost_nanos = Some(cost);
        if let Some(r) = &self.key {
            let requests = if served { 0 } else { -1 };
            self.adjust(r, requests, delta(tokens.min(r.tokens), r.tokens), delta(cost.min(r.cost), r.cost), rec).await;
        }
        let limits = model_limits(model);
        if limits.tpm.is_some() {
            let m = Reservation { subject: format!("model:{}", model.name), limits, tokens: *model_reserved, cost: 0, at_ms: 0 };
            self.adjust(&m, 0, delta(tokens.min(*model_reserved), *model_reserved), 0, rec).await;
        }
    }

    async fn adjust(&self, r: &Reservation, requests: i64, tokens: i64, cost: i64, rec: &mut Record) {
        let op = Op::Adjust { limits: r.limits, requests, tokens, cost, reserved_ms: r.at_ms };
        if let Err(e) = ledger(&self.shared, &self.p, &self.config, &r.subject, &op).await {
            // The reservation stays charged: errors fall on the side of the limit.
            rec.error.get_or_insert((format!("settling counters failed: {e}"), "error"));
        }
    }
}

/// The chat flow up to the response head. `Finish` is returned so that streams settle at
/// their end.
pub async fn chat<P: Platform>(
    shared: &Rc<Shared>,
    p: &P,
    config: Arc<Config>,
    req: Request,
    rec: &mut Record,
) -> Result<(Response, Option<Finish<P>>), GatewayError> {
    let (key, chat) = authenticated_chat(shared, p, &config, req, rec).await?;
    rec.stream = chat.request.stream;
    let sensitivity = policy::sensitivity(&config, &chat);
    rec.sensitive = sensitivity.reasons();
    let mut decision = route(shared, p, &config, &chat, &sensitivity).await?;
    rec.decision = Some(decision.clone());
    if config.audit.include_prompts {
        rec.prompt = Some(audit::redacted_prompt(&chat, &config.privacy.pii));
    }
    let plan = policy::plan(&config, &key, &mut decision, &chat, &sensitivity);
    rec.decision = Some(decision.clone());
    let plan = plan?;
    rec.pinned_local = plan.pinned_local;
    rec.rejected = plan.rejected.iter().map(|r| (r.model.clone(), r.reason.clone())).collect();

    let limits = key_limits(&key);
    let mut headers = Vec::new();
    let mut finish = Finish {
        p: p.clone(),
        shared: Rc::clone(shared),
        config: Arc::clone(&config),
        key: None,
        model: None,
        include_prompts: config.audit.include_prompts,
    };
    if !limits.is_empty() {
        let subject = format!("key:{}", key.name);
        let op = Op::Reserve { limits, tokens: plan.reserve_tokens, cost: plan.reserve_cost };
        match ledger(shared, p, &config, &subject, &op).await? {
            Reply::Denied { reason, retry_after_ms } => {
                return Err(denied(&format!("key `{}`", key.name), reason, retry_after_ms, plan.reserve_tokens));
            }
            reply => headers = ratelimit_headers(&limits, &reply),
        }
        finish.key = Some(Reservation { subject, limits, tokens: plan.reserve_tokens, cost: plan.reserve_cost, at_ms: p.now_ms() });
    }

    // Per-model limits are charged when an attempt starts on the model.
    let gate_shared = Rc::clone(shared);
    let gate_config = Arc::clone(&config);
    let gate_p = p.clone();
    let gate_chat = chat.clone();
    let prompt_tokens = plan.prompt_tokens;
    let gate = move |model: Arc<Model>| -> LocalBoxFuture<'static, Result<(), AttemptError>> {
        let (shared, config, p, chat) = (Rc::clone(&gate_shared), Arc::clone(&gate_config), gate_p.clone(), gate_chat.clone());
        async move {
            let limits = model_limits(&model);
            if limits.is_empty() {
                return Ok(());
            }
            let (tokens, _) = policy::worst_case(&model, &chat, prompt_tokens);
            let op = Op::Reserve { limits, tokens, cost: 0 };
            match ledger(&shared, &p, &config, &format!("model:{}", model.name), &op).await {
                Ok(Reply::Denied { retry_after_ms, .. }) => Err(AttemptError::ModelLimit { retry_after_ms }),
                Ok(_) => Ok(()),
                Err(e) => Err(AttemptError::Connect(e.to_string())),
            }
        }
        .boxed_local()
    };
    let outcome = proxy::serve(p, &config, &decision, &chat, &gate).await;
    rec.attempts = outcome.attempts;
    let served = match outcome.result {
        Ok(s) => s,
        Err(e) => {
            finish.settle(None, false, rec).await;
            rec.cost_nanos = None;
            return Err(e);
        }
    };
    rec.model = Some(served.model.clone());
    let model = config.models.get(&served.model).map(Arc::clone);
    if let Some(m) = &model {
        let (tokens, worst) = policy::worst_case(m, &chat, plan.prompt_tokens);
        finish.model = Some((Arc::clone(m), tokens));
        rec.cost_nanos = Some(worst);
        rec.tokens = Some((plan.prompt_tokens, tokens - plan.prompt_tokens));
    }
    match served.output {
        Output::Json(v) => {
            let usage = v.get("usage").and_then(cost::usage_tokens);
            if let Some(u) = usage {
                rec.tokens = Some(u);
                rec.usage_reported = true;
            }
            if finish.include_prompts {
                rec.completion = Some(completion_text(&v, &config));
            }
            finish.settle(usage, true, rec).await;
            if let Some(c) = rec.cost_nanos {
                headers.push(("x-gateway-cost-usd".into(), cost::usd(c)));
            }
            let mut resp = Response::json(200, &v);
            resp.headers.extend(headers);
            Ok((resp, None))
        }
        Output::Stream(s) => {
            if let Some(c) = rec.cost_nanos {
                headers.push(("x-gateway-cost-usd-max".into(), cost::usd(c)));
            }
            let mut resp = Response {
                status: 200,
                headers: vec![
                    ("content-type".into(), "text/event-stream; charset=utf-8".into()),
                    ("cache-control".into(), "no-cache".into()),
                ],
                body: Body::Stream(s),
            };
            resp.headers.extend(headers);
            Ok((resp, Some(finish)))
        }
    }
}

fn completion_text(v: &Value, config: &Config) -> String {
    let text = v.pointer("/choices/0/message/content").and_then(Value::as_str).unwrap_or_default();
    crate::policy::pii::redact(text, &config.privacy.pii)
}

/// Wraps a stream so that, at its end, usage is settled and the audit record written; if the
/// client goes away first, the record is written with `client_closed` (the reservation stays
/// charged).
pub fn audited<P: Platform>(stream: crate::proxy::SseStream, finish: Finish<P>, rec: Record) -> crate::proxy::SseStream {
    struct State<P: Platform> {
        inner: crate::proxy::SseStream,
        finish: Option<Finish<P>>,
        rec: Option<Record>,
        usage: Option<(u64, u64)>,
        text: String,
        broken: bool,
    }
    impl<P: Platform> Drop for State<P> {
        fn drop(&mut self) {
            if let (Some(f), Some(mut rec)) = (self.finish.take(), self.rec.take()) {
                rec.outcome = "client_closed";
                f.p.log(&rec.to_json(f.p.now_ms()));
            }
        }
    }
    let state = State { inner: stream, finish: Some(finish), rec: Some(rec), usage: None, text: String::new(), broken: false };
    let s = futures::stream::unfold(state, |mut st| async move {
        match st.inner.next().await {
            Some(chunk) => {
                observe(&mut st.usage, &mut st.text, &mut st.broken, &chunk, st.finish.as_ref().is_some_and(|f| f.include_prompts));
                Some((chunk, st))
            }
            None => {
                if let (Some(f), Some(mut rec)) = (st.finish.take(), st.rec.take()) {
                    if let Some(u) = st.usage {
                        rec.tokens = Some(u);
                        rec.usage_reported = true;
                    }
                    f.settle(st.usage, true, &mut rec).await;
                    rec.outcome = if st.broken { "stream_error" } else { "completed" };
                    if f.include_prompts {
                        rec.completion = Some(crate::policy::pii::redact(&st.text, &f.config.privacy.pii));
                    }
                    f.p.log(&rec.to_json(f.p.now_ms()));
                }
                None
            }
        }
    });
    Box::pin(s) as std::pin::Pin<Box<dyn Stream<Item = Bytes>>>
}

/// Reads one outgoing SSE chunk for usage, completion text and error events.
fn observe(usage: &mut Option<(u64, u64)>, text: &mut String, broken: &mut bool, chunk: &Bytes, keep_text: bool) {
    let Ok(s) = std::str::from_utf8(chunk) else { return };
    for line in s.lines() {
        let Some(data) = line.strip_prefix("data: ") else { continue };
        if data == "[DONE]" {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else { continue };
        if v.get("error").is_some() {
            *broken = true;
        }
        if let Some(u) = v.get("usage").and_then(cost::usage_tokens) {
            *usage = Some(u);
        }
        if keep_text && text.len() < 64 * 1024 {
            if let Some(t) = v.pointer("/choices/0/delta/content").and_then(Value::as_str) {
                text.push_str(t);
            }
        }
    }
}
