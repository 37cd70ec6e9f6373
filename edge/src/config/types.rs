//! The validated configuration's types: what every other module reads. Built only by
//! `config::validate` (`Config::from_yaml`), so no value here is half-filled or unchecked.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::keys::ClientKey;
use crate::tiers::intents::EmbeddingTierConfig;
use crate::tiers::keyword::KeywordTier;

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
    /// The hosts each secret may be sent to (`secrets:`).
    pub secret_hosts: super::secrets::SecretHosts,
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
    pub kind: ModelKind,
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


/// What a model serves: `POST /v1/chat/completions` (and the router), or `POST /v1/embeddings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelKind {
    #[default]
    Chat,
    Embedding,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Embedding => "embedding",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI and every server speaking its API: vLLM, llama.cpp, Ollama, TGI, LM Studio.
    OpenAi,
    Anthropic,
}

impl ProviderKind {
    pub const NAMES: [&'static str; 2] = ["openai", "anthropic"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "openai" => Some(Self::OpenAi),
            "anthropic" => Some(Self::Anthropic),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

/// A class of personal data the residency check looks for (`policy::pii` finds them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PiiClass {
    Card,
    Iban,
    Ssn,
    Email,
    Phone,
}

impl PiiClass {
    pub const ALL: [PiiClass; 5] = [Self::Card, Self::Iban, Self::Ssn, Self::Email, Self::Phone];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Iban => "iban",
            Self::Ssn => "ssn",
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}
