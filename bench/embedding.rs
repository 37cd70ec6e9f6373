//! Native tier-1 and tier-2 latency (criterion): the keyword tier on a 1 KB prompt, the
//! embedding at 16 and 128 tokens (int8 and fp32 files), the trained head and its sensitive
//! detector on one embedding, and the model load (cold start).
//! The same inputs are timed with onnxruntime by `bench/embedding_ort.py` for the ratio.
//!
//! Run: `cargo bench -p llm-gateway --bench embedding --profile host` (models/fetch first).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use llm_gateway::tiers::embed::Embedder;
use llm_gateway::tiers::head::Head;
use llm_gateway::Config;

/// Truncated to exactly N tokens by the embedder (`max_tokens`); shared with embedding_ort.py.
pub const TEXT: &str = include_str!("embedding_input.txt");

fn models() -> PathBuf {
    std::env::var_os("GATEWAY_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/minilm"))
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(models().join(name)).unwrap_or_else(|e| panic!("{name}: {e} (run models/fetch)"))
}

fn keyword(c: &mut Criterion) {
    let config = Config::bundled().expect("bundled config");
    // 1 KB of prose with no keyword until the end: the automaton scans all of it.
    let mut prompt = "The committee met on Tuesday to review the quarterly figures and plans. ".repeat(14);
    prompt.push_str("Can you translate this?");
    assert!(prompt.len() >= 1024);
    c.bench_function("keyword tier, 1 KB prompt", |b| b.iter(|| black_box(config.router.keyword.classify(black_box(&prompt)))));
}

fn embedding(c: &mut Criterion) {
    let tokenizer = read("tokenizer.json");
    let mut g = c.benchmark_group("embedding");
    g.measurement_time(Duration::from_secs(8));
    for file in ["model-int8.onnx", "model-f32.onnx"] {
        let model = read(file);
        for tokens in [16usize, 128] {
            let e = Embedder::load(model.clone(), &tokenizer, tokens).expect("loads");
            assert_eq!(e.count_tokens(TEXT).expect("tokenizes"), tokens);
            g.bench_function(format!("{file}, {tokens} tokens"), |b| b.iter(|| black_box(e.embed(black_box(TEXT)).expect("embeds"))));
        }
    }
    g.finish();
    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    for file in ["model-int8.onnx", "model-f32.onnx"] {
        let model = read(file);
        g.bench_function(format!("{file} + tokenizer"), |b| b.iter(|| black_box(Embedder::load(model.clone(), &tokenizer, 128).expect("loads"))));
    }
    g.finish();
}

/// The bundled head (MLP, 384 -> 256 -> 9) and its detector (384 -> 256 -> 1) on one unit
/// vector: what tier 2 adds to the embedding.
fn head(c: &mut Criterion) {
    let h = Head::bundled().expect("bundled head");
    let mut v: Vec<f32> = (0..h.dim).map(|i| ((i + 1) as f32 * 0.37).sin()).collect();
    llm_gateway::tiers::embed::normalize(&mut v);
    c.bench_function("head: log-probabilities + sensitive score", |b| {
        b.iter(|| {
            let lp = h.log_probs(black_box(&v));
            black_box(h.sensitive_score(&v, lp[0].exp()))
        })
    });
}

criterion_group!(benches, keyword, head, embedding);
criterion_main!(benches);
