//! The runtime configuration and the one pass that builds it from YAML.
//!
//! `Config::from_yaml` parses into `raw` structs, then `validate` checks every field, collects
//! every problem with its path (`routes.code.models[1]: unknown model "gpt4o" (known: ...)`)
//! and only then builds a `Config` with no half-filled options. The bundled default lives in
//! `edge/gateway.yaml` (or `$GATEWAY_CONFIG` at build time); `store` swaps in a KV copy at run
//! time.

pub mod raw;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::auth::{self, ClientKey};
use crate::policy::pii::PiiClass;
use crate::providers::ProviderKind;
use crate::router::intents::{EmbeddingTierConfig, Intent};
use crate::router::keyword::{KeywordRule, KeywordTier};
use raw::{RawConfig, RawDefaults, RawModel};

/// The YAML bundled into this build (`edge/gateway.yaml` unless `GATEWAY_CONFIG` was set).
pub const BUNDLED_YAML: &str = include_str!(env!("GATEWAY_BUNDLED_CONFIG"));

#[derive(Debug)]
pub struct Config {
    pub server: Server,
    pub models: BTreeMap<String, Arc<Model>>,
    pub capabilities: BTreeMap<String, Capability>,
    pub routes: BTreeMap<String, Route>,
    pub router: RouterConfig,
    pub total_timeout_ms: u64,
    pub auth: AuthConfig,
    /// Client keys from the YAML, by name.
    pub keys: BTreeMap<String, Arc<ClientKey>>,
    pub privacy: Privacy,
    pub audit: AuditConfig,
    /// sha256 of the YAML text, hex: names the config in logs and `/healthz`.
    pub digest: String,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub max_body_bytes: usize,
    pub config_refresh_secs: u64,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub kv_keys: bool,
    pub kv_cache_secs: u64,
    pub counters: Counters,
}

/// Where rate-limit and budget counters live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counters {
    /// Durable Objects on Workers, the key-value store on Spin: shared by every instance.
    Platform,
    /// This isolate or instance only.
    Memory,
}

