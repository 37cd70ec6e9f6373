//! The runtime configuration and the one pass that builds it from YAML.
//!
//! `Config::from_yaml` parses into `raw` structs, then `validate` checks every field, collects
//! every problem with its path (`routes.code.models[1]: unknown model "gpt4o" (known: ...)`)
//! and only then builds a `Config` with no half-filled options. The bundled default lives in
//! `edge/gateway.yaml` (or `$GATEWAY_CONFIG` at build time); `store` swaps in a KV copy at run
//! time.

pub mod keys;
mod models;
pub mod raw;
mod router;
pub mod secrets;
pub mod store;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use keys::ClientKey;
use models::{is_loopback_url, validate_model};
use raw::RawConfig;
use router::{validate_classifier, validate_embedding, validate_keyword};
pub use types::*;

/// The YAML bundled into this build (`edge/gateway.yaml` unless `GATEWAY_CONFIG` was set).
pub const BUNDLED_YAML: &str = include_str!(env!("GATEWAY_BUNDLED_CONFIG"));

const DEFAULT_MAX_BODY: usize = 1024 * 1024;

impl Config {
    /// Parses and validates a YAML document.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let de = serde_yaml::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ConfigError { problems: vec![Problem { path, message: e.inner().to_string() }] }
        })?;
        validate(raw, hex::encode(Sha256::digest(text.as_bytes())))
    }

    /// The bundled default config.
    pub fn bundled() -> Result<Self, ConfigError> {
        Self::from_yaml(BUNDLED_YAML)
    }

    pub fn is_router_alias(&self, name: &str) -> bool {
        self.router.aliases.iter().any(|a| a == name)
    }
}

pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { path: path.into(), message: message.into() });
    }

    fn unknown(&mut self, path: impl Into<String>, what: &str, name: &str, known: &[&String]) {
        let known: Vec<&str> = known.iter().map(|s| s.as_str()).collect();
        self.push(path, format!("unknown {what} \"{name}\" (known: {})", known.join(", ")));
    }
}

/// `kind: embedding` in the raw YAML.
fn is_embedding_model(raw: &RawConfig, model: &str) -> bool {
    raw.models.get(model).is_some_and(|m| m.kind.as_deref() == Some("embedding"))
}

/// A route whose models include an embedding model (a mixed route is refused on its own).
fn is_embedding_route(raw: &RawConfig, route: &str) -> bool {
    raw.routes.get(route).is_some_and(|r| r.models.iter().any(|m| is_embedding_model(raw, m)))
}

