//! Tier 2's lifetime in an isolate or instance: the model loads on first need, from the
//! platform's model files, once; concurrent first requests share that one load; a failed load
//! is retried after `RETRY_MS` (requests meanwhile route without tier 2 and say why). A new
//! config with other intents or another model loads again; one that changes only how decisions
//! are taken (thresholds, margins, the example weight, the sensitive threshold, routes) gets a
//! new index over the loaded model and vectors at once, so a KV config that lowers the
//! sensitive threshold applies from its first request, not from the isolate's next start.

use std::cell::RefCell;
use std::rc::Rc;

use futures::future::{FutureExt, LocalBoxFuture, Shared};

use crate::platform::Platform;
use crate::tiers::intents::{EmbeddingTierConfig, SemanticVerdict};
use crate::router::SemanticTier;

const RETRY_MS: u64 = 30_000;

type Loading = Shared<LocalBoxFuture<'static, Result<Rc<Loaded>, String>>>;

#[derive(Default)]
pub struct SemanticCache {
    state: RefCell<State>,
}

#[derive(Default)]
enum State {
    #[default]
    Empty,
    Loading { key: String, fut: Loading },
    Ready(Rc<Loaded>),
    Failed { key: String, at_ms: u64, error: String },
}

/// The loaded tier (its load time and cost are logged as `embedding_loaded`).
pub struct Loaded {
    key: String,
    /// The settings `index` was built from.
    cfg: EmbeddingTierConfig,
    #[cfg(feature = "embedding")]
    embedder: Rc<crate::tiers::embed::Embedder>,
    /// Each intent's example vectors, kept to rebuild the index for new settings.
    #[cfg(feature = "embedding")]
    vectors: Rc<Vec<Vec<Vec<f32>>>>,
    #[cfg(feature = "embedding")]
    index: crate::tiers::intents::IntentIndex,
}

impl Loaded {
    /// The same model and vectors under `cfg`'s settings (same `key_of`).
    #[cfg(feature = "embedding")]
    fn rebind(&self, cfg: &EmbeddingTierConfig) -> Result<Rc<Loaded>, String> {
        let index = crate::tiers::intents::IntentIndex::new(cfg, (*self.vectors).clone())?;
        Ok(Rc::new(Loaded { key: self.key.clone(), cfg: cfg.clone(), embedder: Rc::clone(&self.embedder), vectors: Rc::clone(&self.vectors), index }))
    }

    #[cfg(not(feature = "embedding"))]
    fn rebind(&self, _cfg: &EmbeddingTierConfig) -> Result<Rc<Loaded>, String> {
        Err(NO_FEATURE.into())
    }

    /// Itself when built from `cfg`, else rebound to it.
    fn for_config(self: &Rc<Self>, cfg: &EmbeddingTierConfig) -> Result<Rc<Loaded>, String> {
        if self.cfg == *cfg {
            Ok(Rc::clone(self))
        } else {
            self.rebind(cfg)
        }
    }
}

impl SemanticTier for Loaded {
    #[cfg(feature = "embedding")]
    fn classify(&self, text: &str) -> Result<(SemanticVerdict, usize), String> {
        let e = self.embedder.embed(text).map_err(|e| e.to_string())?;
        let v = self.index.classify(&e.vector).ok_or("no intents")?;
        Ok((v, e.tokens))
    }

    #[cfg(not(feature = "embedding"))]
    fn classify(&self, _text: &str) -> Result<(SemanticVerdict, usize), String> {
        Err(NO_FEATURE.into())
    }
}

#[cfg(not(feature = "embedding"))]
const NO_FEATURE: &str = "this build has no embedding tier (cargo feature `embedding` is off)";

fn key_of(cfg: &EmbeddingTierConfig) -> String {
    format!("{}|{}|{}/{}|{}", cfg.model_file, cfg.tokenizer_file, cfg.max_tokens, cfg.tail_tokens, cfg.intents_digest())
}

impl SemanticCache {
    /// The loaded tier for `cfg`, loading it if needed.
    pub async fn get<P: Platform>(&self, p: &P, cfg: &EmbeddingTierConfig) -> Result<Rc<Loaded>, String> {
        let key = key_of(cfg);
        let fut = {
            let mut state = self.state.borrow_mut();
            match &*state {
                State::Ready(l) if l.key == key => {
                    let l = l.for_config(cfg)?;
                    *state = State::Ready(Rc::clone(&l));
                    return Ok(l);
                }
                State::Failed { key: k, at_ms, error } if *k == key && p.now_ms().saturating_sub(*at_ms) < RETRY_MS => {
                    return Err(error.clone());
                }
                State::Loading { key: k, fut } if *k == key => fut.clone(),
                _ => {
                    let fut = load(p.clone(), cfg.clone(), key.clone()).boxed_local().shared();
                    *state = State::Loading { key: key.clone(), fut: fut.clone() };
                    fut
                }
            }
        };
        let result = fut.await;
        let mut state = self.state.borrow_mut();
        if matches!(&*state, State::Loading { key: k, .. } if *k == key) {
            *state = match &result {
                Ok(l) => State::Ready(Rc::clone(l)),
                Err(e) => State::Failed { key, at_ms: p.now_ms(), error: e.clone() },
            };
        }
        // A load started for other settings of the same model and examples serves this one too.
        result.and_then(|l| l.for_config(cfg))
    }
}

#[cfg(not(feature = "embedding"))]
async fn load<P: Platform>(_p: P, _cfg: EmbeddingTierConfig, _key: String) -> Result<Rc<Loaded>, String> {
    Err(NO_FEATURE.into())
}

