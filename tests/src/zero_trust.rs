//! Zero-trust cases, run in both runtimes: client keys (YAML and KV), allow-lists, rate limits
//! (a Durable Object per key in workerd, compare-and-swap on the key-value store in the Spin
//! host), budgets under concurrency, data residency and the audit record.
//!
//! Each case uses its own key (see `tests/fixtures/e2e.yaml`) because cases run in parallel.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::{json, Value};

use crate::scenarios::{key_hash, post, send, test_key, user, Ctx, Reply};

async fn post_as(c: &Ctx, key: &str, body: Value) -> Result<Reply> {
    let req = c.client.post(format!("{}/v1/chat/completions", c.rt.base)).bearer_auth(test_key(key)).json(&body);
    send(c, req).await
}

fn expect_error(r: &Reply, status: u16, code: &str) -> Result<()> {
    ensure!(r.status == status, "wanted {status}, got {} {}", r.status, r.text);
    let v = r.json()?;
    ensure!(v["error"]["code"] == code, "wanted code {code}: {}", r.text);
    ensure!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "no message: {}", r.text);
    Ok(())
}

/// Calls the mock saw whose JSON body contains `marker`, outside the local models' paths.
fn cloud_calls_with(c: &Ctx, marker: &str) -> usize {
    let all = ["openai", "anthropic", "status-500", "status-429", "echo-key"];
    all.iter()
        .flat_map(|b| c.mock.calls(b))
        .filter(|r| !r.path.contains("/local/") && r.body.to_string().contains(marker))
        .count()
}

pub async fn missing_unknown_and_revoked_keys_get_the_same_401(c: &Ctx) -> Result<()> {
    let body = json!({"model": "oa", "messages": user("hi")});
    let url = format!("{}/v1/chat/completions", c.rt.base);
    let bare = reqwest::Client::new();
    let missing = send(c, bare.post(&url).json(&body)).await?;
    let unknown = send(c, bare.post(&url).bearer_auth("gwk_e2e_nobody").json(&body)).await?;
    let revoked = send(c, bare.post(&url).header("x-api-key", test_key("revoked")).json(&body)).await?;
    for r in [&missing, &unknown, &revoked] {
        expect_error(r, 401, "invalid_api_key")?;
    }
    ensure!(missing.json()? == unknown.json()? && unknown.json()? == revoked.json()?, "401 bodies differ: they would tell which keys exist");
    let models = send(c, bare.get(format!("{}/v1/models", c.rt.base))).await?;
    expect_error(&models, 401, "invalid_api_key")?;
    // Anthropic-style clients send x-api-key.
    let ok = send(c, bare.post(&url).header("x-api-key", test_key("main")).json(&body)).await?;
    ensure!(ok.status == 200, "x-api-key: {} {}", ok.status, ok.text);
    Ok(())
}

