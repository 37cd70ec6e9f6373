//! A trained head over the classifier model's own hidden state: a multinomial logistic regression
//! on the final hidden state where the prompt asks for the answer, calibrated by a temperature.
//!
//! A head is valid only for what it was trained on: one model (its shape, as the host's backend
//! reports it), one chat template, and one prompt, i.e. the same labels with the same
//! descriptions in the same order. When any of these differs (another model, an operator's own
//! capabilities or descriptions, `top_k`), the guest scores by label likelihood instead, and the
//! decision says which it used (`method`). The bundled head is `models/router/tier3-head.json`,
//! trained by `models/router/tier3_cv.py head`.

use serde::Deserialize;

use crate::{Label, ModelInfo, Template};

#[derive(Debug, Deserialize)]
struct HeadLabel {
    name: String,
    description: String,
}

#[derive(Debug, Deserialize)]
pub struct Head {
    format: u32,
    pub model: ModelInfo,
    template: String,
    labels: Vec<HeadLabel>,
    temperature: f32,
    /// The weight of tier 2's probabilities (the edge's hint) in the blend, chosen by
    /// cross-validation on the corpus.
    pub hint_weight: f32,
    bias: Vec<f32>,
    /// One row of `model.n_embd` weights per label.
    weights: Vec<Vec<f32>>,
}

/// The head compiled into this guest.
pub const BUNDLED: &str = include_str!("../../../models/router/tier3-head.json");

impl Head {
    pub fn parse(json: &str) -> Result<Head, String> {
        let h: Head = serde_json::from_str(json).map_err(|e| format!("the head: {e}"))?;
        if h.format != 1 {
            return Err(format!("the head: format {} (this guest reads 1)", h.format));
        }
        let n = h.labels.len();
        if n < 2 || h.bias.len() != n || h.weights.len() != n {
            return Err(format!("the head: {n} labels, {} biases and {} weight rows", h.bias.len(), h.weights.len()));
        }
        if let Some(i) = h.weights.iter().position(|r| r.len() != h.model.n_embd) {
            return Err(format!("the head: weight row {i} has {} values for a hidden state of {}", h.weights[i].len(), h.model.n_embd));
        }
        let finite = h.bias.iter().chain(h.weights.iter().flatten()).all(|v| v.is_finite());
        let temperature_ok = h.temperature.is_finite() && h.temperature > 0.0;
        if !(finite && temperature_ok && h.hint_weight.is_finite() && h.hint_weight >= 0.0) {
            return Err("the head: weights, temperature and hint weight must be finite (temperature > 0, hint weight >= 0)".into());
        }
        Ok(h)
    }

    /// Whether the prompt written with `template` for `labels` is the one the head was trained on.
    pub fn fits(&self, template: Template, labels: &[&Label]) -> bool {
        template.name() == self.template
            && labels.len() == self.labels.len()
            && labels.iter().zip(&self.labels).all(|(l, h)| l.name == h.name && l.description == h.description)
    }

    /// Calibrated log-probability of each label (in the order `fits` checked), or None when the
    /// hidden state comes from another model.
    pub fn log_probs(&self, hidden: &[f32], model: &ModelInfo) -> Option<Vec<f32>> {
        if *model != self.model || hidden.len() != self.model.n_embd {
            return None;
        }
        let z: Vec<f64> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| (w.iter().zip(hidden).map(|(a, x)| f64::from(*a) * f64::from(*x)).sum::<f64>() + f64::from(*b)) / f64::from(self.temperature))
            .collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = z.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
        let out: Vec<f32> = z.iter().map(|v| (v - log_sum) as f32).collect();
        out.iter().all(|v| v.is_finite()).then_some(out)
    }
}
