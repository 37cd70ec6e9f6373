//! Rate limits and budgets: reserve before the provider is called, settle to the reported usage
//! (never above what was reserved), release on failure.
//!
//! Counters live where `auth.counters` says: the platform's shared store (`Platform::ledger`:
//! a Durable Object per subject on Workers, compare-and-swap on the key-value store on Spin),
//! or this instance's memory.

use std::rc::Rc;
use std::sync::Arc;


use crate::audit::Record;
use crate::auth::ClientKey;
use crate::config::{Config, Counters, Model};
use crate::error::{AttemptError, GatewayError};
use futures::future::LocalBoxFuture;
use crate::platform::Platform;
use crate::ledger::{Denial, Limits, Op, Reply};
use crate::policy::cost;
use super::chat::Shared;


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


/// Admission, before any routing tier runs: the request counts against the key's request rate
/// (`rpm`) now, so a caller over its limit costs no embedding or classifier work. Returns whether
/// a request was counted (the reservation after routing then counts none) and the rate-limit
/// headers. The request stays counted if it is later refused; it is refunded only when no
/// provider could serve it.
pub(super) async fn admit<P: Platform>(shared: &Shared, p: &P, config: &Config, key: &ClientKey) -> Result<(bool, Vec<(String, String)>), GatewayError> {
    let Some(rpm) = key.rpm else { return Ok((false, Vec::new())) };
    let limits = Limits { rpm: Some(rpm), ..Limits::default() };
    let op = Op::Reserve { limits, requests: 1, tokens: 0, cost: 0 };
    match ledger(shared, p, config, &format!("key:{}", key.name), &op).await? {
        Reply::Denied { reason, retry_after_ms } => Err(denied(&format!("key `{}`", key.name), reason, retry_after_ms, 0)),
        reply => Ok((true, ratelimit_headers(&limits, &reply))),
    }
}

/// The per-model gate of `proxy::serve`: an attempt on a model with `rpm`/`tpm` limits first
/// counts a request and reserves `tokens_of(model)` tokens on the model's counters (a denial
/// skips the model).
pub(super) fn model_gate<P: Platform>(
    shared: &Rc<Shared>,
    p: &P,
    config: &Arc<Config>,
    tokens_of: impl Fn(&Model) -> u64 + 'static,
) -> impl Fn(Arc<Model>) -> LocalBoxFuture<'static, Result<(), AttemptError>> {
    let (shared, config, p) = (Rc::clone(shared), Arc::clone(config), p.clone());
    move |model: Arc<Model>| {
        let (shared, config, p) = (Rc::clone(&shared), Arc::clone(&config), p.clone());
        let tokens = tokens_of(&model);
        Box::pin(async move {
            let limits = model_limits(&model);
            if limits.is_empty() {
                return Ok(());
            }
            let op = Op::Reserve { limits, requests: 1, tokens, cost: 0 };
            match ledger(&shared, &p, &config, &format!("model:{}", model.name), &op).await {
                Ok(Reply::Denied { retry_after_ms, .. }) => Err(AttemptError::ModelLimit { retry_after_ms }),
                Ok(_) => Ok(()),
                Err(e) => Err(AttemptError::Connect(e.to_string())),
            }
        })
    }
}

/// After policy: the key's TPM and budgets reserve the plan's tokens and cost (and the request,
/// unless admission counted it) before any provider is called. A 429 when denied; otherwise what to
/// settle later (`None` for a key without limits) and the rate-limit headers.
pub(super) async fn reserve_for_key<P: Platform>(
    shared: &Shared,
    p: &P,
    config: &Config,
    key: &ClientKey,
    admitted: bool,
    plan: &crate::policy::Plan,
    headers: &mut Vec<(String, String)>,
) -> Result<Option<Reservation>, GatewayError> {
    let (tokens, cost) = (plan.reserve_tokens, plan.reserve_cost);
    let limits = key_limits(key);
    if limits.is_empty() {
        return Ok(None);
    }
    let subject = format!("key:{}", key.name);
    let op = Op::Reserve { limits, requests: u64::from(!admitted), tokens, cost };
    match ledger(shared, p, config, &subject, &op).await? {
        Reply::Denied { reason, retry_after_ms } => Err(denied(&format!("key `{}`", key.name), reason, retry_after_ms, tokens)),
        reply => {
            *headers = ratelimit_headers(&limits, &reply);
            Ok(Some(Reservation { subject, limits, tokens, cost, at_ms: p.now_ms() }))
        }
    }
}

pub(super) fn key_limits(k: &ClientKey) -> Limits {
    Limits { rpm: k.rpm, tpm: k.tpm, budget_day: k.budget_day, budget_month: k.budget_month }
}

pub(super) fn model_limits(m: &Model) -> Limits {
    Limits { rpm: m.rpm, tpm: m.tpm, budget_day: None, budget_month: None }
}

/// What was reserved for the key, to settle once usage is known.
#[derive(Clone)]
pub(super) struct Reservation {
    pub(super) subject: String,
    pub(super) limits: Limits,
    pub(super) tokens: u64,
    pub(super) cost: u64,
    pub(super) at_ms: u64,
}

/// Turns a denial into the 429 the caller sees.
pub(super) fn denied(who: &str, reason: Denial, retry_after_ms: Option<u64>, tokens: u64) -> GatewayError {
    let message = match reason {
        Denial::Requests => format!("Rate limit reached for {who}: requests per minute. Retry after the time in Retry-After."),
        Denial::Tokens => format!("Rate limit reached for {who}: tokens per minute. Retry after the time in Retry-After."),
        Denial::TooLarge => format!("Request too large for {who}: it may use up to {tokens} tokens, more than the tokens-per-minute limit. Lower max_tokens or the prompt."),
        Denial::BudgetDay => return GatewayError::QuotaExceeded { message: format!("The daily budget of {who} is spent. It renews at 00:00 UTC."), retry_after_ms },
        Denial::BudgetMonth => return GatewayError::QuotaExceeded { message: format!("The monthly budget of {who} is spent. It renews on the 1st (UTC)."), retry_after_ms },
    };
    GatewayError::RateLimited { message, retry_after_ms }
}

pub(super) fn ratelimit_headers(limits: &Limits, reply: &Reply) -> Vec<(String, String)> {
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
    pub(super) p: P,
    pub(super) shared: Rc<Shared>,
    pub(super) config: Arc<Config>,
    pub(super) key: Option<Reservation>,
    /// The served model, its subject's limits and what its attempt reserved.
    pub(super) model: Option<(Arc<Model>, u64)>,
    pub(super) include_prompts: bool,
}

impl<P: Platform> Finish<P> {
    /// Tries the decision's models (`proxy::serve`); when none served, the reservations are
    /// released and the audit records no cost.
    pub(super) async fn serve(&self, decision: &crate::router::Decision, call: crate::proxy::Call<'_>, gate: &crate::proxy::Gate<'_>, rec: &mut Record) -> Result<crate::proxy::Served, GatewayError> {
        let outcome = crate::proxy::serve(&self.p, &self.config, decision, call, gate).await;
        rec.attempts = outcome.attempts;
        match outcome.result {
            Ok(served) => {
                rec.model = Some(served.model.clone());
                Ok(served)
            }
            Err(e) => {
                self.settle(None, false, rec).await;
                rec.cost_nanos = None;
                Err(e)
            }
        }
    }

    /// Settles with `usage` (`(prompt, completion)` as reported), or with the served model's
    /// worst case when the provider reported none, or refunds everything when nothing was served.
    pub(super) async fn settle(&self, usage: Option<(u64, u64)>, served: bool, rec: &mut Record) {
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