#[cfg(feature = "embedding")]
async fn load<P: Platform>(p: P, cfg: EmbeddingTierConfig, key: String) -> Result<Rc<Loaded>, String> {
    use crate::tiers::embed::Embedder;
    use crate::tiers::intents::{dot, text_key, IntentIndex, VectorFile};

    let started = p.now_ms();
    let file = |name: String| {
        let p = p.clone();
        async move {
            match p.model_file(&name).await {
                Ok(Some(b)) => Ok(b),
                Ok(None) => Err(format!("model file `{name}` not found (models/fetch, then seed it: see README)")),
                Err(e) => Err(format!("model file `{name}`: {e}")),
            }
        }
    };
    let (model, tokenizer, vectors) = futures::join!(
        file(cfg.model_file.clone()),
        file(cfg.tokenizer_file.clone()),
        p.model_file(&cfg.intents_file)
    );
    let tokenizer = tokenizer?;
    let embedder = Embedder::load(model?, &tokenizer, cfg.max_tokens).map_err(|e| e.to_string())?.with_tail_tokens(cfg.tail_tokens);
    drop(tokenizer);
    let file = match vectors {
        Ok(Some(b)) => VectorFile::parse(&b).map_err(|e| p.log(&warn(&format!("{}: {e}; embedding every example", cfg.intents_file)))).ok(),
        _ => None,
    };
    let mut file = file.filter(|f| f.dim == embedder.dim()).unwrap_or_default();
    // The file must come from this model: re-embed one stored example and compare.
    let probe = cfg.intents.iter().flat_map(|i| &i.examples).find(|e| file.vectors.contains_key(&text_key(e)));
    if let Some(example) = probe {
        let fresh = embedder.embed(example).map_err(|e| e.to_string())?;
        if dot(&fresh.vector, &file.vectors[&text_key(example)]) < 0.999 {
            p.log(&warn(&format!("{} was built with another model; embedding every example", cfg.intents_file)));
            file.vectors.clear();
        }
    }
    let mut computed = 0;
    let mut vectors = Vec::with_capacity(cfg.intents.len());
    for intent in &cfg.intents {
        let mut vs = Vec::with_capacity(intent.examples.len());
        for e in &intent.examples {
            match file.vectors.remove(&text_key(e)) {
                Some(v) => vs.push(v),
                None => {
                    computed += 1;
                    vs.push(embedder.embed(e).map_err(|e| e.to_string())?.vector);
                }
            }
        }
        vectors.push(vs);
    }
    let index = IntentIndex::new(&cfg, vectors.clone())?;
    let load_ms = p.now_ms().saturating_sub(started);
    p.log(&serde_json::json!({
        "event": "embedding_loaded", "level": "info", "model": cfg.model_file, "examples": index.example_count(),
        "computed_examples": computed, "load_ms": load_ms,
    }));
    if computed > 0 {
        p.log(&warn(&format!("{computed} intent examples were not in {} and were embedded at load: run `gateway intents build`", cfg.intents_file)));
    }
    Ok(Rc::new(Loaded { key, cfg, embedder: Rc::new(embedder), vectors: Rc::new(vectors), index }))
}

#[cfg(feature = "embedding")]
fn warn(message: &str) -> serde_json::Value {
    serde_json::json!({"event": "embedding", "level": "warn", "message": message})
}

#[cfg(all(test, feature = "embedding"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::PathBuf;

    use futures::executor::block_on;

    use super::*;
    use crate::testing::MemoryPlatform;

    fn platform(cfg: &EmbeddingTierConfig) -> MemoryPlatform {
        let dir = std::env::var_os("GATEWAY_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/minilm"));
        let p = MemoryPlatform::new();
        for name in [&cfg.model_file, &cfg.tokenizer_file] {
            p.add_model_file(name, std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e} (run models/fetch)")));
        }
        p
    }

    fn loads(p: &MemoryPlatform) -> usize {
        p.logs().iter().filter(|l| l["event"] == "embedding_loaded").count()
    }

    /// A config that changes only a decision setting (here the sensitive threshold, as a KV
    /// config would) takes effect on its first request, over the model already loaded.
    #[test]
    fn new_settings_apply_at_once_without_reloading_the_model() {
        let base = crate::Config::bundled().unwrap().router.embedding.clone().unwrap();
        let p = platform(&base);
        let cache = SemanticCache::default();
        let prompt = "Write a haiku about autumn rain on a tin roof.";
        let a = block_on(cache.get(&p, &base)).unwrap();
        let (v, _) = a.classify(prompt).unwrap();
        assert!(!v.possibly_sensitive && v.verdict.capability == "creative_writing", "{v:?}");

        let mut strict = base.clone();
        strict.sensitive_threshold = Some(0.0);
        let b = block_on(cache.get(&p, &strict)).unwrap();
        let (v, _) = b.classify(prompt).unwrap();
        assert!(v.possibly_sensitive && v.verdict.capability == "sensitive", "the new threshold must apply: {v:?}");
        assert!(Rc::ptr_eq(&a.embedder, &b.embedder) && loads(&p) == 1, "the model is not loaded again");

        // And back again; a new intent list, in contrast, is a new load.
        let (v, _) = block_on(cache.get(&p, &base)).unwrap().classify(prompt).unwrap();
        assert!(!v.possibly_sensitive, "{v:?}");
        let mut other = base.clone();
        other.intents.truncate(1);
        block_on(cache.get(&p, &other)).unwrap();
        assert_eq!(loads(&p), 2);
    }
}
