//! `POST /v1/embeddings`, by the chat path's rules: authenticate the key, parse, resolve the
//! named embedding model or route (no router tier: the caller names it), apply the key's
//! allow-lists, data residency (input holding personal data, or given as token ids that cannot
//! be scanned, goes only to `locality: local` models) and per-request cost cap, count the
//! request and reserve its input tokens and their price before any provider is called, proxy
//! with retries and fallback along the route, then settle to the reported usage.

use std::rc::Rc;
use std::sync::Arc;

use super::counters::{admit, model_gate, reserve_for_key, Finish};
use super::{Request, Response};
use crate::api::embeddings::{Input, ParsedEmbeddings};
use crate::audit::Record;
use crate::config::{Config, Model};
use crate::error::GatewayError;
use crate::platform::Platform;
use crate::policy::{self, cost};
use crate::proxy::{self, Output};
use crate::router;
use super::chat::{authenticated, Shared};

pub async fn embeddings<P: Platform>(shared: &Rc<Shared>, p: &P, config: Arc<Config>, req: Request, rec: &mut Record) -> Result<Response, GatewayError> {
    let (key, call) = authenticated(shared, p, &config, req, rec, ParsedEmbeddings::from_slice).await?;
    let (admitted, mut headers) = admit(shared, p, &config, &key).await?;
    let mut sensitivity = policy::sensitivity_of(&config, &call.raw);
    let tokens = match &call.input {
        Input::Text(texts) => cost::estimate_input_tokens(texts),
        Input::Tokens { count } => {
            sensitivity.token_ids = true;
            *count
        }
    };
    rec.sensitive = sensitivity.reasons();
    let mut decision = router::embeddings_target(&config, &call.model)?;
    rec.decision = Some(decision.clone());
    if config.audit.include_prompts {
        if let Input::Text(texts) = &call.input {
            rec.prompt = Some(texts.iter().map(|t| policy::pii::redact(t, &config.privacy.pii)).collect::<Vec<_>>().join("\n"));
        }
    }
    let plan = policy::plan_embeddings(&config, &key, &mut decision, tokens, &sensitivity);
    rec.decision = Some(decision.clone());
    let plan = plan?;
    rec.rejected = plan.rejected.iter().map(|r| (r.model.clone(), r.reason.clone())).collect();

    let reservation = reserve_for_key(shared, p, &config, &key, admitted, &plan, &mut headers).await?;
    let mut finish = Finish { p: p.clone(), shared: Rc::clone(shared), config: Arc::clone(&config), key: reservation, model: None, include_prompts: false };

    let gate = model_gate(shared, p, &config, move |_: &Model| tokens);
    let served = finish.serve(&decision, proxy::Call::Embeddings(&call), &gate, rec).await?;
    if let Some(m) = config.models.get(&served.model) {
        finish.model = Some((Arc::clone(m), tokens));
        rec.cost_nanos = Some(cost::cost_nanos(&m.price, tokens, 0));
        rec.tokens = Some((tokens, 0));
    }
    let Output::Json(v, _) = served.output else {
        return Err(GatewayError::Internal { request_id: String::new(), detail: "an embeddings attempt returned a stream".into() });
    };
    let usage = v.get("usage").and_then(cost::usage_tokens);
    if let Some(u) = usage {
        rec.tokens = Some(u);
        rec.usage_reported = true;
    }
    finish.settle(usage, true, rec).await;
    if let Some(c) = rec.cost_nanos {
        headers.push(("x-gateway-cost-usd".into(), cost::usd(c)));
    }
    let mut resp = Response::json(200, &v);
    resp.headers.extend(headers);
    Ok(resp)
}
