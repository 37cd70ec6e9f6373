//! Tier-3 classifier latency, side by side in one run, medians:
//! - through the guest: `Guest::classify` (a fresh wasm instance, the guest's prompt, wasi-nn into
//!   the llama.cpp backend), what `POST /v1/classify` runs;
//! - direct: the same prompt and labels straight into the backend from Rust (`GgufGraph::score`);
//! - direct with the hidden state: the same, also returning the model's final hidden state where
//!   the answer starts (what the guest's trained head reads; llama.cpp then projects every token
//!   onto the vocabulary).
//!
//! for request texts of about 100 and 300 model tokens, the bundled config's 9 labels, with the
//! fixed instructions in the KV cache (steady state: every request shares them; each iteration's
//! text differs from its first word, so only the instructions are reused) and without it (first
//! request, or a changed label set).
//!
//! Run: `cargo bench -p wasi-host --bench classifier` (after ./scripts/build; reads
//! GATEWAY_CLASSIFIER_MODEL and GATEWAY_CLASSIFIER_GUEST, set by scripts/env.sh).
//! BENCH_GPU_LAYERS=99 offloads the model to a GPU in a `--features cuda` build.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use classifier_guest::{prompt, Label, Template};
use serde_json::{json, Value};
use wasi_host::classifier::{Guest, GuestSettings, GRAPH};
use wasi_host::nn::{GgufGraph, ModelOptions};

