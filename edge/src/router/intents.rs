//! Tier 2's decision: the prompt's embedding against the embeddings of each intent's example
//! utterances (cosine; vectors are unit length, so a dot product).
//!
//! A capability's score is its best example's cosine. Confidence is that top-1 score; the
//! margin is how far it stands above the best *other* capability. The tier decides when the
//! top-1 score reaches the intent's threshold (or the tier's) and the margin reaches
//! `min_margin`; otherwise the cascade escalates (until tier 3 exists: the default route).
//!
//! Example vectors are computed once, ahead of time (`gateway intents build` writes
//! `intents.bin`, shipped beside the model), keyed by the model file's digest and each
//! example's text; examples missing from the file are embedded at load.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::TierVerdict;

/// One intent from the YAML (`router.embedding.intents`).
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub capability: String,
    pub route: String,
    /// Overrides the tier's `min_confidence` for this capability.
    pub threshold: Option<f64>,
    pub examples: Vec<String>,
}

/// The tier's settings (`router.embedding`).
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingTierConfig {
    /// File names, resolved by the platform: Spin component files, Workers KV keys.
    pub model_file: String,
    pub tokenizer_file: String,
    pub intents_file: String,
    pub min_confidence: f64,
    pub min_margin: f64,
    /// The prompt is truncated to this many tokens (the model's limit is 256).
    pub max_tokens: usize,
    pub intents: Vec<Intent>,
}

impl EmbeddingTierConfig {
    /// Names the intent set: a changed example list gives a new index.
    pub fn intents_digest(&self) -> String {
        let mut h = Sha256::new();
        for i in &self.intents {
            h.update(i.capability.as_bytes());
            h.update([0]);
            h.update(i.route.as_bytes());
            h.update([0]);
            for e in &i.examples {
                h.update(e.as_bytes());
                h.update([0]);
            }
            h.update([1]);
        }
        hex::encode(&h.finalize()[..8])
    }
}

/// The example vectors, ready to score against.
#[derive(Debug, Clone)]
pub struct IntentIndex {
    /// (intent index, unit vector) per example.
    examples: Vec<(usize, Vec<f32>)>,
    intents: Vec<Intent>,
    min_confidence: f64,
    min_margin: f64,
}

/// What tier 2 concluded, with the numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticVerdict {
    pub verdict: TierVerdict,
    pub margin: f64,
    /// The verdict clears the threshold and the margin.
    pub confident: bool,
    pub threshold: f64,
}

impl IntentIndex {
    /// `vectors[i][j]` is the embedding of `cfg.intents[i].examples[j]`.
    pub fn new(cfg: &EmbeddingTierConfig, vectors: Vec<Vec<Vec<f32>>>) -> Self {
        let examples = vectors.into_iter().enumerate().flat_map(|(i, vs)| vs.into_iter().map(move |v| (i, v))).collect();
        Self { examples, intents: cfg.intents.clone(), min_confidence: cfg.min_confidence, min_margin: cfg.min_margin }
    }

    pub fn example_count(&self) -> usize {
        self.examples.len()
    }

