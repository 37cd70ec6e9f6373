//! `gateway intents build` and `gateway eval`: the embedding tier's offline tools.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use llm_gateway::api::ParsedChat;
use llm_gateway::policy;
use llm_gateway::router::{self, SemanticTier, Tier2};
use llm_gateway::tiers::embed::Embedder;
use llm_gateway::tiers::intents::{text_key, EmbeddingTierConfig, IntentIndex, SemanticVerdict, VectorFile};

use crate::report;
use llm_gateway::Config;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub struct Opts {
    /// The first is the one evaluated; `intents build` covers the examples of all.
    pub configs: Vec<PathBuf>,
    pub models: PathBuf,
    pub data: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub sweep: bool,
    /// Where to write the accuracy-against-coverage plot (SVG).
    pub plot: Option<PathBuf>,
    /// Tier 3: the classifier host's base URL (secret from $CLASSIFIER_SECRET).
    pub classifier: Option<String>,
}

/// Asks the classifier host, as the edge does (`gateway/escalate.rs`), over plain HTTP.
struct Tier3 {
    url: String,
    secret: gateway_signing::Secret,
    cfg: llm_gateway::config::ClassifierTierConfig,
    agent: ureq::Agent,
}

impl Tier3 {
    fn new(url: &str, config: &Config) -> Result<Self> {
        let secret = std::env::var("CLASSIFIER_SECRET").context("--classifier: set CLASSIFIER_SECRET to the host's shared secret")?;
        let secret = gateway_signing::Secret::new(&secret).map_err(|e| anyhow::anyhow!("CLASSIFIER_SECRET: {e}"))?;
        // The label set is the config's capabilities, as the edge sends them.
        let labels = config
            .capabilities
            .iter()
            .map(|(name, c)| llm_gateway::config::ClassifierLabel { capability: name.clone(), description: c.description.clone().unwrap_or_default(), route: c.route.clone() })
            .collect();
        let cfg = llm_gateway::config::ClassifierTierConfig { url: url.to_owned(), secret: String::new(), timeout_ms: 30_000, local: true, min_confidence: 0.0, labels };
        Ok(Self { url: url.to_owned(), secret, cfg, agent: ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(30)).build() })
    }

    fn classify(&self, text: &str, hint: &[(String, f64)]) -> Result<llm_gateway::router::ClassifierAnswer> {
        use llm_gateway::gateway::escalate;
        let body = escalate::request_body(&self.cfg, &escalate::caller_id("gateway-eval"), text, hint);
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("random: {e}"))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let s = gateway_signing::sign_request(&self.secret, "POST", &escalate::signed_path(&self.url), now, nonce, &body);
        let resp = self
            .agent
            .post(&format!("{}/v1/classify", self.url))
            .set("content-type", "application/json")
            .set(gateway_signing::TIMESTAMP_HEADER, &s.timestamp)
            .set(gateway_signing::NONCE_HEADER, &s.nonce)
            .set(gateway_signing::SIGNATURE_HEADER, &s.signature)
            .send_bytes(&body);
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => bail!("the classifier answered {code}: {}", r.into_string().unwrap_or_default()),
            Err(e) => bail!("the classifier host: {e}"),
        };
        let sig = resp.header(gateway_signing::SIGNATURE_HEADER).unwrap_or_default().to_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes)?;
        gateway_signing::verify_response(&self.secret, &s.nonce, 200, &bytes, &sig).map_err(|e| anyhow::anyhow!("response signature: {e}"))?;
        escalate::parse_answer(&self.cfg, &bytes).map_err(|e| anyhow::anyhow!(e))
    }
}

fn read_config(path: &Path) -> Result<(Config, EmbeddingTierConfig)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::from_yaml(&text).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
    let Some(cfg) = config.router.embedding.clone() else { bail!("{}: no router.embedding section", path.display()) };
    Ok((config, cfg))
}

