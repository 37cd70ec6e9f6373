//! The Rust embeddings against reference vectors from onnxruntime (`models/reference.py`, checked
//! in as `tests/fixtures/minilm_reference.json`): 25 sentences, English and not, code, emoji,
//! empty, and two over 256 tokens (truncated).
#![cfg(feature = "embedding")]

use std::path::PathBuf;

use llm_gateway::tiers::embed::Embedder;
use llm_gateway::tiers::intents::dot;
use serde_json::Value;

fn model_dir() -> PathBuf {
    std::env::var_os("GATEWAY_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/minilm"))
}

fn read(name: &str) -> Vec<u8> {
    let path = model_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run models/fetch)", path.display()))
}

fn reference() -> Vec<Value> {
    let text = include_str!("fixtures/minilm_reference.json");
    let v: Value = serde_json::from_str(text).expect("fixture parses");
    v["rows"].as_array().expect("rows").clone()
}

fn vector(v: &Value) -> Vec<f32> {
    v.as_array().expect("vector").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

fn check(model_file: &str, reference_key: &str, min_cos: f32) {
    let embedder = Embedder::load(read(model_file), &read("tokenizer.json"), 256).expect("model loads");
    let rows = reference();
    assert!(rows.len() >= 20);
    let mut worst = (1.0f32, String::new());
    for row in &rows {
        let text = row["text"].as_str().expect("text");
        let got = embedder.embed(text).expect("embeds");
        assert_eq!(got.tokens as u64, row["tokens"].as_u64().expect("tokens"), "token count for {text:?}");
        let cos = dot(&got.vector, &vector(&row[reference_key]));
        if cos < worst.0 {
            worst = (cos, text.chars().take(40).collect());
        }
    }
    eprintln!("{model_file}: worst cosine vs reference {reference_key} = {:.6} ({:?})", worst.0, worst.1);
    assert!(worst.0 >= min_cos, "{model_file}: cosine {} < {min_cos} for {:?}", worst.0, worst.1);
}

#[test]
fn fp32_matches_onnxruntime_fp32() {
    check("model-f32.onnx", "f32", 0.999);
}

#[test]
fn int8_matches_onnxruntime_fp32() {
    check("model-int8.onnx", "f32", 0.99);
}

#[test]
fn int8_matches_onnxruntime_int8() {
    check("model-int8.onnx", "int8", 0.999);
}

#[test]
fn bad_input_is_bounded_and_never_panics() {
    let embedder = Embedder::load(read("model-int8.onnx"), &read("tokenizer.json"), 256).expect("model loads");
    let huge = "lorem ipsum dolor sit amet ".repeat(4000); // ~108 KB
    assert_eq!(embedder.embed(&huge).expect("embeds").tokens, 256);
    let junk = String::from_utf8_lossy(&(0..=255u8).cycle().take(100_000).collect::<Vec<_>>()).into_owned();
    assert!(embedder.embed(&junk).expect("embeds").tokens <= 256);
    assert_eq!(embedder.embed("").expect("embeds").tokens, 2);
    let one_word = "a".repeat(100_000);
    assert!(embedder.embed(&one_word).expect("embeds").tokens <= 256);
}

#[test]
fn rejects_files_that_are_not_the_model() {
    let tokenizer = read("tokenizer.json");
    assert!(Embedder::load(b"not an onnx file".to_vec(), &tokenizer, 256).is_err());
    assert!(Embedder::load(read("model-int8.onnx"), b"{}", 256).is_err());
}

/// The gateway embeds the same tokens as the trainer (`models/router/train.py` `token_ids`,
/// checked in as `fixtures/embedding_token_ids.json`): the first tokens of a long prompt and, with
/// `tail_tokens`, its last ones, so pasted text followed by the request keeps the request.
#[test]
fn head_and_tail_tokens_match_the_trainer() {
    let v: Value = serde_json::from_str(include_str!("fixtures/embedding_token_ids.json")).expect("fixture parses");
    let mut embedders = std::collections::HashMap::new();
    for row in v["rows"].as_array().expect("rows") {
        let (max, tail) = (row["max_tokens"].as_u64().expect("max") as usize, row["tail_tokens"].as_u64().expect("tail") as usize);
        let embedder = embedders
            .entry((max, tail))
            .or_insert_with(|| Embedder::load(read("model-int8.onnx"), &read("tokenizer.json"), max).expect("model loads").with_tail_tokens(tail));
        let text = row["text"].as_str().expect("text");
        let want: Vec<u32> = row["ids"].as_array().expect("ids").iter().map(|x| x.as_u64().expect("id") as u32).collect();
        assert_eq!(embedder.token_ids(text).expect("encodes"), want, "{:?}", text.chars().take(60).collect::<String>());
    }
}