    /// Scores a unit vector. `None` with no intents.
    pub fn classify(&self, v: &[f32]) -> Option<SemanticVerdict> {
        let mut best = vec![f64::NEG_INFINITY; self.intents.len()];
        for (i, e) in &self.examples {
            let cos = f64::from(dot(v, e));
            if cos > best[*i] {
                best[*i] = cos;
            }
        }
        // Several intents may share a capability: keep each capability's best.
        let mut by_cap: Vec<(usize, f64)> = Vec::new();
        for (i, &s) in best.iter().enumerate() {
            match by_cap.iter_mut().find(|(j, _)| self.intents[*j].capability == self.intents[i].capability) {
                Some(entry) if entry.1 >= s => {}
                Some(entry) => *entry = (i, s),
                None => by_cap.push((i, s)),
            }
        }
        by_cap.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (top, score) = *by_cap.first()?;
        let second = by_cap.get(1).map_or(0.0, |c| c.1);
        let intent = &self.intents[top];
        let threshold = intent.threshold.unwrap_or(self.min_confidence);
        let margin = score - second;
        let scores = by_cap.iter().map(|(i, s)| (self.intents[*i].capability.clone(), round3(*s))).collect();
        Some(SemanticVerdict {
            verdict: TierVerdict { capability: intent.capability.clone(), route: intent.route.clone(), confidence: round3(score.max(0.0)), scores },
            margin: round3(margin),
            confident: score >= threshold && margin >= self.min_margin,
            threshold,
        })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Dot product: the cosine of two unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

const MAGIC: &[u8; 8] = b"GWINTv01";

/// The precomputed example vectors: `MAGIC`, the model file's sha256 (32 bytes), the width
/// (u32 LE), the count (u32 LE), then per example the first 16 bytes of sha256(text) and `dim`
/// f32 LE. About 1.6 KB per example.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VectorFile {
    pub model_sha256: [u8; 32],
    pub dim: usize,
    pub vectors: HashMap<[u8; 16], Vec<f32>>,
}

pub fn text_key(text: &str) -> [u8; 16] {
    let d = Sha256::digest(text.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

impl VectorFile {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.vectors.len() * (16 + 4 * self.dim));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.model_sha256);
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(self.vectors.len() as u32).to_le_bytes());
        let mut keys: Vec<_> = self.vectors.keys().collect();
        keys.sort();
        for k in keys {
            out.extend_from_slice(k);
            for x in &self.vectors[k] {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let take = |at: usize, n: usize| bytes.get(at..at + n).ok_or_else(|| "intents file is truncated".to_owned());
        if take(0, 8)? != MAGIC {
            return Err("not an intents file (bad magic)".into());
        }
        let mut model_sha256 = [0u8; 32];
        model_sha256.copy_from_slice(take(8, 32)?);
        let u32_at = |at: usize| -> Result<usize, String> {
            let b = take(at, 4)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let dim = u32_at(40)?;
        let count = u32_at(44)?;
        let record = 16 + 4 * dim;
        if dim == 0 || dim > 4096 || bytes.len() != 48 + count * record {
            return Err(format!("intents file: size {} does not match {count} vectors of {dim}", bytes.len()));
        }
        let mut vectors = HashMap::with_capacity(count);
        for r in bytes[48..].chunks_exact(record) {
            let mut k = [0u8; 16];
            k.copy_from_slice(&r[..16]);
            let v = r[16..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            vectors.insert(k, v);
        }
        Ok(Self { model_sha256, dim, vectors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(intents: Vec<(&str, Option<f64>)>) -> EmbeddingTierConfig {
        EmbeddingTierConfig {
            model_file: "m".into(),
            tokenizer_file: "t".into(),
            intents_file: "i".into(),
            min_confidence: 0.5,
            min_margin: 0.05,
            max_tokens: 128,
            intents: intents
                .into_iter()
                .map(|(c, t)| Intent { capability: c.into(), route: format!("r-{c}"), threshold: t, examples: vec!["x".into()] })
                .collect(),
        }
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn picks_nearest_capability_with_margin() {
        let c = cfg(vec![("code", None), ("math", None)]);
        let idx = IntentIndex::new(&c, vec![vec![unit(&[1.0, 0.0, 0.0])], vec![unit(&[0.0, 1.0, 0.0])]]);
        let v = idx.classify(&unit(&[0.9, 0.1, 0.0])).expect("verdict");
        assert_eq!(v.verdict.capability, "code");
        assert_eq!(v.verdict.route, "r-code");
        assert!(v.confident);
        assert!(v.margin > 0.8);
        assert_eq!(v.verdict.scores.len(), 2);
    }

    #[test]
    fn ambiguous_or_weak_is_not_confident() {
        let c = cfg(vec![("code", None), ("math", None)]);
        let idx = IntentIndex::new(&c, vec![vec![unit(&[1.0, 0.0, 0.0])], vec![unit(&[0.0, 1.0, 0.0])]]);
        // Equally near both: no margin.
        assert!(!idx.classify(&unit(&[1.0, 1.0, 0.0])).expect("verdict").confident);
        // Near neither: below the threshold.
        assert!(!idx.classify(&unit(&[0.1, 0.0, 1.0])).expect("verdict").confident);
    }

    #[test]
    fn per_intent_threshold_and_shared_capability() {
        let c = cfg(vec![("code", Some(0.99)), ("math", None), ("math", None)]);
        let idx = IntentIndex::new(&c, vec![vec![unit(&[1.0, 0.0, 0.0])], vec![unit(&[0.0, 1.0, 0.0])], vec![unit(&[0.0, 0.0, 1.0])]]);
        let v = idx.classify(&unit(&[0.9, 0.3, 0.0])).expect("verdict");
        assert_eq!(v.verdict.capability, "code");
        assert!(!v.confident, "0.99 threshold for code");
        let v = idx.classify(&unit(&[0.0, 0.1, 1.0])).expect("verdict");
        assert_eq!(v.verdict.capability, "math");
        assert_eq!(v.verdict.scores.len(), 2, "math counted once");
    }

    #[test]
    fn vector_file_round_trips_and_rejects_junk() {
        let mut f = VectorFile { model_sha256: [7; 32], dim: 3, vectors: HashMap::new() };
        f.vectors.insert(text_key("a"), vec![1.0, 2.0, 3.0]);
        f.vectors.insert(text_key("b"), vec![-1.0, 0.5, 0.0]);
        let bytes = f.to_bytes();
        assert_eq!(VectorFile::parse(&bytes).expect("parses"), f);
        assert!(VectorFile::parse(&bytes[..bytes.len() - 1]).is_err());
        assert!(VectorFile::parse(b"GWINTv01").is_err());
        assert!(VectorFile::parse(b"nonsense").is_err());
        assert_eq!(cfg(vec![("code", None)]).intents_digest(), cfg(vec![("code", None)]).intents_digest());
        assert_ne!(cfg(vec![("code", None)]).intents_digest(), cfg(vec![("math", None)]).intents_digest());
    }
}
