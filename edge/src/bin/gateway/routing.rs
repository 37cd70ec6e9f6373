//! `gateway intents build` and `gateway eval`: the embedding tier's offline tools.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use llm_gateway::api::ParsedChat;
use llm_gateway::policy;
use llm_gateway::router::embed::Embedder;
use llm_gateway::router::intents::{text_key, EmbeddingTierConfig, IntentIndex, SemanticVerdict, VectorFile};
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
        let cfg = llm_gateway::config::ClassifierTierConfig { url: url.to_owned(), secret: String::new(), timeout_ms: 30_000, min_confidence: 0.0, labels };
        Ok(Self { url: url.to_owned(), secret, cfg, agent: ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(30)).build() })
    }

    fn classify(&self, text: &str, hint: &[(String, f64)]) -> Result<llm_gateway::router::ClassifierAnswer> {
        use llm_gateway::gateway::escalate;
        let body = escalate::request_body(&self.cfg, text, hint);
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
    let embedder = Embedder::load(model.clone(), &read(&cfg.tokenizer_file)?, cfg.max_tokens)?;
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

struct Row {
    id: String,
    label: String,
    alt: Vec<String>,
    pred: String,
    tier: &'static str,
    /// Tier-2 verdict where it ran.
    semantic: Option<SemanticVerdict>,
    keyword_us: f64,
    embed_ms: Option<f64>,
    /// Tier 3's answer and the ms it took from the client (escalated rows, `--classifier`).
    tier3: Option<(llm_gateway::router::ClassifierAnswer, f64)>,
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Routes every row through the cascade (keyword, embedding; no provider, no tier 3) and
/// prints the figures `../shared/eval/score.py` prints, plus the share and latency per tier.
pub fn eval(opts: &Opts) -> Result<()> {
    let data = opts.data.as_ref().context("--data FILE is required")?;
    let (config, cfg, embedder, _) = load(opts)?;
    let started = Instant::now();
    let vectors = cfg.intents.iter().map(|i| i.examples.iter().map(|e| embedder.embed(e).map(|x| x.vector)).collect::<Result<Vec<_>, _>>()).collect::<Result<Vec<_>, _>>()?;
    eprintln!("embedded {} intent examples in {} ms", cfg.intents.iter().map(|i| i.examples.len()).sum::<usize>(), started.elapsed().as_millis());
    let index = IntentIndex::new(&cfg, vectors);
    let kw = &config.router.keyword;
    let tier3 = opts.classifier.as_deref().map(|u| Tier3::new(u, &config)).transpose()?;
    let mut rows = Vec::new();
    for (n, line) in std::fs::read_to_string(data).with_context(|| format!("reading {}", data.display()))?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Value = serde_json::from_str(line).with_context(|| format!("{}:{}", data.display(), n + 1))?;
        let prompt = r["prompt"].as_str().unwrap_or_default();
        let body = json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]}).to_string();
        let chat = ParsedChat::from_slice(body.as_bytes()).map_err(|e| anyhow::anyhow!("row {}: {e}", n + 1))?;
        let text = chat.routing_text();
        let t = Instant::now();
        let verdict = kw.classify(&text);
        let keyword_us = t.elapsed().as_secs_f64() * 1e6;
        let sensitive = policy::sensitivity(&config, &chat).is_sensitive();
        let mut row = Row {
            id: r["id"].as_str().unwrap_or_default().to_owned(),
            label: r["label"].as_str().unwrap_or_default().to_owned(),
            alt: r["alt_labels"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default(),
            pred: String::new(),
            tier: "keyword",
            semantic: None,
            keyword_us,
            embed_ms: None,
            tier3: None,
        };
        match verdict.filter(|v| v.confidence >= kw.min_confidence) {
            Some(v) => row.pred = v.capability,
            None => {
                let t = Instant::now();
                let e = embedder.embed(&text)?;
                let sv = index.classify(&e.vector).context("no intents")?;
                row.embed_ms = Some(t.elapsed().as_secs_f64() * 1e3);
                row.tier = if sv.confident { "embedding" } else { "escalated" };
                row.pred = sv.verdict.capability.clone();
                if let (false, Some(t3)) = (sv.confident, tier3.as_ref()) {
                    let hint: Vec<(String, f64)> = sv.verdict.scores.iter().take(5).cloned().collect();
                    let t = Instant::now();
                    let answer = t3.classify(&text, &hint).with_context(|| format!("row {}", n + 1))?;
                    row.tier3 = Some((answer, t.elapsed().as_secs_f64() * 1e3));
                }
                row.semantic = Some(sv);
            }
        }
        // Data residency runs after routing and pins sensitive prompts local: that is the
        // gateway's `sensitive` decision.
        if sensitive {
            row.pred = "sensitive".into();
            if row.tier != "keyword" {
                row.tier = "policy";
            }
        }
        rows.push(row);
    }
    report(&rows);
    if tier3.is_some() {
        report_tier3(&rows);
    }
    if opts.sweep {
        sweep(&rows);
    }
    if let Some(out) = &opts.out {
        let text: String = rows
            .iter()
            .map(|r| {
                let (label, tier) = match (&r.tier3, r.tier) {
                    (Some((a, _)), "escalated") => (a.label.as_str(), "classifier"),
                    _ => (r.pred.as_str(), r.tier),
                };
                // score.py reads id and label; the scores are there for offline analysis.
                let scores = |v: &[(String, f64)]| v.iter().map(|(l, s)| (l.clone(), json!(s))).collect::<serde_json::Map<_, _>>();
                let mut row = json!({"id": r.id, "label": label, "tier": tier});
                if let Some(sv) = &r.semantic {
                    row["tier2_scores"] = Value::Object(scores(&sv.verdict.scores));
                }
                if let Some((a, _)) = &r.tier3 {
                    row["tier3_probabilities"] = Value::Object(scores(&a.probabilities));
                }
                row.to_string() + "\n"
            })
            .collect();
        std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("predictions: {} (python3 ../shared/eval/score.py {} {})", out.display(), data.display(), out.display());
    }
    Ok(())
}