fn validate(raw: RawConfig, digest: String) -> Result<Config, ConfigError> {
    let mut p = Problems(Vec::new());
    let model_names: Vec<&String> = raw.models.keys().collect();
    let route_names: Vec<&String> = raw.routes.keys().collect();
    let cap_names: Vec<&String> = raw.capabilities.keys().collect();

    let max_body_bytes = raw.server.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
    if max_body_bytes == 0 {
        p.push("server.max_body_bytes", "must be greater than 0");
    }
    let d = &raw.defaults;
    let total_timeout_ms = d.total_timeout_ms.unwrap_or(120_000);
    positive(&mut p, "defaults.total_timeout_ms", total_timeout_ms);

    if raw.models.is_empty() {
        p.push("models", "at least one model is required");
    }
    let mut models = BTreeMap::new();
    for (name, m) in &raw.models {
        if let Some(model) = validate_model(&mut p, name, m, d, &cap_names) {
            models.insert(name.clone(), Arc::new(model));
        }
    }

    for (name, c) in &raw.capabilities {
        check_name(&mut p, &format!("capabilities.{name}"), name);
        if !raw.routes.contains_key(&c.route) {
            p.unknown(format!("capabilities.{name}.route"), "route", &c.route, &route_names);
        }
    }

    for (name, r) in &raw.routes {
        check_name(&mut p, &format!("routes.{name}"), name);
        if raw.models.contains_key(name) {
            p.push(format!("routes.{name}"), "a route must not share its name with a model");
        }
        if r.models.is_empty() {
            p.push(format!("routes.{name}.models"), "a route needs at least one model");
        }
        let mut seen = BTreeSet::new();
        for (i, m) in r.models.iter().enumerate() {
            if !raw.models.contains_key(m) {
                p.unknown(format!("routes.{name}.models[{i}]"), "model", m, &model_names);
            } else if !seen.insert(m) {
                p.push(format!("routes.{name}.models[{i}]"), format!("model \"{m}\" is listed twice"));
            }
        }
    }

    // A route serves chat or embeddings, never both; the router's routes serve chat.
    for (name, r) in &raw.routes {
        let embedding = r.models.iter().filter(|m| is_embedding_model(&raw, m)).count();
        if embedding > 0 && embedding < r.models.len() {
            p.push(format!("routes.{name}.models"), "a route holds chat models or embedding models (kind: embedding), not both");
        }
    }
    for (name, c) in &raw.capabilities {
        if is_embedding_route(&raw, &c.route) {
            p.push(format!("capabilities.{name}.route"), format!("route \"{}\" holds embedding models; the router sends chat requests", c.route));
        }
    }
    if is_embedding_route(&raw, &raw.router.default_route) {
        p.push("router.default_route", format!("route \"{}\" holds embedding models; the router sends chat requests", raw.router.default_route));
    }

    let has_local = |route: &str| {
        raw.routes.get(route).is_some_and(|r| r.models.iter().any(|m| models.get(m).is_some_and(|m| m.locality == Locality::Local)))
    };
    for (name, r) in &raw.routes {
        if r.require_local == Some(true) && !has_local(name) {
            p.push(format!("routes.{name}.require_local"), "the route has no model with locality: local");
        }
    }
    for (name, c) in &raw.capabilities {
        if c.local_only == Some(true) && raw.routes.contains_key(&c.route) && !has_local(&c.route) {
            p.push(format!("capabilities.{name}.local_only"), format!("route \"{}\" has no model with locality: local", c.route));
        }
    }

    let router = &raw.router;
    if !raw.routes.contains_key(&router.default_route) {
        p.unknown("router.default_route", "route", &router.default_route, &route_names);
    }
    let aliases = if router.aliases.is_empty() { vec!["auto".to_owned()] } else { router.aliases.clone() };
    for (i, a) in aliases.iter().enumerate() {
        if raw.models.contains_key(a) || raw.routes.contains_key(a) {
            p.push(format!("router.aliases[{i}]"), format!("\"{a}\" is already a model or route name"));
        }
    }
    let keyword = validate_keyword(&mut p, &raw, &cap_names, &route_names);
    let embedding = validate_embedding(&mut p, &raw, &cap_names, &route_names);
    let classifier = validate_classifier(&mut p, &raw);
    let auth = validate_auth(&mut p, &raw);
    let known = keys::Known { models: model_names.clone(), routes: route_names.clone(), capabilities: cap_names.clone() };
    let mut keys = BTreeMap::new();
    let mut hashes = BTreeMap::new();
    for (name, k) in &raw.keys {
        let at = format!("keys.{name}");
        check_name(&mut p, &at, name);
        if k.name.as_ref().is_some_and(|n| n != name) {
            p.push(format!("{at}.name"), "must match the key's name in the map (or be left out)");
        }
        match keys::validate_key(&at, name, k, None, &known) {
            Ok(key) => {
                if let Some(other) = hashes.insert(key.hash, name.clone()) {
                    p.push(format!("{at}.hash"), format!("the same hash as keys.{other}"));
                }
                keys.insert(name.clone(), Arc::new(key));
            }
            Err(problems) => p.0.extend(problems),
        }
    }
    if raw.keys.is_empty() && !auth.kv_keys {
        p.push("keys", "no client keys: add keys here (`gateway keys create`) or set auth.kv_keys: true");
    }
    let secret_hosts = secrets::validate_bindings(&mut p, &raw);
    secrets::check_uses(&mut p, &secret_hosts, &models, classifier.as_ref());
    let privacy = validate_privacy(&mut p, &raw, max_body_bytes);
    let audit = validate_audit(&raw);

    if !p.0.is_empty() {
        return Err(ConfigError { problems: p.0 });
    }
    let capabilities = raw
        .capabilities
        .into_iter()
        .map(|(k, c)| (k, Capability { route: c.route, description: c.description, local_only: c.local_only.unwrap_or(false) }))
        .collect();
    let routes = raw
        .routes
        .into_iter()
        .map(|(k, r)| {
            let require_local = r.require_local.unwrap_or(false);
            (k.clone(), Route { name: k, models: r.models, description: r.description, require_local })
        })
        .collect();
    Ok(Config {
        server: Server { max_body_bytes, config_refresh_secs: raw.server.config_refresh_secs.unwrap_or(10) },
        models,
        capabilities,
        routes,
        router: RouterConfig { default_route: raw.router.default_route, aliases, keyword, embedding, classifier },
        total_timeout_ms,
        auth,
        keys,
        privacy,
        audit,
        secret_hosts,
        digest,
    })
}

fn validate_auth(p: &mut Problems, raw: &RawConfig) -> AuthConfig {
    let a = &raw.auth;
    let counters = match a.counters.as_deref() {
        None | Some("platform") => Counters::Platform,
        Some("memory") => Counters::Memory,
        Some(other) => {
            p.push("auth.counters", format!("unknown counter store \"{other}\" (known: platform, memory)"));
            Counters::Platform
        }
    };
    AuthConfig { kv_keys: a.kv_keys.unwrap_or(false), kv_cache_secs: a.kv_cache_secs.unwrap_or(30), counters }
}

fn validate_privacy(p: &mut Problems, raw: &RawConfig, max_body_bytes: usize) -> Privacy {
    let names = raw.privacy.pii.clone().unwrap_or_else(|| PiiClass::ALL.iter().map(|c| c.as_str().to_owned()).collect());
    let mut pii = Vec::new();
    for (i, n) in names.iter().enumerate() {
        match PiiClass::parse(n) {
            Some(c) => pii.push(c),
            None => {
                let known: Vec<&str> = PiiClass::ALL.iter().map(|c| c.as_str()).collect();
                p.push(format!("privacy.pii[{i}]"), format!("unknown PII class \"{n}\" (known: {})", known.join(", ")));
            }
        }
    }
    let max_scan_bytes = raw.privacy.max_scan_bytes.unwrap_or(max_body_bytes);
    if max_scan_bytes == 0 {
        p.push("privacy.max_scan_bytes", "must be greater than 0");
    }
    Privacy { pii, max_scan_bytes }
}

fn validate_audit(raw: &RawConfig) -> AuditConfig {
    AuditConfig { include_prompts: raw.audit.include_prompts.unwrap_or(false) }
}

/// USD to integer nano-dollars.
pub fn usd_to_nanos(usd: f64) -> u64 {
    (usd * 1e9).round() as u64
}

fn positive(p: &mut Problems, path: &str, v: u64) {
    if v == 0 {
        p.push(path, "must be greater than 0");
    }
}

fn check_name(p: &mut Problems, path: &str, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'));
    if !ok {
        p.push(path, "names may use letters, digits and - _ . : / (at most 128)");
    }
}

fn is_secret_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
