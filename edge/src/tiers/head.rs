//! Tier 2's trained classifier over the MiniLM sentence embedding: a small multi-layer
//! perceptron (one ReLU hidden layer, then softmax) or a multinomial logistic regression,
//! trained offline on the public corpus (`models/corpus/build`, `models/router/train.py`) and
//! compiled into the build (`models/router/head.bin`).
//!
//! Its probabilities are calibrated (temperature fitted on out-of-fold logits), so
//! `router.embedding.min_confidence` reads as "the probability the decision is right". It also
//! carries the sensitive detector's threshold: the lowest P(sensitive) that kept cross-validated
//! recall at the target (0.99), so anything at or above it is treated as possibly sensitive.
//!
//! File layout (little-endian): `GWHEADv1` (linear) or `GWHEADv2` (hidden layer), dim u32,
//! labels u32, max_tokens u32, [v2: hidden u32], per label a u16 length and UTF-8 name,
//! temperature f32, sensitive threshold f32, example weight f32, corpus sha256 (32 bytes), then
//! f32 weights: v1 W (labels x dim, row per label), b (labels); v2 W1 (hidden x dim, row per
//! unit), b1 (hidden), W2 (labels x hidden, row per label), b2 (labels).
//!
//! An optional trailer holds a binary sensitive detector trained beside the head: `GWSENSv1`,
//! hidden u32 (0: linear), then its layers the same way with one output (the logit). With it,
//! the sensitive score is the mean of the head's P(sensitive) and the detector's probability
//! (two models err on different prompts: at the same recall, fewer others are pinned local),
//! and the threshold in the file is the one chosen for that mean.

use std::sync::OnceLock;

const MAGIC_LINEAR: &[u8; 8] = b"GWHEADv1";
const MAGIC_MLP: &[u8; 8] = b"GWHEADv2";
const MAGIC_DETECTOR: &[u8; 8] = b"GWSENSv1";

