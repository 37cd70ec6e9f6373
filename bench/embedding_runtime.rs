//! Tier-2 latency inside the real wasm runtimes (the Spin component in wasi-host, the Workers
//! build in workerd), measured from the client on `POST /v1/route` (no provider call):
//! - baseline: a prompt the keyword tier decides (the embedding does not run);
//! - 16 and 128 tokens: prompts only the embedding tier decides.
//!
//! The difference of medians is what tier 2 adds. Workers freezes its clock inside a request,
//! so only the client can time it. Also: the first request after start (cold: the model loads
//! from the platform's files) and, for Spin, a fresh instance per request (`--instance-reuse 1`,
//! how Spin 3 runs wasi:http 0.2 components).
//!
//! Run: `cargo bench -p gateway-e2e --bench embedding_runtime` (after ./scripts/build all);
//! `BENCH_RUNTIME=spin|workers` runs one runtime, `BENCH_SPIN_FRESH=0` skips the fresh-instance case.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use gateway_e2e::{mock::Mock, runtime::{Kind, Runtime}, scenarios};
use serde_json::{json, Value};

const N: usize = 100;
const TEXT: &str = include_str!("embedding_input.txt");

async fn time_route(client: &reqwest::Client, base: &str, key: &str, prompt: &str) -> Result<(f64, Value)> {
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]});
    let t = Instant::now();
    let r = client.post(format!("{base}/v1/route")).bearer_auth(key).json(&body).send().await?;
    anyhow::ensure!(r.status() == 200, "status {}", r.status());
    let v: Value = r.json().await?;
    Ok((t.elapsed().as_secs_f64() * 1000.0, v))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A prefix of TEXT that the model sees as `tokens` tokens (CLS and SEP included).
async fn prompt_of(client: &reqwest::Client, base: &str, key: &str, tokens: u64) -> Result<String> {
    let words: Vec<&str> = TEXT.split_whitespace().collect();
    for n in 1..=words.len() {
        let p = words[..n].join(" ");
        let (_, v) = time_route(client, base, key, &p).await?;
        if v["tiers"][1]["tokens"].as_u64().is_some_and(|t| t >= tokens) {
            return Ok(p);
        }
    }
    Ok(TEXT.to_owned())
}

async fn bench(kind: Kind, host_args: &[&str], label: &str) -> Result<()> {
    let mock = Mock::start().await?;
    let rt = Runtime::start_with(kind, host_args).await?;
    let client = reqwest::Client::new();
    // Tier 2 alone: the test config's classifier section (tier 3) is left out.
    let config = scenarios::config_yaml(&mock, false);
    let config = match (config.find("  classifier:"), config.find("    timeout_ms: 8000\n")) {
        (Some(a), Some(b)) if b > a => format!("{}{}", &config[..a], &config[b + "    timeout_ms: 8000\n".len()..]),
        _ => config,
    };
    anyhow::ensure!(!config.contains("classifier:"), "the bench config still has a classifier");
    rt.kv_put("config", config.as_bytes()).await?;
    let t = Instant::now();
    loop {
        let v: Value = client.get(format!("{}/healthz", rt.base)).send().await?.json().await?;
        if v["config_source"] == "kv" {
            break;
        }
        anyhow::ensure!(t.elapsed() < Duration::from_secs(30), "config not picked up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let key = scenarios::test_key("main");
    let (cold, v) = time_route(&client, &rt.base, &key, TEXT).await?;
    anyhow::ensure!(v["tier"] == "embedding" || v["tier"] == "default", "tier 2 ran: {v}");
    let p16 = prompt_of(&client, &rt.base, &key, 16).await?;
    let keyword = "Why is this SQL query slow?";
    for _ in 0..10 {
        for p in [keyword, p16.as_str(), TEXT] {
            time_route(&client, &rt.base, &key, p).await?;
        }
    }
    let (mut k, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
    let (mut t16, mut t128) = (0, 0);
    for _ in 0..N {
        k.push(time_route(&client, &rt.base, &key, keyword).await?.0);
        let (ms, v) = time_route(&client, &rt.base, &key, &p16).await?;
        t16 = v["tiers"][1]["tokens"].as_u64().unwrap_or(0);
        a.push(ms);
        let (ms, v) = time_route(&client, &rt.base, &key, TEXT).await?;
        t128 = v["tiers"][1]["tokens"].as_u64().unwrap_or(0);
        b.push(ms);
    }
    let (k, a, b) = (median(k), median(a), median(b));
    let health: Value = client.get(format!("{}/healthz", rt.base)).send().await?.json().await?;
    let loads: Vec<String> = rt.log_text().lines().filter(|l| l.contains("\"embedding_loaded\"")).map(|l| l.trim().to_owned()).collect();
    eprintln!("{label}: /v1/route, {N} sequential requests each, median ms from the client:");
    eprintln!("  keyword-decided (no embedding)   {k:7.2}");
    eprintln!("  embedding, {t16:3} tokens           {a:7.2}   (tier 2 adds {:.2} ms)", a - k);
    eprintln!("  embedding, {t128:3} tokens           {b:7.2}   (tier 2 adds {:.2} ms)", b - k);
    eprintln!("  first request after start (model load + embed, cold): {cold:.0} ms");
    eprintln!("  wasm linear memory: {:.1} MiB; load records: {}", health["memory_bytes"].as_f64().unwrap_or(0.0) / 1048576.0, loads.len());
    if let Some(l) = loads.first() {
        eprintln!("  first load record: {l}");
    }
    Ok(())
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let rt = tokio::runtime::Runtime::new().context("tokio")?;
    let only = std::env::var("BENCH_RUNTIME").unwrap_or_default();
    if only.is_empty() || only.eq_ignore_ascii_case("spin") {
        rt.block_on(bench(Kind::Spin, &[], "Spin component in wasi-host (instances reused)"))?;
        if std::env::var("BENCH_SPIN_FRESH").as_deref() != Ok("0") {
            rt.block_on(bench(Kind::Spin, &["--instance-reuse", "1"], "Spin component in wasi-host, a fresh instance per request (as Spin 3)"))?;
        }
    }
    if only.is_empty() || only.eq_ignore_ascii_case("workers") {
        rt.block_on(bench(Kind::Workers, &[], "Workers build in workerd (wrangler dev)"))?;
    }
    Ok(())
}
