//! Tier 2's decision from the prompt's embedding.
//!
//! With the trained head (`router.embedding.head: bundled`, the default; `tiers/head.rs`):
//! each configured capability the head knows gets its calibrated log-probability; the YAML's
//! examples add `example_weight x (cosine to the capability's nearest example - the mean of
//! those cosines)`, and a capability the head does not know starts level with the head's best
//! guess (so the examples' evidence decides between them): an operator's new capability or
//! examples change decisions without retraining. A softmax over the result gives the scores; confidence is the top probability and
//! the margin its lead over the runner-up. Independently, the head's own P(sensitive) at or
//! above its recall-tuned threshold marks the prompt *possibly sensitive*: the verdict is then
//! `sensitive`, confident, whatever else scored higher (uncertain means local).
//!
//! Without the head (`head: none`): nearest examples only. A capability's score is its best
//! example's cosine; confidence is that top-1 score, the margin how far it stands above the best
//! other capability.
//!
//! Either way the tier decides when confidence reaches the intent's threshold (or the tier's
//! `min_confidence`) and the margin reaches `min_margin`; otherwise the cascade escalates.
//!
//! Example vectors are computed once, ahead of time (`gateway intents build` writes
//! `intents.bin`, shipped beside the model), keyed by the model file's digest and each
//! example's text; examples missing from the file are embedded at load.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::head::Head;
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
    /// Of a longer prompt, its last `tail_tokens` are embedded too (`tiers/embed.rs`).
    pub tail_tokens: usize,
    pub intents: Vec<Intent>,
    /// Use the trained head compiled into the build.
    pub head: bool,
    /// The head's labels that are configured capabilities, with their routes.
    pub head_routes: Vec<(String, String)>,
    /// Overrides the head's fitted example weight.
    pub example_weight: Option<f64>,
    /// Overrides the head's recall-tuned P(sensitive) threshold.
    pub sensitive_threshold: Option<f64>,
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
        h.update(if self.head { b"head" } else { b"none" });
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
    head: Option<HeadUse>,
}

#[derive(Debug, Clone)]
struct HeadUse {
    head: &'static Head,
    /// (head label index, capability, route) for every configured label.
    routes: Vec<(usize, String, String)>,
    example_weight: f64,
    sensitive: Option<(usize, String, f64)>,
}

/// What tier 2 concluded, with the numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticVerdict {
    pub verdict: TierVerdict,
    pub margin: f64,
    /// The verdict clears the threshold and the margin.
    pub confident: bool,
    pub threshold: f64,
    /// The head's P(sensitive), when it has that label.
    pub sensitive_probability: Option<f64>,
    /// P(sensitive) reached the detector's threshold: the verdict is `sensitive`.
    pub possibly_sensitive: bool,
}

impl IntentIndex {
    /// `vectors[i][j]` is the embedding of `cfg.intents[i].examples[j]`.
    pub fn new(cfg: &EmbeddingTierConfig, vectors: Vec<Vec<Vec<f32>>>) -> Result<Self, String> {
        let examples = vectors.into_iter().enumerate().flat_map(|(i, vs)| vs.into_iter().map(move |v| (i, v))).collect();
        let head = if cfg.head { Some(HeadUse::new(Head::bundled().map_err(|e| e.to_string())?, cfg)?) } else { None };
        Ok(Self { examples, intents: cfg.intents.clone(), min_confidence: cfg.min_confidence, min_margin: cfg.min_margin, head })
    }