pub async fn kv_stored_key_authenticates(c: &Ctx) -> Result<()> {
    let key = "gwk_e2e_from_kv";
    let record = json!({"name": "kv-team", "models": ["oa"]});
    c.rt.kv_put(&format!("apikey:{}", key_hash(key).trim_start_matches("sha256:")), record.to_string().as_bytes()).await?;
    let url = format!("{}/v1/chat/completions", c.rt.base);
    let started = Instant::now();
    loop {
        let r = send(c, reqwest::Client::new().post(&url).bearer_auth(key).json(&json!({"model": "oa", "messages": user("hi")}))).await?;
        if r.status == 200 {
            break;
        }
        // Negative answers are cached for `kv_cache_secs` (1 s here); KV writes land within that.
        ensure!(r.status == 401, "{} {}", r.status, r.text);
        if started.elapsed() > Duration::from_secs(20) {
            bail!("the KV key was not accepted in 20 s");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let r = send(c, reqwest::Client::new().post(&url).bearer_auth(key).json(&json!({"model": "an", "messages": user("hi")}))).await?;
    expect_error(&r, 403, "model_not_allowed")
}

pub async fn key_allow_lists_give_403(c: &Ctx) -> Result<()> {
    let r = post_as(c, "restricted", json!({"model": "an", "messages": user("hi")})).await?;
    expect_error(&r, 403, "model_not_allowed")?;
    let r = post_as(c, "restricted", json!({"model": "code", "messages": user("hi")})).await?;
    expect_error(&r, 403, "route_not_allowed")?;
    // Text aimed at the router moves the route, never past the key's policy.
    let r = post_as(c, "restricted", json!({"model": "auto", "messages": user("This is a coding question: python")})).await?;
    expect_error(&r, 403, "route_not_allowed")?;
    // Tier 2 is sure this is general chat (an intent example): the general route serves.
    let r = post_as(c, "restricted", json!({"model": "auto", "messages": user("Tell me a fun fact about octopuses")})).await?;
    ensure!(r.status == 200 && r.header("x-gateway-model") == "oa", "{} {}", r.status, r.text);
    // The model list shows only what the key may use.
    let m = send(c, c.client.get(format!("{}/v1/models", c.rt.base)).bearer_auth(test_key("restricted"))).await?;
    let ids: Vec<String> = m.json()?["data"].as_array().into_iter().flatten().filter_map(|d| d["id"].as_str().map(str::to_owned)).collect();
    ensure!(ids.contains(&"oa".to_owned()) && !ids.contains(&"an".to_owned()) && !ids.contains(&"code".to_owned()), "{ids:?}");
    Ok(())
}

pub async fn rpm_limit_gives_429_with_headers(c: &Ctx) -> Result<()> {
    let body = json!({"model": "oa", "messages": user("hi")});
    for left in ["2", "1", "0"] {
        let r = post_as(c, "rpm3", body.clone()).await?;
        ensure!(r.status == 200, "{} {}", r.status, r.text);
        ensure!(r.header("x-ratelimit-limit-requests") == "3", "limit header: {:?}", r.headers);
        ensure!(r.header("x-ratelimit-remaining-requests") == left, "remaining {:?}, wanted {left}", r.header("x-ratelimit-remaining-requests"));
    }
    let r = post_as(c, "rpm3", body).await?;
    expect_error(&r, 429, "rate_limit_exceeded")?;
    let wait: u64 = r.header("retry-after").parse().context("retry-after")?;
    ensure!((1..=20).contains(&wait), "retry-after {wait}");
    Ok(())
}

pub async fn model_rpm_limit_falls_through_then_429(c: &Ctx) -> Result<()> {
    // `capped` allows 2 requests per minute across all keys; the third is refused by the gateway
    // before the provider is called.
    let body = json!({"model": "capped", "messages": user("hi")});
    for _ in 0..2 {
        let r = post(c, body.clone()).await?;
        ensure!(r.status == 200, "{} {}", r.status, r.text);
    }
    let before = c.mock.calls("openai").iter().filter(|r| r.path.contains("/capped/")).count();
    let r = post(c, body).await?;
    expect_error(&r, 429, "upstream_rate_limited")?;
    let after = c.mock.calls("openai").iter().filter(|r| r.path.contains("/capped/")).count();
    ensure!(before == after, "the provider was called past the model's limit");
    Ok(())
}

pub async fn budget_holds_under_64_concurrent_requests(c: &Ctx) -> Result<()> {
    // The mock reports 1117 prompt + 46 completion tokens: $0.0032525 at oa's prices. The key's
    // budget is exactly ten of those. The prompt is long enough that the gateway's estimate
    // covers the reported prompt tokens; max_tokens covers the completion.
    let prompt = "word ".repeat(1150);
    let body = json!({"model": "oa", "max_tokens": 46, "messages": user(&prompt)});
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (client, base, body) = (c.client.clone(), c.rt.base.clone(), body.clone());
            tokio::spawn(async move {
                let r = client.post(format!("{base}/v1/chat/completions")).bearer_auth(test_key("budget")).json(&body).timeout(Duration::from_secs(60)).send().await?;
                let status = r.status().as_u16();
                let cost = r.headers().get("x-gateway-cost-usd").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let v: Value = r.json().await?;
                anyhow::Ok((status, cost, v))
            })
        })
        .collect();
    let (mut served, mut refused) = (0, 0);
    for t in tasks {
        let (status, cost, v) = t.await??;
        match status {
            200 => {
                served += 1;
                ensure!(cost == "0.0032525", "x-gateway-cost-usd {cost:?}");
            }
            429 => {
                refused += 1;
                ensure!(v["error"]["code"] == "insufficient_quota", "{v}");
            }
            other => bail!("unexpected status {other}: {v}"),
        }
    }
    ensure!(served <= 10, "{served} requests served on a budget for 10");
    ensure!(served >= 1 && served + refused == 64, "served {served}, refused {refused}");
    let r = post_as(c, "budget", body).await?;
    ensure!(served < 10 || r.status == 429, "an 11th request was served");
    Ok(())
}

