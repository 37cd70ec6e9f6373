//! Routing a chat request through the tiers, and `POST /v1/route`, which explains the decision
//! without calling a provider.

use std::rc::Rc;
use std::sync::Arc;

use serde_json::Value;

use super::{Request, Response};
use crate::api::ParsedChat;
use crate::audit::Record;
use crate::config::Config;
use crate::error::GatewayError;
use crate::platform::Platform;
use crate::policy::{self, cost};
use crate::router;
use super::chat::{authenticated, Shared};

/// Runs the router: tier 2 loaded first when the cascade will need it, and tier 3 (the
/// classifier host) asked when tiers 1-2 fall through, unless the prompt is sensitive and the
/// host is not declared local: residency is decided before any tier sends the prompt anywhere.
/// `key` names the client key (the classifier host shares its queue per key).
pub async fn route<P: Platform>(shared: &Shared, p: &P, config: &Config, key: &str, chat: &ParsedChat, sensitivity: &policy::Sensitivity) -> Result<router::Decision, GatewayError> {
    let mut decision = match config.router.embedding.as_ref().filter(|_| router::needs_semantic(config, chat)) {
        None => router::decide(config, chat, router::Tier2::Off)?,
        Some(cfg) => match shared.semantic.get(p, cfg).await {
            Ok(loaded) => router::decide(config, chat, router::Tier2::Ready(&*loaded))?,
            Err(e) => router::decide(config, chat, router::Tier2::Unavailable(e))?,
        },
    };
    if let Some(cfg) = router::escalation(config, &decision, sensitivity.is_sensitive()) {
        let answer = super::escalate::classify(p, cfg, &super::escalate::caller_id(key), &chat.routing_text(), &router::embedding_scores(&decision)).await;
        if let Err(e) = &answer {
            p.log(&serde_json::json!({"level": "warn", "event": "classifier_unavailable", "error": e}));
        }
        router::apply_classifier(config, &mut decision, answer);
    }
    Ok(decision)
}


/// `POST /v1/route`: the decision for a chat body, without calling a provider: the tiers that
/// ran with their scores, the route, the models in order, and those the key's policy removed.
pub async fn explain<P: Platform>(shared: &Rc<Shared>, p: &P, config: Arc<Config>, req: Request, rec: &mut Record) -> Result<Response, GatewayError> {
    let (key, chat) = authenticated(shared, p, &config, req, rec, ParsedChat::from_slice).await?;
    // The route endpoint runs the same tiers: it counts against the key's request rate.
    let (_, headers) = super::counters::admit(shared, p, &config, &key).await?;
    let sensitivity = policy::sensitivity(&config, &chat);
    let mut decision = route(shared, p, &config, &key.name, &chat, &sensitivity).await?;
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
    let mut resp = Response::json(200, &out);
    resp.headers.extend(headers);
    Ok(resp)
}