fn correct(r: &Row) -> (bool, bool) {
    (r.pred == r.label, r.pred == r.label || r.alt.contains(&r.pred))
}

fn report(rows: &[Row]) {
    let n = rows.len() as f64;
    let strict = rows.iter().filter(|r| correct(r).0).count() as f64;
    let lenient = rows.iter().filter(|r| correct(r).1).count() as f64;
    let mut out = String::new();
    out += &format!("rows {}  strict {:.3}  lenient {:.3}   (escalated rows counted with tier 2's best guess)\n", rows.len(), strict / n, lenient / n);
    let decided: Vec<&Row> = rows.iter().filter(|r| r.tier != "escalated").collect();
    let ds = decided.iter().filter(|r| correct(r).0).count() as f64;
    let dl = decided.iter().filter(|r| correct(r).1).count() as f64;
    out += &format!(
        "decided by tiers 1-2 (+policy): {} rows ({:.1} %)  strict {:.3}  lenient {:.3};  escalated: {} rows\n",
        decided.len(),
        100.0 * decided.len() as f64 / n,
        ds / decided.len().max(1) as f64,
        dl / decided.len().max(1) as f64,
        rows.len() - decided.len()
    );
    let mut tiers: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *tiers.entry(r.tier).or_default() += 1;
    }
    out += "share by tier:";
    for (t, c) in &tiers {
        out += &format!("  {t} {c} ({:.1} %)", 100.0 * *c as f64 / n);
    }
    out += "\n";
    let mut labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    out += &format!("{:18} {:>6} {:>6} {:>6} {:>5}\n", "label", "P", "R", "F1", "n");
    for l in &labels {
        let tp = rows.iter().filter(|r| r.label == *l && r.pred == *l).count() as f64;
        let fp = rows.iter().filter(|r| r.label != *l && r.pred == *l).count() as f64;
        let fn_ = rows.iter().filter(|r| r.label == *l && r.pred != *l).count() as f64;
        let p = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
        let rc = if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 };
        let f1 = if p + rc > 0.0 { 2.0 * p * rc / (p + rc) } else { 0.0 };
        out += &format!("{l:18} {p:6.3} {rc:6.3} {f1:6.3} {:5}\n", tp + fn_);
    }
    let sens: Vec<&Row> = rows.iter().filter(|r| r.label == "sensitive").collect();
    let caught = sens.iter().filter(|r| r.pred == "sensitive").count();
    out += &format!("sensitive recall: {caught}/{} (leaks: {})\n", sens.len(), sens.len() - caught);
    let mut kw: Vec<f64> = rows.iter().map(|r| r.keyword_us).collect();
    let mut em: Vec<f64> = rows.iter().filter_map(|r| r.embed_ms).collect();
    out += &format!(
        "latency: keyword median {:.1} us (p90 {:.1}); embedding median {:.2} ms (p90 {:.2}, {} rows)\n",
        median(&mut kw.clone()),
        pct(&mut kw, 0.9),
        median(&mut em.clone()),
        pct(&mut em, 0.9),
        em.len()
    );
    eprint!("{out}");
}