fn load(opts: &Opts) -> Result<(Config, EmbeddingTierConfig, Embedder, Vec<u8>)> {
    let (config, cfg) = read_config(opts.configs.first().context("no config")?)?;
    let read = |name: &str| -> Result<Vec<u8>> {
        let p = opts.models.join(name);
        std::fs::read(&p).with_context(|| format!("reading {} (run models/fetch)", p.display()))
    };
    let model = read(&cfg.model_file)?;
    let started = Instant::now();
    let embedder = Embedder::load(model.clone(), &read(&cfg.tokenizer_file)?, cfg.max_tokens)?.with_tail_tokens(cfg.tail_tokens);
    eprintln!("loaded {} in {} ms", cfg.model_file, started.elapsed().as_millis());
    Ok((config, cfg, embedder, model))
}

/// Embeds every example of the config's intents and writes the vector file beside the model.
pub fn build(opts: &Opts) -> Result<()> {
    let (_, cfg, embedder, model) = load(opts)?;
    let mut file = VectorFile { dim: embedder.dim(), ..VectorFile::default() };
    file.model_sha256.copy_from_slice(&Sha256::digest(&model));
    let started = Instant::now();
    let mut examples: Vec<String> = cfg.intents.iter().flat_map(|i| i.examples.clone()).collect();
    // Further configs only lend their examples (they may be templates, like the tests').
    for other in opts.configs.iter().skip(1) {
        let text = std::fs::read_to_string(other).with_context(|| format!("reading {}", other.display()))?;
        let v: serde_yaml::Value = serde_yaml::from_str(&text).with_context(|| format!("parsing {}", other.display()))?;
        let e = &v["router"]["embedding"];
        let model = e["model"].as_str().unwrap_or("int8");
        let same = cfg.model_file == format!("model-{model}.onnx") || cfg.model_file == model;
        if !same || e["max_tokens"].as_u64().unwrap_or(128) != cfg.max_tokens as u64 {
            bail!("{}: another model or max_tokens than {}: build its intents file separately", other.display(), cfg.model_file);
        }
        let intents = e["intents"].as_sequence().cloned().unwrap_or_default();
        examples.extend(intents.iter().flat_map(|i| i["examples"].as_sequence().cloned().unwrap_or_default()).filter_map(|x| x.as_str().map(str::to_owned)));
    }
    for e in &examples {
        if let std::collections::hash_map::Entry::Vacant(v) = file.vectors.entry(text_key(e)) {
            v.insert(embedder.embed(e)?.vector);
        }
    }
    let elapsed = started.elapsed();
    let out = opts.out.clone().unwrap_or_else(|| opts.models.join(&cfg.intents_file));
    let bytes = file.to_bytes();
    std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "{}: {} examples embedded in {} ms ({:.1} ms each), {} bytes",
        out.display(),
        file.vectors.len(),
        elapsed.as_millis(),
        elapsed.as_secs_f64() * 1e3 / file.vectors.len().max(1) as f64,
        bytes.len()
    );
    Ok(())
}

/// Tier 2 as the gateway runs it, timing each call.
struct TimedTier<'a> {
    embedder: &'a Embedder,
    index: &'a IntentIndex,
    ms: std::cell::Cell<Option<f64>>,
}

impl SemanticTier for TimedTier<'_> {
    fn classify(&self, text: &str) -> Result<(SemanticVerdict, usize), String> {
        let t = Instant::now();
        let e = self.embedder.embed(text).map_err(|e| e.to_string())?;
        let v = self.index.classify(&e.vector).ok_or("no intents")?;
        self.ms.set(Some(t.elapsed().as_secs_f64() * 1e3));
        Ok((v, e.tokens))
    }
}