#[derive(Debug, Clone)]
pub struct Privacy {
    pub pii: Vec<PiiClass>,
    pub max_scan_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Put the prompt and completion, PII-redacted, in the audit record.
    pub include_prompts: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locality {
    Local,
    Cloud,
}

/// Integer prices: micro-dollars per one million tokens (so $0.15/Mtok is 150_000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Price {
    pub input_micros_per_mtok: u64,
    pub output_micros_per_mtok: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptPolicy {
    pub timeout_ms: u64,
    pub stream_idle_timeout_ms: u64,
    pub retries: u32,
    pub backoff_ms: u64,
    pub max_retry_after_ms: u64,
}

/// A reference to a provider key held by the platform (wrangler secret, Spin variable, env).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef(pub String);

#[derive(Debug)]
pub struct Model {
    pub name: String,
    pub provider: ProviderKind,
    /// Without a trailing slash: `https://api.openai.com/v1`.
    pub base_url: String,
    pub upstream_model: String,
    pub api_key: Option<SecretRef>,
    pub capabilities: Vec<String>,
    pub price: Price,
    pub context_window: Option<u32>,
    pub locality: Locality,
    pub attempt: AttemptPolicy,
    pub max_output_tokens: u32,
    /// Requests and tokens per minute for this model across all keys.
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Capability {
    pub route: String,
    pub description: Option<String>,
    pub local_only: bool,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub models: Vec<String>,
    pub description: Option<String>,
    pub require_local: bool,
}

#[derive(Debug)]
pub struct RouterConfig {
    pub default_route: String,
    /// Model names that mean "let the router choose" (`auto` unless configured).
    pub aliases: Vec<String>,
    pub keyword: KeywordTier,
    /// Tier 2; `None` when the YAML declares no intents.
    pub embedding: Option<EmbeddingTierConfig>,
    /// Tier 3; `None` when no classifier host is configured.
    pub classifier: Option<ClassifierTierConfig>,
}

/// Tier 3 as configured: where the classifier host is and what it may answer.
#[derive(Debug, Clone)]
pub struct ClassifierTierConfig {
    /// `{url}/v1/classify`.
    pub url: String,
    pub secret: String,
    pub timeout_ms: u64,
    pub min_confidence: f64,
    /// Declared to run where local models run: sensitive prompts may be classified there.
    pub local: bool,
    /// Every capability with its description and route: the classifier's label set.
    pub labels: Vec<ClassifierLabel>,
}

#[derive(Debug, Clone)]
pub struct ClassifierLabel {
    pub capability: String,
    pub description: String,
    pub route: String,
}

/// One problem in a config file, with the path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Everything wrong with a config, found in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.path.is_empty() {
                write!(f, "{}", p.message)?;
            } else {
                write!(f, "{}: {}", p.path, p.message)?;
            }
        }
        Ok(())
    }
}

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
    let known = auth::Known { models: model_names.clone(), routes: route_names.clone(), capabilities: cap_names.clone() };
    let mut keys = BTreeMap::new();
    let mut hashes = BTreeMap::new();
    for (name, k) in &raw.keys {
        let at = format!("keys.{name}");
        check_name(&mut p, &at, name);
        if k.name.as_ref().is_some_and(|n| n != name) {
            p.push(format!("{at}.name"), "must match the key's name in the map (or be left out)");
        }
        match auth::validate_key(&at, name, k, None, &known) {
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

/// `secret:NAME` to a reference; anything else is refused without echoing the value.
fn secret_ref(p: &mut Problems, path: &str, v: &str) -> Option<SecretRef> {
    match v.strip_prefix("secret:") {
        Some(n) if is_secret_name(n) => Some(SecretRef(n.to_owned())),
        Some(n) => {
            p.push(path, format!("\"{n}\" is not a valid secret name (letters, digits and _, not starting with a digit)"));
            None
        }
        None => {
            // Never echo the value: it may be a real key pasted by mistake.
            p.push(path, "provider keys must be referenced as secret:NAME and set as a platform secret, never written in the YAML");
            None
        }
    }
}

/// USD to integer nano-dollars.
pub fn usd_to_nanos(usd: f64) -> u64 {
    (usd * 1e9).round() as u64
}

fn validate_model(
    p: &mut Problems,
    name: &str,
    m: &RawModel,
    d: &RawDefaults,
    caps: &[&String],
) -> Option<Model> {
    let at = |field: &str| format!("models.{name}.{field}");
    check_name(p, &format!("models.{name}"), name);
    let provider = ProviderKind::parse(&m.provider);
    if provider.is_none() {
        p.push(at("provider"), format!("unknown provider \"{}\" (known: {})", m.provider, ProviderKind::NAMES.join(", ")));
    }
    let base_url = m.base_url.trim_end_matches('/').to_owned();
    let scheme_ok = base_url.starts_with("https://") || base_url.starts_with("http://");
    if !scheme_ok || base_url.parse::<http::Uri>().is_err() || base_url.contains(char::is_whitespace) {
        p.push(at("base_url"), format!("\"{}\" is not an http(s) URL", m.base_url));
    }
    let api_key = m.api_key.as_deref().and_then(|v| secret_ref(p, &at("api_key"), v));
    for (i, c) in m.capabilities.iter().enumerate() {
        if !caps.contains(&c) {
            p.unknown(at(&format!("capabilities[{i}]")), "capability", c, caps);
        }
    }
    let price = match &m.price {
        None => Price::default(),
        Some(pr) => Price {
            input_micros_per_mtok: micros(p, &at("price.input_per_mtok"), pr.input_per_mtok),
            output_micros_per_mtok: micros(p, &at("price.output_per_mtok"), pr.output_per_mtok),
        },
    };
    let locality = match m.locality.as_deref() {
        None | Some("cloud") => Locality::Cloud,
        Some("local") => Locality::Local,
        Some(other) => {
            p.push(at("locality"), format!("unknown locality \"{other}\" (known: local, cloud)"));
            Locality::Cloud
        }
    };
    // Prompts to a cloud provider, and any provider key, travel only over TLS (plain http only
    // to a loopback address: a local server on this machine, or the tests' mock).
    if scheme_ok && base_url.starts_with("http://") && !is_loopback_url(&base_url) {
        if locality == Locality::Cloud {
            p.push(at("base_url"), "a cloud model must use https (plain http only to a loopback address; a server on your network is `locality: local`)");
        } else if api_key.is_some() {
            p.push(at("base_url"), "a provider key is sent only over https (plain http only to a loopback address)");
        }
    }
    if m.context_window == Some(0) {
        p.push(at("context_window"), "must be greater than 0");
    }
    let attempt = AttemptPolicy {
        timeout_ms: m.timeout_ms.or(d.timeout_ms).unwrap_or(30_000),
        stream_idle_timeout_ms: m.stream_idle_timeout_ms.or(d.stream_idle_timeout_ms).unwrap_or(60_000),
        retries: m.retries.or(d.retries).unwrap_or(1),
        backoff_ms: d.backoff_ms.unwrap_or(250),
        max_retry_after_ms: d.max_retry_after_ms.unwrap_or(5_000),
    };
    positive(p, &at("timeout_ms"), attempt.timeout_ms);
    positive(p, &at("stream_idle_timeout_ms"), attempt.stream_idle_timeout_ms);
    if attempt.retries > 10 {
        p.push(at("retries"), "at most 10 retries per model");
    }
    let max_output_tokens = m.max_output_tokens.or(d.max_output_tokens).unwrap_or(4096);
    for (field, v) in [("rpm", m.rpm), ("tpm", m.tpm)] {
        if v == Some(0) {
            p.push(at(field), "must be greater than 0");
        }
    }
    Some(Model {
        name: name.to_owned(),
        provider: provider?,
        base_url,
        upstream_model: m.upstream_model.clone().unwrap_or_else(|| name.to_owned()),
        api_key,
        capabilities: m.capabilities.clone(),
        price,
        context_window: m.context_window,
        locality,
        attempt,
        max_output_tokens,
        rpm: m.rpm,
        tpm: m.tpm,
    })
}

fn validate_embedding(p: &mut Problems, raw: &RawConfig, caps: &[&String], routes: &[&String]) -> Option<EmbeddingTierConfig> {
    let e = raw.router.embedding.as_ref()?;
    let at = "router.embedding";
    let model_file = match e.model.as_deref() {
        None | Some("int8") => "model-int8.onnx".to_owned(),
        Some("f32") => "model-f32.onnx".to_owned(),
        Some(f) if f.ends_with(".onnx") && is_file_name(f) => f.to_owned(),
        Some(f) => {
            p.push(format!("{at}.model"), format!("\"{f}\" is not int8, f32 or an .onnx file name"));
            String::new()
        }
    };
    let mut file = |field: &str, v: Option<&String>, default: &str| -> String {
        let v = v.cloned().unwrap_or_else(|| default.to_owned());
        if !is_file_name(&v) {
            p.push(format!("{at}.{field}"), format!("\"{v}\" is not a plain file name"));
        }
        v
    };
    let tokenizer_file = file("tokenizer", e.tokenizer.as_ref(), "tokenizer.json");
    let intents_file = file("intents_file", e.intents_file.as_ref(), "intents.bin");
    let unit = |p: &mut Problems, field: String, v: f64| {
        if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
            p.push(field, "must be between 0 and 1");
        }
    };
    let min_confidence = e.min_confidence.unwrap_or(0.5);
    unit(p, format!("{at}.min_confidence"), min_confidence);
    let min_margin = e.min_margin.unwrap_or(0.0);
    unit(p, format!("{at}.min_margin"), min_margin);
    let max_tokens = e.max_tokens.unwrap_or(128);
    if !(1..=256).contains(&max_tokens) {
        p.push(format!("{at}.max_tokens"), "must be between 1 and 256 (the model's limit)");
    }
    let head = match e.head.as_deref() {
        None | Some("bundled") => true,
        Some("none") => false,
        Some(other) => {
            p.push(format!("{at}.head"), format!("\"{other}\" is not bundled or none"));
            false
        }
    };
    if let Some(w) = e.example_weight {
        if !(w.is_finite() && (0.0..=100.0).contains(&w)) {
            p.push(format!("{at}.example_weight"), "must be between 0 and 100");
        }
    }
    if let Some(t) = e.sensitive_threshold {
        unit(p, format!("{at}.sensitive_threshold"), t);
    }
    if e.intents.is_empty() && !head {
        p.push(format!("{at}.intents"), "the embedding tier needs at least one intent, or the trained head (head: bundled)");
    }
    // The head's labels that are configured capabilities, with their routes.
    let head_routes: Vec<(String, String)> = if head {
        match crate::router::head::Head::bundled() {
            Ok(h) => h.labels.iter().filter_map(|l| raw.capabilities.get(l).map(|c| (l.clone(), c.route.clone()))).collect(),
            Err(err) => {
                p.push(format!("{at}.head"), err.to_string());
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    if head && head_routes.is_empty() {
        p.push(format!("{at}.head"), "none of the trained head's labels is a configured capability (use head: none)");
    }
    let mut intents = Vec::new();
    for (i, r) in e.intents.iter().enumerate() {
        let at = format!("{at}.intents[{i}]");
        let Some(route) = capability_route(p, raw, &at, &r.capability, r.route.as_ref(), caps, routes) else { continue };
        if let Some(t) = r.threshold {
            unit(p, format!("{at}.threshold"), t);
        }
        if r.examples.is_empty() {
            p.push(format!("{at}.examples"), "an intent needs at least one example");
        }
        for (j, x) in r.examples.iter().enumerate() {
            if x.trim().is_empty() {
                p.push(format!("{at}.examples[{j}]"), "examples must not be blank");
            }
        }
        intents.push(Intent { capability: r.capability.clone(), route, threshold: r.threshold, examples: r.examples.clone() });
    }
    Some(EmbeddingTierConfig {
        model_file,
        tokenizer_file,
        intents_file,
        min_confidence,
        min_margin,
        max_tokens,
        intents,
        head,
        head_routes,
        example_weight: e.example_weight,
        sensitive_threshold: e.sensitive_threshold,
    })
}

fn validate_classifier(p: &mut Problems, raw: &RawConfig) -> Option<ClassifierTierConfig> {
    let c = raw.router.classifier.as_ref()?;
    let at = "router.classifier";
    let url = c.url.trim_end_matches('/').to_owned();
    let host_ok = url.split_once("://").is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains(['?', '#', ' ']));
    if !host_ok {
        p.push(format!("{at}.url"), format!("\"{}\" is not an http(s) URL", c.url));
    } else if url.starts_with("http://") && !is_loopback_url(&url) {
        p.push(format!("{at}.url"), "must be https (plain http only to a loopback address: 127.0.0.0/8, [::1], localhost)");
    }
    let secret = c.secret.clone().unwrap_or_else(|| "CLASSIFIER_SECRET".to_owned());
    if !is_secret_name(&secret) {
        p.push(format!("{at}.secret"), "the name of a secret: letters, digits and underscores (the value itself never goes in the YAML)");
    }
    let timeout_ms = c.timeout_ms.unwrap_or(300);
    if !(1..=30_000).contains(&timeout_ms) {
        p.push(format!("{at}.timeout_ms"), "must be between 1 and 30000");
    }
    let min_confidence = c.min_confidence.unwrap_or(0.0);
    if !(min_confidence.is_finite() && (0.0..=1.0).contains(&min_confidence)) {
        p.push(format!("{at}.min_confidence"), "must be between 0 and 1");
    }
    let labels: Vec<ClassifierLabel> = raw
        .capabilities
        .iter()
        .map(|(name, cap)| ClassifierLabel { capability: name.clone(), description: cap.description.clone().unwrap_or_default(), route: cap.route.clone() })
        .collect();
    if !(2..=32).contains(&labels.len()) {
        p.push(at, "the classifier chooses among 2 to 32 capabilities");
    }
    for l in &labels {
        if l.description.chars().count() > 300 {
            p.push(format!("capabilities.{}.description", l.capability), "at most 300 characters (the classifier reads it)");
        }
    }
    Some(ClassifierTierConfig { url, secret, timeout_ms, min_confidence, local: c.local.unwrap_or(false), labels })
}

/// `http://127.x.y.z[:port]`, `http://[::1][:port]` or `http://localhost[:port]`, with an
/// optional path.
fn is_loopback_url(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, port)) if port.is_empty() || port.starts_with(':') => h,
            _ => return false,
        }
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.eq_ignore_ascii_case("localhost") || host == "::1" {
        return true;
    }
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4 && octets[0] == "127" && octets.iter().all(|o| o.parse::<u8>().is_ok())
}

