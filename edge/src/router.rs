//! The semantic router: which route (ordered fallback list of models) serves a request.
//!
//! A request names a concrete model (served by it alone), a route from the YAML, or a router
//! alias (`auto`) that runs the cascade. The cascade asks each tier in order and stops at the
//! first verdict at or above that tier's confidence threshold; with none, the default route
//! serves and the best guess is still reported. Built tiers: keyword (`router/keyword.rs`).

#[cfg(feature = "embedding")]
pub mod embed;
pub mod keyword;

use crate::api::ParsedChat;
use crate::config::Config;
use crate::error::GatewayError;

/// What one tier concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct TierVerdict {
    pub capability: String,
    pub route: String,
    /// 0..=1.
    pub confidence: f64,
    /// Every capability the tier scored, best first.
    pub scores: Vec<(String, f64)>,
}

/// How the route was decided; rendered in `x-gateway-tier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The request named a concrete model.
    Model,
    /// The request named a route.
    Route,
    Keyword,
    /// The cascade ran and no tier was confident: the default route serves.
    Default,
}

impl Tier {
    /// The router chose (the caller asked for a router alias).
    pub fn is_cascade(self) -> bool {
        matches!(self, Tier::Keyword | Tier::Default)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Model => "model",
            Tier::Route => "route",
            Tier::Keyword => "keyword",
            Tier::Default => "default",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub tier: Tier,
    pub route: String,
    /// Models to try, in order.
    pub models: Vec<String>,
    pub capability: Option<String>,
    pub confidence: Option<f64>,
    /// The best verdict of a tier that was not confident enough, for explanation.
    pub best_guess: Option<TierVerdict>,
}

pub fn decide(config: &Config, chat: &ParsedChat) -> Result<Decision, GatewayError> {
    let name = chat.request.model.as_str();
    if config.models.contains_key(name) {
        return Ok(Decision {
            tier: Tier::Model,
            route: name.to_owned(),
            models: vec![name.to_owned()],
            capability: None,
            confidence: None,
            best_guess: None,
        });
    }
    if let Some(route) = config.routes.get(name) {
        return Ok(Decision {
            tier: Tier::Route,
            route: name.to_owned(),
            models: route.models.clone(),
            capability: None,
            confidence: None,
            best_guess: None,
        });
    }
    if !config.is_router_alias(name) {
        let known: Vec<&str> = config
            .router
            .aliases
            .iter()
            .chain(config.routes.keys())
            .chain(config.models.keys())
            .map(String::as_str)
            .collect();
        return Err(GatewayError::UnknownModel { model: name.to_owned(), known: known.join(", ") });
    }
    Ok(cascade(config, &chat.routing_text()))
}

fn cascade(config: &Config, text: &str) -> Decision {
    let kw = &config.router.keyword;
    let verdict = kw.classify(text);
    if let Some(v) = verdict.as_ref().filter(|v| v.confidence >= kw.min_confidence) {
        return Decision {
            tier: Tier::Keyword,
            route: v.route.clone(),
            models: route_models(config, &v.route),
            capability: Some(v.capability.clone()),
            confidence: Some(v.confidence),
            best_guess: None,
        };
    }
    let route = config.router.default_route.clone();
    Decision {
        tier: Tier::Default,
        models: route_models(config, &route),
        route,
        capability: None,
        confidence: None,
        best_guess: verdict,
    }
}

fn route_models(config: &Config, route: &str) -> Vec<String> {
    // Validation guarantees every referenced route exists.
    config.routes.get(route).map(|r| r.models.clone()).unwrap_or_default()
}