/// Routes every row through the gateway's own cascade (`router::decide`: keyword, embedding
/// with the trained head; no provider), optionally tier 3, then data residency, and reports
/// what a routing benchmark should (`report.rs`).
pub fn eval(opts: &Opts) -> Result<()> {
    let data = opts.data.as_ref().context("--data FILE is required")?;
    let (config, cfg, embedder, _) = load(opts)?;
    let started = Instant::now();
    let index = IntentIndex::embedding_examples(&cfg, &embedder).map_err(|e| anyhow::anyhow!(e))?;
    eprintln!("embedded {} intent examples in {} ms", index.example_count(), started.elapsed().as_millis());
    let tier = TimedTier { embedder: &embedder, index: &index, ms: std::cell::Cell::new(None) };
    let kw = &config.router.keyword;
    let tier3 = opts.classifier.as_deref().map(|u| Tier3::new(u, &config)).transpose()?;
    let mut rows = Vec::new();
    for (n, line) in std::fs::read_to_string(data).with_context(|| format!("reading {}", data.display()))?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Value = serde_json::from_str(line).with_context(|| format!("{}:{}", data.display(), n + 1))?;
        let prompt = r["prompt"].as_str().or_else(|| r["text"].as_str()).unwrap_or_default();
        let body = json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]}).to_string();
        let chat = ParsedChat::from_slice(body.as_bytes()).map_err(|e| anyhow::anyhow!("row {}: {e}", n + 1))?;
        let text = chat.routing_text();
        let t = Instant::now();
        let _ = kw.classify(&text);
        let keyword_us = t.elapsed().as_secs_f64() * 1e6;
        tier.ms.set(None);
        let d = router::decide(&config, &chat, Tier2::Ready(&tier)).map_err(|e| anyhow::anyhow!("row {}: {e}", n + 1))?;
        let t2 = d.trace.iter().find(|t| t.tier == "embedding" && t.capability.is_some()).map(|t| report::Tier2Seen {
            capability: t.capability.clone().unwrap_or_default(),
            confidence: t.confidence.unwrap_or(0.0),
            margin: t.margin.unwrap_or(0.0),
            sensitive: d.tier == router::Tier::Embedding && d.capability.as_deref() == Some("sensitive") && t.sensitive_probability.is_some(),
            scores: t.scores.clone(),
        });
        let (tier_name, pred) = match d.tier {
            router::Tier::Keyword => ("keyword", d.capability.clone().unwrap_or_default()),
            router::Tier::Embedding => ("embedding", d.capability.clone().unwrap_or_default()),
            _ => ("escalated", d.best_guess.as_ref().map(|g| g.capability.clone()).unwrap_or_else(|| config.router.default_route.clone())),
        };
        let mut row = report::Row {
            id: r["id"].as_str().unwrap_or_default().to_owned(),
            label: r["label"].as_str().unwrap_or_default().to_owned(),
            alt: r["alt_labels"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default(),
            pred,
            tier: tier_name,
            t2,
            keyword_us,
            embed_ms: tier.ms.get(),
            tier3: None,
            prompt_tokens: policy::cost::estimate_prompt_tokens(&chat.request),
            pii: !policy::pii::detect(prompt, &config.privacy.pii).is_empty(),
        };
        if let (true, Some(t3)) = (row.tier == "escalated", tier3.as_ref()) {
            let hint = router::embedding_scores(&d);
            let t = Instant::now();
            let answer = t3.classify(&text, &hint).with_context(|| format!("row {}", n + 1))?;
            row.tier3 = Some((answer, t.elapsed().as_secs_f64() * 1e3));
        }
        // Data residency runs after routing and pins sensitive prompts local: that is the
        // gateway's `sensitive` decision.
        if policy::sensitivity(&config, &chat).is_sensitive() {
            row.pred = "sensitive".into();
            if row.tier != "keyword" {
                row.tier = "policy";
            }
        }
        rows.push(row);
    }
    report::report(&rows);
    if tier3.is_some() {
        report::report_tier3(&rows);
    }
    report::cost(&config, &rows);
    let head_report = opts.models.join("../router/head.json");
    report::training(&head_report);
    if opts.sweep || opts.plot.is_some() {
        let curve = report::curve(&rows);
        if let Some(plot) = &opts.plot {
            std::fs::write(plot, report::svg(&curve, &cfg)).with_context(|| format!("writing {}", plot.display()))?;
            eprintln!("plot: {}", plot.display());
        }
    }
    if let Some(out) = &opts.out {
        let text: String = rows.iter().map(report::prediction_line).collect();
        std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("predictions: {} (python3 ../shared/eval/score.py {} {})", out.display(), data.display(), out.display());
    }
    Ok(())
}

pub fn default_models_dir() -> PathBuf {
    std::env::var_os("GATEWAY_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/minilm"))
}