/// The route a router rule sends `capability` to: its own `route`, else the capability's.
/// `None` (with the problem recorded) for an unknown capability.
fn capability_route(
    p: &mut Problems,
    raw: &RawConfig,
    at: &str,
    capability: &str,
    route: Option<&String>,
    caps: &[&String],
    routes: &[&String],
) -> Option<String> {
    let Some(cap) = raw.capabilities.get(capability) else {
        p.unknown(format!("{at}.capability"), "capability", capability, caps);
        return None;
    };
    let route = route.cloned().unwrap_or_else(|| cap.route.clone());
    if !raw.routes.contains_key(&route) {
        p.unknown(format!("{at}.route"), "route", &route, routes);
    }
    Some(route)
}

/// A name without directories: model files are looked up in one place per platform.
fn is_file_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) && !s.starts_with('.')
}

fn validate_keyword(p: &mut Problems, raw: &RawConfig, caps: &[&String], routes: &[&String]) -> KeywordTier {
    let Some(k) = &raw.router.keyword else {
        return KeywordTier::empty();
    };
    let min_confidence = k.min_confidence.unwrap_or(0.6);
    if !(min_confidence > 0.0 && min_confidence <= 1.0) {
        p.push("router.keyword.min_confidence", "must be in (0, 1]");
    }
    let mut rules = Vec::new();
    for (i, r) in k.rules.iter().enumerate() {
        let at = format!("router.keyword.rules[{i}]");
        let Some(route) = capability_route(p, raw, &at, &r.capability, r.route.as_ref(), caps, routes) else { continue };
        if r.keywords.is_empty() {
            p.push(format!("{at}.keywords"), "a rule needs at least one keyword");
        }
        for (j, w) in r.keywords.iter().enumerate() {
            if w.trim().is_empty() {
                p.push(format!("{at}.keywords[{j}]"), "keywords must not be blank");
            }
        }
        let weight = r.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight > 0.0) {
            p.push(format!("{at}.weight"), "must be a positive number");
        }
        rules.push(KeywordRule { capability: r.capability.clone(), route, keywords: r.keywords.clone(), weight });
    }
    match KeywordTier::new(rules, min_confidence, k.max_scan_bytes.unwrap_or(16 * 1024)) {
        Ok(t) => t,
        Err(e) => {
            p.push("router.keyword", e.to_string());
            KeywordTier::empty()
        }
    }
}

fn positive(p: &mut Problems, path: &str, v: u64) {
    if v == 0 {
        p.push(path, "must be greater than 0");
    }
}

fn micros(p: &mut Problems, path: &str, usd: f64) -> u64 {
    if !(0.0..1e6).contains(&usd) {
        p.push(path, "must be a price in USD per million tokens, 0 or more");
        return 0;
    }
    (usd * 1_000_000.0).round() as u64
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
