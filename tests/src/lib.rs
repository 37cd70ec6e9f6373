//! Integration tests of the real wasm builds in real runtimes.
//!
//! - `mock`: in-process HTTP servers speaking OpenAI's and Anthropic's wire formats, replaying
//!   recorded bodies and streams (`tests/fixtures/`), injecting 429/5xx/timeouts/resets/
//!   malformed SSE, counting calls.
//! - `runtime`: starts `wrangler dev` (workerd) or `wasi-host serve` on a free port with a test
//!   config in its key-value store.
//! - `scenarios`: the cases, run against both runtimes by `workers.rs` and `spin.rs`.
//! - `clients`: the official client libraries (Python, `tests/clients/`) as one of those cases.

pub mod classifier;
pub mod clients;
pub mod embeddings;
pub mod mock;
pub mod runtime;
pub mod scenarios;
pub mod semantic;
pub mod tier3;
pub mod zero_trust;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixture(path: &str) -> Vec<u8> {
    let p = repo_root().join("tests/fixtures").join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// Starts the mock providers and the runtime, checks that the bundled config serves until KV
/// holds one, seeds the test config, runs every scenario, then scans the runtime's logs for the
/// provider keys.
pub fn run_suite(kind: runtime::Kind) -> ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let ctx = rt.block_on(async {
        let mock = mock::Mock::start().await?;
        // Short texts keep each classification well inside the edge's deadline while the
        // scenarios run in parallel on two cores (the queue is shared); the host's own deadline
        // sits just under the edge's 8 s (e2e.yaml), since on two cores the classifications
        // queue behind the runtime and the client-library suite.
        let classifier = classifier::ClassifierHost::start(&["--max-text-chars", "300", "--timeout-ms", "7500"]).await?;
        mock.set_tier3(&classifier.base);
        let runtime = runtime::Runtime::start(kind).await?;
        // Every scenario is a caller with the `main` key unless it sets another.
        let mut auth = reqwest::header::HeaderMap::new();
        auth.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", scenarios::test_key("main")).parse()?);
        let client = reqwest::Client::builder().default_headers(auth).build()?;
        let health = |client: reqwest::Client, base: String| async move {
            let v: serde_json::Value = client.get(format!("{base}/healthz")).send().await?.json().await?;
            anyhow::Ok(v["config_source"].as_str().unwrap_or("").to_owned())
        };
        let source = health(client.clone(), runtime.base.clone()).await?;
        if source != "bundled" {
            bail!("with an empty key-value store the bundled config must serve, got {source:?}");
        }
        runtime.kv_put("config", scenarios::config_yaml(&mock, false).as_bytes()).await?;
        let t = Instant::now();
        while health(client.clone(), runtime.base.clone()).await? != "kv" {
            if t.elapsed() > Duration::from_secs(30) {
                bail!("the KV config was not picked up in 30 s; log:\n{}", runtime.log_text());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        anyhow::Ok(scenarios::Ctx { rt: runtime, mock, client, classifier })
    });
    let ctx = match ctx.context("starting the suite") {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("{kind:?} suite could not start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("{kind:?} runtime ready at {} in {:.1} s", ctx.rt.base, started.elapsed().as_secs_f64());
    let handle = rt.handle().clone();
    let trials = scenarios::all()
        .into_iter()
        .map(|(name, case)| {
            let (ctx, handle) = (ctx.clone(), handle.clone());
            libtest_mimic::Trial::test(name, move || handle.block_on(case(&ctx)).map_err(|e| format!("{e:#}").into()))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    let mut code = conclusion.exit_code();
    // Then, alone, the cases that switch the serving config (scenarios::after_all).
    for (name, case) in scenarios::after_all() {
        let wanted = args.filter.as_deref().is_none_or(|f| if args.exact { name == f } else { name.contains(f) }) && !args.skip.iter().any(|s| name.contains(s.as_str()));
        if args.list || !wanted || args.ignored {
            continue;
        }
        match handle.block_on(case(&ctx)) {
            Ok(()) => {
                eprintln!("test {name} (alone, after the others) ... ok");
            }
            Err(e) => {
                eprintln!("test {name} (alone, after the others) ... FAILED\n{e:#}");
                code = ExitCode::FAILURE;
            }
        }
    }
    let logs = ctx.rt.log_text();
    if !args.list {
        let client_key = scenarios::test_key("main");
        for key in [runtime::OPENAI_KEY, runtime::ANTHROPIC_KEY, client_key.as_str(), classifier::SECRET] {
            if logs.contains(key) {
                eprintln!("FAILED: a provider or client key appears in the {kind:?} runtime's logs");
                code = ExitCode::FAILURE;
            }
        }
        if std::env::var_os("GATEWAY_E2E_SHOW_LOGS").is_some() {
            eprintln!("---- {kind:?} runtime log ----\n{logs}");
        }
    }
    code
}