pub async fn sensitive_prompt_is_pinned_to_the_local_model(c: &Ctx) -> Result<()> {
    let marker = "123-45-6789";
    let text = format!("This is a coding question about python. My SSN is {marker}.");
    let r = post(c, json!({"model": "auto", "messages": user(&text)})).await?;
    ensure!(r.status == 200, "{} {}", r.status, r.text);
    ensure!(r.header("x-gateway-model") == "localm", "served by {}", r.header("x-gateway-model"));
    ensure!(r.header("x-gateway-capability") == "sensitive", "capability {}", r.header("x-gateway-capability"));
    // PII in an earlier turn counts as well.
    let card = "4111 1111 1111 1111";
    let msgs = json!([{"role": "user", "content": format!("my card is {card}")}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "translate hello"}]);
    let r = post(c, json!({"model": "auto", "messages": msgs})).await?;
    ensure!(r.header("x-gateway-model") == "localm", "served by {}", r.header("x-gateway-model"));
    ensure!(cloud_calls_with(c, marker) == 0 && cloud_calls_with(c, card) == 0, "PII reached a cloud model");
    Ok(())
}

pub async fn sensitive_prompt_fails_closed_when_no_local_model_serves(c: &Ctx) -> Result<()> {
    let marker = "Patient diagnosis: code-7781";
    // Naming a cloud model: refused before any provider is called.
    let r = post(c, json!({"model": "oa", "messages": user(marker)})).await?;
    expect_error(&r, 403, "data_residency")?;
    // The only local model is down: 502, and no cloud model is tried instead.
    let r = post(c, json!({"model": "local-dead", "messages": user(marker)})).await?;
    ensure!(r.status == 502, "{} {}", r.status, r.text);
    ensure!(cloud_calls_with(c, marker) == 0, "a sensitive prompt reached a cloud model");
    Ok(())
}

pub async fn local_only_key_never_reaches_the_cloud(c: &Ctx) -> Result<()> {
    let r = post_as(c, "localonly", json!({"model": "general", "messages": user("hi")})).await?;
    expect_error(&r, 403, "data_residency")?;
    let r = post_as(c, "localonly", json!({"model": "local", "messages": user("hi")})).await?;
    ensure!(r.status == 200 && r.header("x-gateway-model") == "localm", "{} {}", r.status, r.text);
    Ok(())
}

pub async fn audit_record_has_the_request_and_no_pii(c: &Ctx) -> Result<()> {
    let id = "audit-check-7f3a";
    let email = "jane.audit@fastmail.fm";
    let body = json!({"model": "auto", "messages": user(&format!("please write to {email} about the meeting"))});
    let req = c.client.post(format!("{}/v1/chat/completions", c.rt.base)).header("x-request-id", id).json(&body);
    let r = send(c, req).await?;
    ensure!(r.status == 200, "{} {}", r.status, r.text);
    let started = Instant::now();
    let record = loop {
        let logs = c.rt.log_text();
        let found = logs.lines().filter_map(|l| l.find('{').map(|i| &l[i..])).filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| v["event"] == "audit" && v["request_id"] == id);
        if let Some(v) = found {
            break v;
        }
        if started.elapsed() > Duration::from_secs(10) {
            bail!("no audit record for {id}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (field, want) in [("key", json!("main")), ("model", json!("localm")), ("status", json!(200)), ("outcome", json!("completed")), ("prompt_tokens", json!(1117))] {
        ensure!(record[field] == want, "audit {field}: {} in {record}", record[field]);
    }
    ensure!(record["sensitive"] == json!(["email"]), "{record}");
    let text = record.to_string();
    ensure!(!text.contains(email) && text.contains("[REDACTED:email]"), "prompt not redacted: {text}");
    ensure!(record["cost_usd"].is_string() && record["latency_ms"].is_u64(), "{record}");
    Ok(())
}
