//! Per-request cost of the policy layer in the real runtimes (workerd via `wrangler dev`, the
//! Spin component in wasi-host), against the in-process mock provider.
//!
//! Three kinds of request, interleaved so that they share the same machine state:
//! - `auth only`: a key without limits (hash lookup, allow-lists, residency scan, audit);
//! - `limits`: a key with RPM, TPM and a daily budget: a reserve and a settle on the shared
//!   counters (two Durable Object calls on Workers, two compare-and-swaps on Spin);
//! - `limits (memory)`: the same key with `auth.counters: memory` (no shared store), run after
//!   the config is switched, as the baseline for the shared store's cost.
//!
//! Prints medians and p90 in ms. Run: `cargo bench -p gateway-e2e --bench policy_overhead`.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use gateway_e2e::{mock::Mock, runtime::{Kind, Runtime}, scenarios};
use serde_json::json;

const N: usize = 200;

async fn time_one(client: &reqwest::Client, base: &str, key: &str) -> Result<f64> {
    let body = json!({"model": "oa", "max_tokens": 50, "messages": [{"role": "user", "content": "Say hello in one short sentence."}]});
    let t = Instant::now();
    let r = client.post(format!("{base}/v1/chat/completions")).bearer_auth(key).json(&body).send().await?;
    let status = r.status();
    r.bytes().await?;
    anyhow::ensure!(status == 200, "status {status}");
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[v.len() * 9 / 10])
}

async fn wait_for(client: &reqwest::Client, base: &str, digest_not: &str) -> Result<()> {
    let t = Instant::now();
    loop {
        let v: serde_json::Value = client.get(format!("{base}/healthz")).send().await?.json().await?;
        if v["config_source"] == "kv" && v["config_digest"] != digest_not {
            return Ok(());
        }
        anyhow::ensure!(t.elapsed() < Duration::from_secs(30), "config not picked up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn bench(kind: Kind) -> Result<()> {
    let mock = Mock::start().await?;
    let rt = Runtime::start(kind).await?;
    let client = reqwest::Client::new();
    // The e2e config with generous limits on `bench-limited`.
    let base_yaml = scenarios::config_yaml(&mock, false).replace(
        "keys:\n",
        &format!(
            "keys:\n  bench-limited: {{ hash: \"{}\", rpm: 1000000, tpm: 1000000000, budget_usd_per_day: 1000000 }}\n",
            scenarios::key_hash(&scenarios::test_key("bench-limited"))
        ),
    );
    rt.kv_put("config", base_yaml.as_bytes()).await?;
    wait_for(&client, &rt.base, "").await?;
    let (main, limited) = (scenarios::test_key("main"), scenarios::test_key("bench-limited"));
    for _ in 0..20 {
        time_one(&client, &rt.base, &main).await?;
        time_one(&client, &rt.base, &limited).await?;
    }
    let (mut plain, mut shared) = (Vec::new(), Vec::new());
    for _ in 0..N {
        plain.push(time_one(&client, &rt.base, &main).await?);
        shared.push(time_one(&client, &rt.base, &limited).await?);
    }
    let digest: serde_json::Value = client.get(format!("{}/healthz", rt.base)).send().await?.json().await?;
    rt.kv_put("config", base_yaml.replace("counters: platform", "counters: memory").as_bytes()).await?;
    wait_for(&client, &rt.base, digest["config_digest"].as_str().unwrap_or("")).await?;
    let mut memory = Vec::new();
    for _ in 0..20 {
        time_one(&client, &rt.base, &limited).await?;
    }
    for _ in 0..N {
        memory.push(time_one(&client, &rt.base, &limited).await?);
    }
    let (p, s, m) = (stats(plain), stats(shared), stats(memory));
    eprintln!("{kind:?}: {N} sequential requests each, latency ms (median / p90) through the gateway to the mock:");
    eprintln!("  auth only (no counters)        {:7.2} / {:7.2}", p.0, p.1);
    eprintln!("  limits, shared counters        {:7.2} / {:7.2}   (+{:.2} ms median)", s.0, s.1, s.0 - p.0);
    eprintln!("  limits, in-memory counters     {:7.2} / {:7.2}   (+{:.2} ms median)", m.0, m.1, m.0 - p.0);
    Ok(())
}

fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing: run only when benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let rt = tokio::runtime::Runtime::new().context("tokio")?;
    let only = std::env::var("BENCH_RUNTIME").unwrap_or_default();
    for kind in [Kind::Spin, Kind::Workers] {
        if only.is_empty() || only.eq_ignore_ascii_case(&format!("{kind:?}")) {
            rt.block_on(bench(kind))?;
        }
    }
    Ok(())
}
