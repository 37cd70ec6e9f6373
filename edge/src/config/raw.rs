//! The YAML file as written: serde structs with `deny_unknown_fields`, every optional knob an
//! `Option`. Nothing here is trusted; `super::validate` turns it into the runtime `Config`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub defaults: RawDefaults,
    pub models: BTreeMap<String, RawModel>,
    pub capabilities: BTreeMap<String, RawCapability>,
    pub routes: BTreeMap<String, RawRoute>,
    pub router: RawRouter,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub keys: BTreeMap<String, RawKey>,
    #[serde(default)]
    pub privacy: RawPrivacy,
    #[serde(default)]
    pub audit: RawAudit,
    /// Secret name -> the hosts it may be sent to.
    #[serde(default)]
    pub secrets: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Also look keys up in KV under `apikey:<sha256 hex>`.
    pub kv_keys: Option<bool>,
    /// How long an isolate caches a KV key lookup (found or not).
    pub kv_cache_secs: Option<u64>,
    /// Where rate-limit and budget counters live: `platform` (Durable Objects on Workers, the
    /// key-value store on Spin) or `memory` (this isolate only: tests and single-instance dev).
    pub counters: Option<String>,
}

/// One client key. Only its hash is stored; the same shape is accepted from KV.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    /// Required in a KV record (`apikey:<hex>`); in the YAML the map key is the name.
    pub name: Option<String>,
    pub hash: Option<String>,
    pub owner: Option<String>,
    pub models: Option<Vec<String>>,
    pub routes: Option<Vec<String>>,
    pub capabilities: Option<Vec<String>>,
    pub max_cost_usd_per_request: Option<f64>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget_usd_per_day: Option<f64>,
    pub budget_usd_per_month: Option<f64>,
    pub allow_cloud: Option<bool>,
    pub revoked: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrivacy {
    /// PII classes that make a prompt sensitive: card, iban, ssn, email, phone.
    pub pii: Option<Vec<String>>,
    /// Bytes of message text the PII detector reads (all messages, newest first).
    pub max_scan_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// Put the prompt and completion (PII-redacted) in the audit record.
    pub include_prompts: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub max_body_bytes: Option<usize>,
    pub config_refresh_secs: Option<u64>,
}

/// Per-attempt behaviour; every model may override each field.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    pub timeout_ms: Option<u64>,
    pub stream_idle_timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    pub backoff_ms: Option<u64>,
    pub max_retry_after_ms: Option<u64>,
    pub total_timeout_ms: Option<u64>,
    pub max_output_tokens: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub provider: String,
    pub base_url: String,
    /// `chat` (the default) or `embedding`.
    pub kind: Option<String>,
    pub upstream_model: Option<String>,
    pub api_key: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub price: Option<RawPrice>,
    pub context_window: Option<u32>,
    pub locality: Option<String>,
    /// Overrides of `defaults` for this model (serde's `flatten` cannot be combined with
    /// `deny_unknown_fields`, so the fields are spelled out).
    pub timeout_ms: Option<u64>,
    pub stream_idle_timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    pub max_output_tokens: Option<u32>,
    /// Requests and tokens per minute across all keys.
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapability {
    pub route: String,
    pub description: Option<String>,
    /// Prompts with this capability are served by local models only.
    pub local_only: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub models: Vec<String>,
    pub description: Option<String>,
    /// Only the route's local models may serve it.
    pub require_local: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouter {
    pub default_route: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub keyword: Option<RawKeywordTier>,
    pub embedding: Option<RawEmbeddingTier>,
    pub classifier: Option<RawClassifierTier>,
}

/// Tier 3: the regional classifier host (`wasi-host classify`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClassifierTier {
    /// Base URL of the host, e.g. `https://classifier.eu.internal:8788`.
    pub url: String,
    /// Name of the secret (Workers secret / Spin variable) holding the shared signing key.
    pub secret: Option<String>,
    /// How long the edge waits for an answer before serving without it (ms, default 300).
    pub timeout_ms: Option<u64>,
    /// A classifier answer below this probability is not used (default 0).
    pub min_confidence: Option<f64>,
    /// The host runs where local models run (same residency): sensitive prompts may be sent to
    /// it. Default false: they are routed without tier 3.
    pub local: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbeddingTier {
    /// `int8` (default: 23 MB file) or `f32` (90 MB), or a file name.
    pub model: Option<String>,
    pub tokenizer: Option<String>,
    /// The precomputed example vectors (`gateway intents build`).
    pub intents_file: Option<String>,
    pub min_confidence: Option<f64>,
    pub min_margin: Option<f64>,
    pub max_tokens: Option<usize>,
    /// Of a prompt longer than `max_tokens`, how many of its last tokens are kept too (default 16).
    pub tail_tokens: Option<usize>,
    /// `bundled` (default): the trained head compiled into the build; `none`: examples only.
    pub head: Option<String>,
    /// Weight of the examples' cosine evidence next to the head (default: the head's own).
    pub example_weight: Option<f64>,
    /// P(sensitive) at or above which a prompt is treated as sensitive (default: the head's).
    pub sensitive_threshold: Option<f64>,
    #[serde(default)]
    pub intents: Vec<RawIntent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIntent {
    pub capability: String,
    pub route: Option<String>,
    pub threshold: Option<f64>,
    pub examples: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeywordTier {
    pub min_confidence: Option<f64>,
    pub max_scan_bytes: Option<usize>,
    #[serde(default)]
    pub rules: Vec<RawKeywordRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeywordRule {
    pub capability: String,
    pub route: Option<String>,
    pub keywords: Vec<String>,
    pub weight: Option<f64>,
}