    /// The index over `cfg`'s examples embedded now with `embedder` (no vector file): for the
    /// native tools and tests, which compare against or stand in for the loaded tier.
    #[cfg(feature = "embedding")]
    pub fn embedding_examples(cfg: &EmbeddingTierConfig, embedder: &super::embed::Embedder) -> Result<Self, String> {
        let vectors = cfg
            .intents
            .iter()
            .map(|i| i.examples.iter().map(|e| embedder.embed(e).map(|x| x.vector).map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(cfg, vectors)
    }

    pub fn example_count(&self) -> usize {
        self.examples.len()
    }

    /// Each capability's best example cosine: (capability, route, intent index, cosine).
    fn nearest(&self, v: &[f32]) -> Vec<(String, String, usize, f64)> {
        let mut best = vec![f64::NEG_INFINITY; self.intents.len()];
        for (i, e) in &self.examples {
            let cos = f64::from(dot(v, e));
            if cos > best[*i] {
                best[*i] = cos;
            }
        }
        // Several intents may share a capability: keep each capability's best.
        let mut by_cap: Vec<(String, String, usize, f64)> = Vec::new();
        for (i, &s) in best.iter().enumerate() {
            let intent = &self.intents[i];
            match by_cap.iter_mut().find(|c| c.0 == intent.capability) {
                Some(entry) if entry.3 >= s => {}
                Some(entry) => *entry = (intent.capability.clone(), intent.route.clone(), i, s),
                None => by_cap.push((intent.capability.clone(), intent.route.clone(), i, s)),
            }
        }
        by_cap
    }

    fn threshold_for(&self, capability: &str) -> f64 {
        self.intents.iter().filter(|i| i.capability == capability).find_map(|i| i.threshold).unwrap_or(self.min_confidence)
    }

    /// Scores a unit vector. `None` with nothing to score against.
    pub fn classify(&self, v: &[f32]) -> Option<SemanticVerdict> {
        let nearest = self.nearest(v);
        let Some(h) = &self.head else { return self.classify_by_examples(nearest) };
        let lp = h.head.log_probs(v);
        // Renormalised over the configured labels.
        let configured: Vec<f64> = h.routes.iter().map(|(i, _, _)| lp[*i]).collect();
        let max = configured.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + configured.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        let mut cands: Vec<(String, String, f64)> = h.routes.iter().map(|(i, c, r)| (c.clone(), r.clone(), lp[*i] - lse)).collect();
        // A capability the head does not know competes with the head's best guess on the
        // examples' evidence alone.
        let prior = cands.iter().map(|c| c.2).fold(f64::NEG_INFINITY, f64::max);
        let mean = if nearest.is_empty() { 0.0 } else { nearest.iter().map(|c| c.3).sum::<f64>() / nearest.len() as f64 };
        for (cap, route, _, cos) in &nearest {
            let evidence = h.example_weight * (cos - mean);
            match cands.iter_mut().find(|c| &c.0 == cap) {
                Some(c) => c.2 += evidence,
                None => cands.push((cap.clone(), route.clone(), prior + evidence)),
            }
        }
        let max = cands.iter().map(|c| c.2).fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = cands.iter().map(|c| (c.2 - max).exp()).sum();
        let mut probs: Vec<(String, String, f64)> = cands.into_iter().map(|(c, r, l)| (c, r, (l - max).exp() / z)).collect();
        probs.sort_by(|a, b| b.2.total_cmp(&a.2));
        let (top_cap, top_route, top) = probs.first().cloned()?;
        let margin = top - probs.get(1).map_or(0.0, |c| c.2);
        let scores = probs.iter().map(|(c, _, p)| (c.clone(), round3(*p))).collect();
        let p_sensitive = h.sensitive.as_ref().map(|(i, _, _)| h.head.sensitive_score(v, lp[*i].exp()));
        let flagged = h.sensitive.as_ref().filter(|(_, _, t)| p_sensitive.is_some_and(|p| p >= *t));
        let (capability, route, confidence, threshold, confident) = match flagged {
            Some((_, route, t)) => ("sensitive".to_owned(), route.clone(), p_sensitive.unwrap_or(0.0), *t, true),
            None => {
                let threshold = self.threshold_for(&top_cap);
                (top_cap, top_route, top, threshold, top >= threshold && margin >= self.min_margin)
            }
        };
        Some(SemanticVerdict {
            verdict: TierVerdict { capability, route, confidence: round3(confidence), scores },
            margin: round3(margin),
            confident,
            threshold,
            sensitive_probability: p_sensitive.map(round3),
            possibly_sensitive: flagged.is_some(),
        })
    }

    fn classify_by_examples(&self, mut by_cap: Vec<(String, String, usize, f64)>) -> Option<SemanticVerdict> {
        by_cap.sort_by(|a, b| b.3.total_cmp(&a.3));
        let (capability, route, top, score) = by_cap.first().cloned()?;
        let second = by_cap.get(1).map_or(0.0, |c| c.3);
        let threshold = self.intents[top].threshold.unwrap_or(self.min_confidence);
        let margin = score - second;
        let scores = by_cap.iter().map(|c| (c.0.clone(), round3(c.3))).collect();
        Some(SemanticVerdict {
            verdict: TierVerdict { capability, route, confidence: round3(score.max(0.0)), scores },
            margin: round3(margin),
            confident: score >= threshold && margin >= self.min_margin,
            threshold,
            sensitive_probability: None,
            possibly_sensitive: false,
        })
    }
}

impl HeadUse {
    fn new(head: &'static Head, cfg: &EmbeddingTierConfig) -> Result<Self, String> {
        let routes: Vec<(usize, String, String)> =
            cfg.head_routes.iter().filter_map(|(c, r)| head.label_index(c).map(|i| (i, c.clone(), r.clone()))).collect();
        if routes.is_empty() {
            return Err(format!("none of the router head's labels ({}) is a configured capability", head.labels.join(", ")));
        }
        let threshold = cfg.sensitive_threshold.unwrap_or(f64::from(head.sensitive_threshold));
        let sensitive = routes.iter().find(|(_, c, _)| c == "sensitive").map(|(i, _, r)| (*i, r.clone(), threshold));
        Ok(Self { head, routes, example_weight: cfg.example_weight.unwrap_or(f64::from(head.example_weight)), sensitive })
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
            tail_tokens: 0,
            head: false,
            head_routes: Vec::new(),
            example_weight: None,
            sensitive_threshold: None,
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
        let idx = IntentIndex::new(&c, vec![vec![unit(&[1.0, 0.0, 0.0])], vec![unit(&[0.0, 1.0, 0.0])]]).expect("index");
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
        let idx = IntentIndex::new(&c, vec![vec![unit(&[1.0, 0.0, 0.0])], vec![unit(&[0.0, 1.0, 0.0])]]).expect("index");
        // Equally near both: no margin.
        assert!(!idx.classify(&unit(&[1.0, 1.0, 0.0])).expect("verdict").confident);
        // Near neither: below the threshold.
        assert!(!idx.classify(&unit(&[0.1, 0.0, 1.0])).expect("verdict").confident);
    }

    #[test]
    fn per_intent_threshold_and_shared_capability() {
        let c = cfg(vec![("code", Some(0.99)), ("math", None), ("math", None)]);
        let idx = IntentIndex::new(&c, vec![vec![unit(&[1.0, 0.0, 0.0])], vec![unit(&[0.0, 1.0, 0.0])], vec![unit(&[0.0, 0.0, 1.0])]]).expect("index");
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
