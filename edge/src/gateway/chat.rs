//! `POST /v1/chat/completions`, the zero-trust path: authenticate the key (`keys`), parse, route
//! (`routing`), apply the key's policy and data residency, reserve rate-limit tokens and budget
//! (`counters`), proxy, then settle the reservation with the provider's usage and write the
//! audit record (for a stream, at its end: `stream_audit`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::Value;

use super::{read_limited, Body, Request, Response};
use crate::api::ParsedChat;
use crate::audit::{self, Record};
use crate::auth::ClientKey;
use crate::config::{Config, Model};
use crate::error::GatewayError;
use crate::platform::Platform;
use crate::ledger::LedgerState;
use crate::policy::{self, cost};
use crate::proxy::{self, Output};
use super::counters::{admit, model_gate, reserve_for_key, Finish};
use super::keys::{authenticate, KeyCache};
use super::routing::route;

/// State shared by the requests of one isolate / instance.
#[derive(Default)]
pub struct Shared {
    pub(super) memory: RefCell<HashMap<String, LedgerState>>,
    pub(super) key_cache: RefCell<KeyCache>,
    pub(super) semantic: super::semantic::SemanticCache,
}


/// How a body becomes the chat request: `ParsedChat::from_slice` for OpenAI's endpoints,
/// `api::messages::to_chat` for Anthropic's.
pub type Parse = fn(&[u8]) -> Result<ParsedChat, GatewayError>;

/// Authenticates the caller (draining the body of a refused one), then reads the body within
/// the size limit and parses it with `parse`.
pub(super) async fn authenticated<P: Platform, T>(shared: &Shared, p: &P, config: &Config, req: Request, rec: &mut Record, parse: fn(&[u8]) -> Result<T, GatewayError>) -> Result<(Arc<ClientKey>, T), GatewayError> {
    let key = match authenticate(shared, p, config, &req.headers).await {
        Ok(k) => k,
        Err(e) => {
            super::drain(req.body).await;
            return Err(e);
        }
    };
    rec.key = Some(key.name.clone());
    let body = read_limited(req.body, &req.headers, config.server.max_body_bytes).await?;
    Ok((key, parse(&body)?))
}


/// The chat flow up to the response head. `Finish` is returned so that streams settle at
/// their end.
pub async fn chat<P: Platform>(
    shared: &Rc<Shared>,
    p: &P,
    config: Arc<Config>,
    req: Request,
    rec: &mut Record,
    parse: Parse,
) -> Result<(Response, Option<Finish<P>>), GatewayError> {
    let (key, chat) = authenticated(shared, p, &config, req, rec, parse).await?;
    rec.stream = chat.request.stream;
    let (admitted, mut headers) = admit(shared, p, &config, &key).await?;
    let sensitivity = policy::sensitivity(&config, &chat);
    rec.sensitive = sensitivity.reasons();
    let mut decision = route(shared, p, &config, &key.name, &chat, &sensitivity).await?;
    rec.decision = Some(decision.clone());
    if config.audit.include_prompts {
        rec.prompt = Some(audit::redacted_prompt(&chat, &config.privacy.pii));
    }
    let plan = policy::plan(&config, &key, &mut decision, &chat, &sensitivity);
    rec.decision = Some(decision.clone());
    let plan = plan?;
    rec.pinned_local = plan.pinned_local;
    rec.rejected = plan.rejected.iter().map(|r| (r.model.clone(), r.reason.clone())).collect();

    let reservation = reserve_for_key(shared, p, &config, &key, admitted, &plan, &mut headers).await?;
    let mut finish = Finish {
        p: p.clone(),
        shared: Rc::clone(shared),
        config: Arc::clone(&config),
        key: reservation,
        model: None,
        include_prompts: config.audit.include_prompts,
    };

    // Per-model limits are charged when an attempt starts on the model.
    let (gate_chat, gate_plan) = (chat.clone(), plan.clone());
    let gate = model_gate(shared, p, &config, move |model: &Model| policy::worst_case(model, &gate_chat, gate_plan.prompt_tokens_on(&model.name)).0);
    let served = finish.serve(&decision, proxy::Call::Chat(&chat), &gate, rec).await?;
    let model = config.models.get(&served.model).map(Arc::clone);
    if let Some(m) = &model {
        let prompt_tokens = plan.prompt_tokens_on(&m.name);
        let (tokens, worst) = policy::worst_case(m, &chat, prompt_tokens);
        finish.model = Some((Arc::clone(m), tokens));
        rec.cost_nanos = Some(worst);
        rec.tokens = Some((prompt_tokens, tokens - prompt_tokens));
    }
    match served.output {
        Output::Json(v, native) => {
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
            let mut resp = match native {
                Some(body) => Response { status: 200, headers: vec![("content-type".into(), "application/json".into())], body: Body::Full(body) },
                None => Response::json(200, &v),
            };
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
