//! Tier 2 in the real runtimes: the model loaded from the platform's model files (Workers KV
//! `MODELS`, chunked; Spin component files), routing by intent, `/v1/route`, the headers, and
//! bad input through the embedding path.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use serde_json::{json, Value};

use crate::scenarios::{post, send, user, Ctx, Reply};

async fn route(c: &Ctx, body: Value) -> Result<Reply> {
    send(c, c.client.post(format!("{}/v1/route", c.rt.base)).json(&body)).await
}

/// No keyword of the test config matches this, and it reads as code.
const CODE_PROMPT: &str = "My recursive function overflows when the input list is long; how can I rewrite it iteratively?";

pub async fn embedding_tier_routes_by_intent_and_explains(c: &Ctx) -> Result<()> {
    let r = route(c, json!({"model": "auto", "messages": user(CODE_PROMPT)})).await?;
    ensure!(r.status == 200, "{} {}", r.status, r.text);
    let v = r.json()?;
    ensure!(v["tier"] == "embedding" && v["capability"] == "code" && v["route"] == "code", "{v}");
    ensure!(v["model"] == "an" && v["candidates"] == json!(["an", "oa"]), "{v}");
    let tiers = v["tiers"].as_array().cloned().unwrap_or_default();
    ensure!(tiers.len() == 2 && tiers[0]["tier"] == "keyword" && tiers[0]["confident"] == false, "{v}");
    let e = &tiers[1];
    ensure!(e["tier"] == "embedding" && e["confident"] == true && e["tokens"].as_u64().is_some_and(|t| t > 10), "{e}");
    let scores = e["scores"].as_array().cloned().unwrap_or_default();
    ensure!(scores.len() == 3 && scores[0][0] == "code", "scores best first: {e}");
    ensure!(e["margin"].as_f64().is_some_and(|m| m >= 0.04) && e["confidence"].as_f64().is_some_and(|x| x >= 0.4), "{e}");
    ensure!(c.mock.calls("anthropic").iter().all(|call| !call.body.to_string().contains("overflows")), "/v1/route must not call a provider");

    // The same prompt as a chat: served by the code route, and the headers say why.
    let r = post(c, json!({"model": "auto", "messages": user(CODE_PROMPT)})).await?;
    ensure!(r.status == 200, "{} {}", r.status, r.text);
    ensure!(r.header("x-gateway-tier") == "embedding" && r.header("x-gateway-capability") == "code", "{:?}", r.headers);
    ensure!(r.header("x-gateway-route") == "code" && r.header("x-gateway-model") == "an", "{:?}", r.headers);
    ensure!(r.header("x-gateway-confidence").parse::<f64>().is_ok_and(|x| x >= 0.4), "{:?}", r.headers);

    let r = route(c, json!({"model": "auto", "messages": user("Como se dice buenas noches en italiano?")})).await?;
    let v = r.json()?;
    ensure!(v["tier"] == "embedding" && v["capability"] == "translation", "{v}");
    Ok(())
}

pub async fn confident_keyword_skips_the_embedding(c: &Ctx) -> Result<()> {
    let r = route(c, json!({"model": "auto", "messages": user("Why is this SQL query slow?")})).await?;
    let v = r.json()?;
    ensure!(v["tier"] == "keyword" && v["tiers"].as_array().map(Vec::len) == Some(1), "{v}");
    // A named model or route never runs the cascade.
    let v = route(c, json!({"model": "oa", "messages": user(CODE_PROMPT)})).await?.json()?;
    ensure!(v["tier"] == "model" && v["tiers"] == json!([]), "{v}");
    Ok(())
}

pub async fn route_endpoint_applies_the_key_policy(c: &Ctx) -> Result<()> {
    // An SSN in the prompt: residency pins it local; /v1/route says so without calling anyone.
    let v = route(c, json!({"model": "auto", "messages": user("my ssn is 078-05-1120, fix my python script")})).await?.json()?;
    ensure!(v["route"] == "local" && v["pinned_local"] == true && v["model"] == "localm", "{v}");
    ensure!(v["sensitive"].as_array().is_some_and(|a| a.iter().any(|x| x == "ssn")), "{v}");
    // No key: the same 401 as chat.
    let bare = reqwest::Client::new();
    let r = send(c, bare.post(format!("{}/v1/route", c.rt.base)).json(&json!({"model": "auto", "messages": user("hi")}))).await?;
    ensure!(r.status == 401, "{} {}", r.status, r.text);
    let r = send(c, c.client.get(format!("{}/v1/route", c.rt.base))).await?;
    ensure!(r.status == 405, "{} {}", r.status, r.text);
    Ok(())
}

pub async fn embedding_bad_input_is_bounded(c: &Ctx) -> Result<()> {
    let long = "Please rewrite this loop so it does not allocate. ".repeat(1200); // ~60 KB
    // 2,000 messages inside the test config's 64 KiB body limit.
    let many: Vec<Value> = (0..2000).map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": "k"})).collect();
    let control: String = (1u8..32).map(char::from).collect::<String>().repeat(100);
    let cases = [
        json!({"model": "auto", "messages": user(&long)}),
        json!({"model": "auto", "messages": user("")}),
        json!({"model": "auto", "messages": user(&control)}),
        json!({"model": "auto", "messages": user(&"\u{fffd}\u{1F600}漢".repeat(5000))}),
        json!({"model": "auto", "messages": many}),
        json!({"model": "auto", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]}),
    ];
    for (i, body) in cases.iter().enumerate() {
        let t = Instant::now();
        let r = route(c, body.clone()).await?;
        ensure!(r.status == 200, "case {i}: {} {}", r.status, &r.text[..r.text.len().min(300)]);
        let v = r.json()?;
        ensure!(v["route"].is_string(), "case {i}: {v}");
        if let Some(tokens) = v["tiers"][1]["tokens"].as_u64() {
            ensure!(tokens <= 64, "case {i}: truncated to max_tokens, got {tokens}");
        }
        ensure!(t.elapsed() < Duration::from_secs(20), "case {i} took {:?}", t.elapsed());
    }
    Ok(())
}

