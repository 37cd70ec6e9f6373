//! The trained head in the real runtimes: the bundled config (before the suite loads its own)
//! decides `/v1/route` for the prompts in `fixtures/head_reference.json`, and the wasm build's
//! tier-2 verdict (capability, confidence, every score to three decimals) must equal the native
//! one that `edge/tests/head.rs` pins there.

use anyhow::{ensure, Context as _, Result};
use serde_json::{json, Value};

use crate::runtime::Runtime;
use crate::scenarios::key_hash;

pub async fn bundled_head_matches_native(rt: &Runtime) -> Result<()> {
    // The bundled config stores no keys in its YAML; it reads them from KV.
    let key = "gwk_e2e_bundled_head";
    let record = json!({"name": "bundled-head"});
    rt.kv_put(&format!("apikey:{}", key_hash(key).trim_start_matches("sha256:")), record.to_string().as_bytes()).await?;
    let reference: Value = serde_json::from_slice(&crate::fixture("head_reference.json")).context("head_reference.json")?;
    let client = reqwest::Client::new();
    for case in reference["cases"].as_array().context("cases")? {
        let body = json!({"model": "auto", "messages": [{"role": "user", "content": case["prompt"]}]});
        let r = client.post(format!("{}/v1/route", rt.base)).bearer_auth(key).json(&body).send().await?;
        let status = r.status();
        let v: Value = r.json().await?;
        ensure!(status == 200, "{status} {v}");
        let t2 = v["tiers"].as_array().and_then(|t| t.iter().find(|t| t["tier"] == "embedding")).with_context(|| format!("no embedding tier: {v}"))?;
        ensure!(t2["capability"] == case["capability"] && t2["confidence"] == case["confidence"], "wasm {t2} vs native {case}");
        ensure!(t2["scores"] == case["scores"].as_array().map(|s| Value::Array(s.iter().take(5).cloned().collect())).unwrap_or_default(), "wasm {t2} vs native {case}");
    }
    Ok(())
}
