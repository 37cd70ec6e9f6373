//! `POST /v1/embeddings` in both runtimes: proxied with the provider key and a length, retried
//! and falling back along an embedding route, kept local when the input holds personal data,
//! and refused with a 400 that names a chat model.

use anyhow::{ensure, Result};
use serde_json::{json, Value};

use crate::runtime::OPENAI_KEY;
use crate::scenarios::{expect_served, send, Ctx, Reply};

async fn embed(c: &Ctx, body: Value) -> Result<Reply> {
    send(c, c.client.post(format!("{}/v1/embeddings", c.rt.base)).json(&body)).await
}

/// The embeddings calls the mock saw whose input holds `marker`.
fn calls_with(c: &Ctx, behaviour: &str, marker: &str) -> Vec<crate::mock::Recorded> {
    c.mock.calls(behaviour).into_iter().filter(|r| r.path.ends_with("/embeddings") && r.body["input"].to_string().contains(marker)).collect()
}

pub async fn embeddings_are_proxied_fall_back_and_stay_local(c: &Ctx) -> Result<()> {
    let marker = "emb-e2e-7f3a";
    let r = embed(c, json!({"model": "emb", "input": [format!("{marker} one"), "two words"], "dimensions": 4})).await?;
    expect_served(&r, "emb", "1")?;
    let v = r.json()?;
    ensure!(v["object"] == "list" && v["data"].as_array().is_some_and(|d| d.len() == 2), "{v}");
    ensure!(v["data"][1]["embedding"].as_array().is_some_and(|e| e.len() == 4), "{v}");
    ensure!(v["usage"]["prompt_tokens"] == 4, "{v}");
    // 4 reported tokens at $0.02 per million.
    ensure!(r.header("x-gateway-cost-usd") == "0.00000008", "cost {:?}", r.header("x-gateway-cost-usd"));
    let sent = calls_with(c, "openai", marker);
    ensure!(sent.len() == 1, "{sent:?}");
    ensure!(sent[0].path == "/openai/v1/embeddings", "{}", sent[0].path);
    ensure!(sent[0].body["model"] == "text-embedding-3-small" && sent[0].body["dimensions"] == 4, "{}", sent[0].body);
    ensure!(sent[0].headers.get("authorization").map(String::as_str) == Some(format!("Bearer {OPENAI_KEY}").as_str()), "{:?}", sent[0].headers);

    let r = embed(c, json!({"model": "embed", "input": format!("{marker} fallback")})).await?;
    expect_served(&r, "emb", "2")?;
    ensure!(r.header("x-gateway-tier") == "route", "{:?}", r.header("x-gateway-tier"));

    // Personal data: the cloud model named is refused (fail closed), the local route serves.
    let pii = format!("{marker} reach me at jane.roe@mailbox.org");
    let r = embed(c, json!({"model": "emb", "input": pii})).await?;
    ensure!(r.status == 403 && r.json()?["error"]["code"] == "data_residency", "{} {}", r.status, r.text);
    let r = embed(c, json!({"model": "embed-local", "input": pii})).await?;
    expect_served(&r, "emb-local", "1")?;
    ensure!(calls_with(c, "openai", "jane.roe").iter().all(|r| r.path.contains("/local/")), "personal data reached a cloud model");

    let r = embed(c, json!({"model": "an", "input": "hello"})).await?;
    ensure!(r.status == 400, "{} {}", r.status, r.text);
    let e = r.json()?;
    ensure!(e["error"]["code"] == "model_not_embedding" && e["error"]["message"].as_str().is_some_and(|m| m.contains("Anthropic")), "{e}");
    let r = embed(c, json!({"model": "emb", "input": []})).await?;
    ensure!(r.status == 400 && r.json()?["error"]["param"] == "input", "{} {}", r.status, r.text);
    Ok(())
}