const N: usize = 15;
const TEXT: &str = include_str!("embedding_input.txt");
const LABELS: [(&str, &str); 9] = [
    ("code", "Writing, reviewing and debugging code, SQL, shell"),
    ("creative_writing", "Stories, poems, marketing copy, blog posts"),
    ("extraction", "Pulling structured fields out of text"),
    ("general", "Everyday questions and chat"),
    ("math", "Calculation, algebra, proofs, statistics"),
    ("reasoning", "Multi-step logic, planning, puzzles, analysis"),
    ("sensitive", "Personal, medical or financial data: stays on local models"),
    ("summarization", "Summaries, TL;DRs, key points"),
    ("translation", "Translating text between languages"),
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A prefix of TEXT (repeated as needed) of about `tokens` model tokens.
fn text_of(graph: &GgufGraph, tokens: usize) -> String {
    let words: Vec<&str> = TEXT.split_whitespace().cycle().take(4 * tokens).collect();
    let mut lo = 1;
    let mut hi = words.len();
    while lo < hi {
        let mid = (lo + hi) / 2;
        if graph.count_tokens(&words[..mid].join(" ")).expect("tokenizes") < tokens {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    words[..lo].join(" ")
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let model = std::env::var("GATEWAY_CLASSIFIER_MODEL").context("GATEWAY_CLASSIFIER_MODEL (source scripts/env.sh)")?;
    let guest_wasm = std::env::var("GATEWAY_CLASSIFIER_GUEST").context("GATEWAY_CLASSIFIER_GUEST (source scripts/env.sh)")?;
    let gpu_layers = std::env::var("BENCH_GPU_LAYERS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let options = ModelOptions { gpu_layers, ..Default::default() };
    let t = Instant::now();
    let graph = GgufGraph::load(std::path::Path::new(&model), options.clone()).map_err(|e| anyhow::anyhow!("{e}: {:?}", std::error::Error::source(&e)))?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    // `auto` is resolved by `classifier::run`; this drives the guest directly, so it resolves too.
    let template = wasi_host::classifier::resolve_template(wasi_host::classifier::AUTO_TEMPLATE, graph.chat_template().as_deref())?;
    let settings = GuestSettings { template, max_text_chars: 100_000, hint_weight: 0.0, ..GuestSettings::default() }.to_json(GRAPH);
    let guest = Guest::new(std::path::Path::new(&guest_wasm), graph.clone(), settings, Duration::from_secs(60))?;
    eprintln!("model {} loaded in {load_ms:.0} ms; {} threads, {gpu_layers} GPU layers", graph.description(), options.threads);

    let labels: Vec<Label> = LABELS.iter().map(|(n, d)| Label { name: n.to_string(), description: d.to_string() }).collect();
    let label_refs: Vec<&Label> = labels.iter().collect();
    let continuations: String = LABELS.iter().map(|(n, _)| format!(" {}", n.replace('_', " "))).collect::<Vec<_>>().join("\n");
    let request_labels: Vec<Value> = LABELS.iter().map(|(n, d)| json!({"name": n, "description": d})).collect();
    eprintln!(
        "{:>8} {:>7} | {:>9} {:>9} {:>9} {:>13} {:>13} | {:>14} {:>15}",
        "text tok", "prompt", "guest ms", "direct ms", "ratio", "guest-compute", "direct+hidden", "uncached guest", "uncached direct"
    );
    for tokens in [100, 300] {
        let base = text_of(&graph, tokens);
        let other_prompt = prompt(Template::Plain, &label_refs, "x");
        // Iteration i's text starts with its own word, so nothing of the text is cached.
        let variant = |i: usize| {
            let text = format!("{} {base}", ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf"][i % 7]);
            let full = prompt(Template::Chatml, &label_refs, &classifier_guest::sanitize(&text, 100_000));
            (json!({"text": text, "labels": request_labels}), full)
        };
        let (req, full_prompt) = variant(0);
        let text = base.clone();
        // Warm up both paths (and the KV cache of the instructions).
        for _ in 0..3 {
            guest.classify(req.clone()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            graph.score(full_prompt.as_bytes(), continuations.as_bytes(), false).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let (mut g, mut d, mut gu, mut du, mut outside, mut dh) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut prompt_tokens = 0.0;
        for i in 0..N {
            let (req_i, _) = variant(2 * i + 1);
            let t = Instant::now();
            let v = guest.classify(req_i).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            g.push(t.elapsed().as_secs_f64() * 1e3);
            prompt_tokens = v["prompt_tokens"].as_f64().unwrap_or(0.0);
            // What the guest path spends outside the model: instantiation, JSON, prompt, copies.
            outside.push(t.elapsed().as_secs_f64() * 1e3 - v["compute_ms"].as_f64().unwrap_or(0.0));
            let (_, full_i) = variant(2 * i + 2);
            let t = Instant::now();
            graph.score(full_i.as_bytes(), continuations.as_bytes(), false).map_err(|e| anyhow::anyhow!("{e}"))?;
            d.push(t.elapsed().as_secs_f64() * 1e3);
            let (_, full_h) = variant(2 * i + N * 2 + 3);
            let t = Instant::now();
            let out = graph.score(full_h.as_bytes(), continuations.as_bytes(), true).map_err(|e| anyhow::anyhow!("{e}"))?;
            dh.push(t.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(out.hidden.is_some_and(|h| h.len() == graph.info().n_embd), "no hidden state");
            // Uncached: another prompt first, so nothing of this one is in the KV cache.
            graph.score(other_prompt.as_bytes(), continuations.as_bytes(), false).map_err(|e| anyhow::anyhow!("{e}"))?;
            let t = Instant::now();
            guest.classify(req.clone()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            gu.push(t.elapsed().as_secs_f64() * 1e3);
            graph.score(other_prompt.as_bytes(), continuations.as_bytes(), false).map_err(|e| anyhow::anyhow!("{e}"))?;
            let t = Instant::now();
            graph.score(full_prompt.as_bytes(), continuations.as_bytes(), false).map_err(|e| anyhow::anyhow!("{e}"))?;
            du.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (g, d, gu, du, o, dh) = (median(g), median(d), median(gu), median(du), median(outside), median(dh));
        eprintln!(
            "{:>8} {:>7} | {g:>9.1} {d:>9.1} {:>9.3} {o:>10.2} ms {dh:>13.1} | {gu:>14.1} {du:>15.1}",
            graph.count_tokens(&text).expect("tokenizes"),
            prompt_tokens,
            g / d
        );
    }
    Ok(())
}