/// The head shipped with this build.
static BUNDLED: &[u8] = include_bytes!("../../../models/router/head.bin");

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum HeadError {
    #[error("router head: {0}")]
    Format(&'static str),
    #[error("router head: {labels} labels of width {dim} do not fit {len} bytes")]
    Size { labels: usize, dim: usize, len: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub dim: usize,
    pub labels: Vec<String>,
    /// The token limit the head was trained with (the tier should embed with the same).
    pub max_tokens: usize,
    pub temperature: f32,
    pub sensitive_threshold: f32,
    /// The weight of the YAML examples' cosine evidence, fitted with the head.
    pub example_weight: f32,
    pub corpus_sha256: [u8; 32],
    /// Hidden units (0: a linear head).
    pub hidden: usize,
    layers: Layers,
    /// The binary sensitive detector, when the file carries one.
    detector: Option<Layers>,
}

/// Dense layers with ReLU between them.
#[derive(Debug, Clone, PartialEq)]
struct Layers(Vec<Dense>);

impl Layers {
    /// `dim -> [hidden ->] outputs`, read in file order.
    fn read(r: &mut Reader<'_>, dim: usize, hidden: usize, outputs: usize) -> Result<Self, HeadError> {
        Ok(Self(if hidden > 0 { vec![Dense::read(r, dim, hidden)?, Dense::read(r, hidden, outputs)?] } else { vec![Dense::read(r, dim, outputs)?] }))
    }

    fn floats(dim: usize, hidden: usize, outputs: usize) -> usize {
        if hidden > 0 { hidden * dim + hidden + outputs * hidden + outputs } else { outputs * dim + outputs }
    }

    fn forward(&self, v: &[f32]) -> Vec<f64> {
        let mut x: Vec<f64> = v.iter().map(|&a| f64::from(a)).collect();
        for (i, layer) in self.0.iter().enumerate() {
            x = layer.apply(&x);
            if i + 1 < self.0.len() {
                x.iter_mut().for_each(|a| *a = a.max(0.0));
            }
        }
        x
    }
}

/// `out = W x + b`, W row-major (one row per output).
#[derive(Debug, Clone, PartialEq)]
struct Dense {
    inputs: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl Dense {
    fn read(r: &mut Reader<'_>, inputs: usize, outputs: usize) -> Result<Self, HeadError> {
        let weights = r.f32s(inputs * outputs)?;
        let bias = r.f32s(outputs)?;
        if weights.iter().chain(&bias).any(|x| !x.is_finite()) {
            return Err(HeadError::Format("non-finite weight"));
        }
        Ok(Self { inputs, weights, bias })
    }

    fn apply(&self, x: &[f64]) -> Vec<f64> {
        self.weights
            .chunks_exact(self.inputs)
            .zip(&self.bias)
            .map(|(w, b)| f64::from(*b) + w.iter().zip(x).map(|(a, v)| f64::from(*a) * v).sum::<f64>())
            .collect()
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HeadError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or(HeadError::Format("truncated"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<usize, HeadError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn f32(&mut self) -> Result<f32, HeadError> {
        let b = self.take(4)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, HeadError> {
        Ok(self.take(n.checked_mul(4).ok_or(HeadError::Format("too large"))?)?.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }
}

impl Head {
    /// The head compiled into this build, parsed once.
    pub fn bundled() -> Result<&'static Head, HeadError> {
        static PARSED: OnceLock<Result<Head, HeadError>> = OnceLock::new();
        PARSED.get_or_init(|| Head::parse(BUNDLED)).as_ref().map_err(Clone::clone)
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, HeadError> {
        let mut r = Reader { bytes, at: 0 };
        let mlp = match r.take(8)? {
            m if m == MAGIC_LINEAR => false,
            m if m == MAGIC_MLP => true,
            _ => return Err(HeadError::Format("not a head file (bad magic)")),
        };
        let (dim, n, max_tokens) = (r.u32()?, r.u32()?, r.u32()?);
        let hidden = if mlp { r.u32()? } else { 0 };
        if !(1..=4096).contains(&dim) || !(2..=256).contains(&n) || hidden > 4096 || (mlp && hidden == 0) {
            return Err(HeadError::Format("implausible dimensions"));
        }
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let b = r.take(2)?;
            let len = usize::from(u16::from_le_bytes([b[0], b[1]]));
            let name = std::str::from_utf8(r.take(len)?).map_err(|_| HeadError::Format("label is not UTF-8"))?;
            labels.push(name.to_owned());
        }
        let (temperature, sensitive_threshold, example_weight) = (r.f32()?, r.f32()?, r.f32()?);
        let valid = temperature.is_finite() && temperature > 0.0 && (0.0..=1.0).contains(&sensitive_threshold) && example_weight.is_finite() && example_weight >= 0.0;
        if !valid {
            return Err(HeadError::Format("temperature, threshold or example weight out of range"));
        }
        let mut corpus_sha256 = [0u8; 32];
        corpus_sha256.copy_from_slice(r.take(32)?);
        let size = HeadError::Size { labels: n, dim, len: bytes.len() };
        if bytes.len() - r.at < 4 * Layers::floats(dim, hidden, n) {
            return Err(size);
        }
        let layers = Layers::read(&mut r, dim, hidden, n)?;
        let detector = if r.at == bytes.len() {
            None
        } else {
            if r.take(8).ok() != Some(&MAGIC_DETECTOR[..]) {
                return Err(HeadError::Format("bytes after the head that are not a sensitive detector"));
            }
            let units = r.u32().map_err(|_| size.clone())?;
            if units > 4096 {
                return Err(HeadError::Format("implausible dimensions"));
            }
            if bytes.len() - r.at != 4 * Layers::floats(dim, units, 1) {
                return Err(size);
            }
            Some(Layers::read(&mut r, dim, units, 1)?)
        };
        Ok(Self { dim, labels, max_tokens, temperature, sensitive_threshold, example_weight, corpus_sha256, hidden, layers, detector })
    }

    /// The score the sensitive threshold applies to: the head's P(sensitive) (`p_head`), or
    /// with a detector the mean of that and the detector's probability.
    pub fn sensitive_score(&self, v: &[f32], p_head: f64) -> f64 {
        match &self.detector {
            Some(d) => (p_head + 1.0 / (1.0 + (-d.forward(v)[0]).exp())) / 2.0,
            None => p_head,
        }
    }

    pub fn has_detector(&self) -> bool {
        self.detector.is_some()
    }

    /// Calibrated log-probabilities of every label, in `labels` order.
    pub fn log_probs(&self, v: &[f32]) -> Vec<f64> {
        let x = self.layers.forward(v);
        let z: Vec<f64> = x.iter().map(|a| a / f64::from(self.temperature)).collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + z.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        z.iter().map(|x| x - lse).collect()
    }

    pub fn label_index(&self, name: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_bundled_head_parses_and_gives_a_distribution() {
        let h = Head::bundled().unwrap();
        assert_eq!(h.dim, 384);
        assert!(h.labels.iter().any(|l| l == "sensitive") && h.labels.len() >= 9, "{:?}", h.labels);
        let v = vec![1.0 / (384f32).sqrt(); 384];
        let p: f64 = h.log_probs(&v).iter().map(|l| l.exp()).sum();
        assert!((p - 1.0).abs() < 1e-9, "{p}");
    }

    /// The bundled head gives, in Rust, the log-probabilities train.py computed for the same
    /// fixed vectors (its report's `check`): the same bytes, read and applied the same way.
    #[test]
    fn rust_reproduces_the_trainers_outputs() {
        let report: serde_json::Value = serde_json::from_str(include_str!("../../../models/router/head.json")).unwrap();
        let want = report["check"]["log_probs"].as_array().expect("head.json has check vectors (train.py writes them)");
        let h = Head::bundled().unwrap();
        for (k, row) in want.iter().enumerate() {
            let mut v: Vec<f32> = (0..h.dim).map(|i| (0.37 * (k + 1) as f64 * (i + 1) as f64).sin() as f32).collect();
            crate::tiers::embed::normalize(&mut v);
            let got = h.log_probs(&v);
            let want: Vec<f64> = row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "vector {k}: {got:?} != {want:?}");
            }
        }
    }

    /// The bundled detector gives the probabilities train.py computed for the same vectors.
    #[test]
    fn rust_reproduces_the_trainers_detector() {
        let report: serde_json::Value = serde_json::from_str(include_str!("../../../models/router/head.json")).unwrap();
        let want = report["check"]["detector_probabilities"].as_array().expect("head.json has the detector's check (train.py --detector 1)");
        let h = Head::bundled().unwrap();
        assert!(h.has_detector());
        for (k, w) in want.iter().enumerate() {
            let mut v: Vec<f32> = (0..h.dim).map(|i| (0.37 * (k + 1) as f64 * (i + 1) as f64).sin() as f32).collect();
            crate::tiers::embed::normalize(&mut v);
            // With p_head = 0 the score is half the detector's probability.
            let got = 2.0 * h.sensitive_score(&v, 0.0);
            assert!((got - w.as_f64().unwrap()).abs() < 1e-4, "vector {k}: {got} != {w}");
        }
    }

    /// A hand-made two-unit MLP: relu(W1 x + b1), then W2 h + b2, over the temperature.
    #[test]
    fn a_hidden_layer_is_applied_with_relu() {
        let mut b = b"GWHEADv2".to_vec();
        for n in [2u32, 2, 8, 2] {
            b.extend(n.to_le_bytes());
        }
        for l in ["a", "b"] {
            b.extend(1u16.to_le_bytes());
            b.extend(l.as_bytes());
        }
        for f in [2.0f32, 0.5, 0.0] {
            b.extend(f.to_le_bytes());
        }
        b.extend([0u8; 32]);
        // W1 = [[1, 0], [0, 1]], b1 = [0, -1]; W2 = [[2, 0], [0, 2]], b2 = [0, 0].
        for f in [1.0f32, 0.0, 0.0, 1.0, 0.0, -1.0, 2.0, 0.0, 0.0, 2.0, 0.0, 0.0] {
            b.extend(f.to_le_bytes());
        }
        let h = Head::parse(&b).unwrap();
        assert_eq!(h.hidden, 2);
        // x = (3, 0.5): hidden (3, 0) after relu, logits (6, 0), over T = 2: (3, 0).
        let lp = h.log_probs(&[3.0, 0.5]);
        let lse = (3f64.exp() + 1.0).ln();
        assert!((lp[0] - (3.0 - lse)).abs() < 1e-9 && (lp[1] - (0.0 - lse)).abs() < 1e-9, "{lp:?}");
        assert!(matches!(Head::parse(&b[..b.len() - 4]), Err(HeadError::Size { .. })));
        assert!(!h.has_detector());
        assert_eq!(h.sensitive_score(&[3.0, 0.5], 0.25), 0.25);
        // A linear detector, logit = x0 - x1 - 2.5 = 0 at (3, 0.5): probability 0.5, mean with 0.25.
        let mut with = b.clone();
        with.extend(b"GWSENSv1");
        with.extend(0u32.to_le_bytes());
        for f in [1.0f32, -1.0, -2.5] {
            with.extend(f.to_le_bytes());
        }
        let h = Head::parse(&with).unwrap();
        assert!((h.sensitive_score(&[3.0, 0.5], 0.25) - 0.375).abs() < 1e-9);
        assert!(matches!(Head::parse(&with[..with.len() - 4]), Err(HeadError::Size { .. })));
        let mut junk = b.clone();
        junk.extend(b"whatever");
        assert_eq!(Head::parse(&junk), Err(HeadError::Format("bytes after the head that are not a sensitive detector")));
    }

    #[test]
    fn junk_is_refused_not_trusted() {
        let good = BUNDLED;
        assert_eq!(Head::parse(b"short"), Err(HeadError::Format("truncated")));
        assert_eq!(Head::parse(b"GWINTv01aaaaaaaaaaaaaa"), Err(HeadError::Format("not a head file (bad magic)")));
        assert!(matches!(Head::parse(&good[..good.len() - 4]), Err(HeadError::Size { .. })));
        let mut nan = good.to_vec();
        let n = nan.len();
        nan[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
        assert_eq!(Head::parse(&nan), Err(HeadError::Format("non-finite weight")));
    }
}
