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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub models: Vec<String>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouter {
    pub default_route: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub keyword: Option<RawKeywordTier>,
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