pub async fn model_loads_once_from_platform_files(c: &Ctx) -> Result<()> {
    // Warm: the earlier cases loaded it. Ask twice more; the log holds exactly one load per
    // isolate/instance, with every example vector taken from intents.bin.
    for _ in 0..2 {
        route(c, json!({"model": "auto", "messages": user(CODE_PROMPT)})).await?;
    }
    let logs = c.rt.log_text();
    let loads: Vec<&str> = logs.lines().filter(|l| l.contains("\"embedding_loaded\"")).collect();
    ensure!(!loads.is_empty(), "no embedding_loaded record in the log");
    ensure!(loads.iter().all(|l| l.contains("\"computed_examples\":0")), "examples missing from intents.bin: {loads:?}");
    eprintln!("      model loads seen: {} ({})", loads.len(), loads.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" | "));
    let health: Value = send(c, c.client.get(format!("{}/healthz", c.rt.base))).await?.json()?;
    let mem = health["memory_bytes"].as_u64().unwrap_or(0);
    eprintln!("      wasm linear memory with the model loaded: {:.1} MiB", mem as f64 / 1048576.0);
    ensure!(mem > 0 && mem < 128 * 1024 * 1024, "memory {mem} B must stay under the Workers limit of 128 MB");
    Ok(())
}

/// The trained head (and its sensitive detector) in the wasm gives, for the same config and
/// prompts, the scores the native build computes here: the same bytes compiled in, the same
/// Rust. Scores are compared as `/v1/route` reports them (three decimals, best five); the
/// embedding itself may differ in the last float bits between tract's wasm and x86 kernels,
/// hence a tolerance of 0.002.
pub async fn the_trained_head_in_the_wasm_matches_native(c: &Ctx) -> Result<()> {
    use llm_gateway::tiers::embed::Embedder;
    use llm_gateway::tiers::intents::IntentIndex;

    let plain = crate::scenarios::config_yaml(&c.mock, false);
    let yaml = plain.replace("    head: none\n", "    head: bundled\n");
    ensure!(yaml != plain, "e2e.yaml no longer says `head: none`");
    let config = llm_gateway::Config::from_yaml(&yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cfg = config.router.embedding.clone().context("the e2e config has tier 2")?;
    let dir = crate::runtime::models_dir()?;
    let embedder = Embedder::load(std::fs::read(dir.join(&cfg.model_file))?, &std::fs::read(dir.join(&cfg.tokenizer_file))?, cfg.max_tokens)?
        .with_tail_tokens(cfg.tail_tokens);
    let index = IntentIndex::embedding_examples(&cfg, &embedder).map_err(|e| anyhow::anyhow!(e))?;

    c.rt.kv_put("config", yaml.as_bytes()).await?;
    let prompts = [
        CODE_PROMPT,
        "Como se dice buenas noches en italiano?",
        "Can you move 200 dollars from my savings into my checking account before Friday?",
        "What is a good way to keep basil alive on a windowsill in winter?",
    ];
    let outcome = async {
        for prompt in prompts {
            let native = index.classify(&embedder.embed(prompt)?.vector).context("native verdict")?;
            // The KV config is picked up within config_refresh_secs: wait for the head's trace.
            let started = Instant::now();
            let e = loop {
                let v = route(c, json!({"model": "auto", "messages": user(prompt)})).await?.json()?;
                let e = v["tiers"].as_array().and_then(|t| t.iter().find(|t| t["tier"] == "embedding").cloned()).unwrap_or_default();
                if e["sensitive_probability"].is_number() {
                    break e;
                }
                ensure!(started.elapsed() < Duration::from_secs(20), "the head's config was not picked up in 20 s: {v}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            };
            ensure!(e["capability"] == native.verdict.capability.as_str(), "{prompt:?}: wasm {e} vs native {native:?}");
            let close = |a: &Value, b: f64| a.as_f64().is_some_and(|a| (a - b).abs() <= 0.002);
            ensure!(close(&e["sensitive_probability"], native.sensitive_probability.unwrap_or(-1.0)), "{prompt:?}: wasm {e} vs native {native:?}");
            let wasm = e["scores"].as_array().cloned().unwrap_or_default();
            ensure!(!wasm.is_empty() && wasm.len() == native.verdict.scores.len().min(5), "{prompt:?}: wasm {e} vs native {native:?}");
            for (w, (label, p)) in wasm.iter().zip(&native.verdict.scores) {
                ensure!(w[0] == label.as_str() && close(&w[1], *p), "{prompt:?}: wasm {e} vs native {native:?}");
            }
        }
        Ok(())
    }
    .await;
    // Back to the suite's config, whatever happened.
    c.rt.kv_put("config", plain.as_bytes()).await?;
    let started = Instant::now();
    while route(c, json!({"model": "auto", "messages": user(CODE_PROMPT)})).await?.json()?["tiers"][1]["sensitive_probability"].is_number() {
        ensure!(started.elapsed() < Duration::from_secs(20), "the suite's config was not restored in 20 s");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    outcome
}