/// The cascade with tier 3: escalated rows take the classifier's label.
fn report_tier3(rows: &[Row]) {
    let n = rows.len() as f64;
    let with3 = |r: &Row| -> (bool, bool) {
        match (&r.tier3, r.tier) {
            (Some((a, _)), "escalated") => (a.label == r.label, a.label == r.label || r.alt.contains(&a.label)),
            _ => correct(r),
        }
    };
    let strict = rows.iter().filter(|r| with3(r).0).count() as f64;
    let lenient = rows.iter().filter(|r| with3(r).1).count() as f64;
    let esc: Vec<&Row> = rows.iter().filter(|r| r.tier == "escalated").collect();
    let t3_ok = esc.iter().filter(|r| with3(r).0).count();
    let t2_ok = esc.iter().filter(|r| correct(r).0).count();
    let mut client: Vec<f64> = esc.iter().filter_map(|r| r.tier3.as_ref().map(|(_, ms)| *ms)).collect();
    let mut host: Vec<f64> = esc.iter().filter_map(|r| r.tier3.as_ref().map(|(a, _)| a.latency_ms)).collect();
    eprintln!(
        "with tier 3: rows {}  strict {:.3}  lenient {:.3}\n  escalated rows {}: classifier strict {:.3} ({t3_ok}) vs tier-2 best guess {:.3} ({t2_ok})\n  classifier latency: host median {:.1} ms (p90 {:.1}); from the client median {:.1} ms",
        rows.len(),
        strict / n,
        lenient / n,
        esc.len(),
        t3_ok as f64 / esc.len().max(1) as f64,
        t2_ok as f64 / esc.len().max(1) as f64,
        median(&mut host.clone()),
        pct(&mut host, 0.9),
        median(&mut client),
    );
}

/// Accuracy and coverage of tier 2 over a grid of global thresholds and margins.
fn sweep(rows: &[Row]) {
    let mut out = String::from("sweep (global min_confidence x min_margin; per-intent thresholds ignored):\n  conf  margin  decided  strict(decided)  strict(all, best guess)\n");
    for conf in [0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6] {
        for margin in [0.0, 0.02, 0.04, 0.06, 0.08, 0.1] {
            let (mut decided, mut ok) = (0usize, 0usize);
            for r in rows {
                let take = match (&r.semantic, r.tier) {
                    (_, "keyword") => true,
                    (Some(sv), "policy") => sv.verdict.confidence >= conf && sv.margin >= margin || r.pred == "sensitive",
                    (Some(sv), _) => sv.verdict.confidence >= conf && sv.margin >= margin,
                    (None, _) => true,
                };
                if take {
                    decided += 1;
                    ok += usize::from(correct(r).0);
                }
            }
            let all = rows.iter().filter(|r| correct(r).0).count();
            out += &format!("  {conf:.2}  {margin:.2}    {:5.1} %  {:.3}            {:.3}\n", 100.0 * decided as f64 / rows.len() as f64, ok as f64 / decided.max(1) as f64, all as f64 / rows.len() as f64);
        }
    }
    eprint!("{out}");
}

pub fn default_models_dir() -> PathBuf {
    std::env::var_os("GATEWAY_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/minilm"))
}
