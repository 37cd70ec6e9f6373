//! The tiers' classifiers, each a mechanism with no knowledge of the config or the cascade:
//! keyword rules (`keyword`, tier 1), the MiniLM embedding (`embed`) with the trained head
//! (`head`) and the YAML's examples (`intents`) for tier 2. `config` builds them from the YAML;
//! `router` runs the cascade over them. Tier 3 is a separate host (`gateway/escalate.rs`).

#[cfg(feature = "embedding")]
pub mod embed;
pub mod head;
pub mod intents;
pub mod keyword;

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
