//! Tier 2 with the trained head, on the real model: decisions on prompts written for this test
//! (not from the corpus or the validation set), the sensitive detector overriding a confident
//! keyword, and an operator's YAML capability changing decisions without retraining.
#![cfg(feature = "embedding")]

use std::path::PathBuf;

use llm_gateway::api::ParsedChat;
use llm_gateway::tiers::embed::Embedder;
use llm_gateway::tiers::intents::{IntentIndex, SemanticVerdict};
use llm_gateway::router::{self, SemanticTier, Tier, Tier2};
use llm_gateway::Config;

fn read(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("GATEWAY_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/minilm"));
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run models/fetch)", path.display()))
}

struct Live {
    embedder: Embedder,
    index: IntentIndex,
}

impl Live {
    fn new(config: &Config) -> Self {
        let cfg = config.router.embedding.as_ref().expect("tier 2 configured");
        let embedder = Embedder::load(read(&cfg.model_file), &read(&cfg.tokenizer_file), cfg.max_tokens).expect("model loads").with_tail_tokens(cfg.tail_tokens);
        let index = IntentIndex::embedding_examples(cfg, &embedder).expect("index");
        Self { embedder, index }
    }
    fn verdict(&self, text: &str) -> SemanticVerdict {
        self.classify(text).expect("verdict").0
    }
}

impl SemanticTier for Live {
    fn classify(&self, text: &str) -> Result<(SemanticVerdict, usize), String> {
        let e = self.embedder.embed(text).map_err(|e| e.to_string())?;
        Ok((self.index.classify(&e.vector).ok_or("no verdict")?, e.tokens))
    }
}

fn chat(text: &str) -> ParsedChat {
    let body = serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": text}]}).to_string();
    ParsedChat::from_slice(body.as_bytes()).expect("valid request")
}

#[test]
fn the_bundled_head_routes_unseen_prompts() {
    let config = Config::bundled().expect("bundled config");
    let live = Live::new(&config);
    // Written for this test; the head has seen neither them nor the validation set.
    let cases = [
        ("Write a Go function that merges two sorted slices without allocating twice.", "code"),
        ("Why does my Kotlin coroutine never resume after the network call returns?", "code"),
        ("Solve for y: 4y - 7 = 3y + 12, and show each step.", "math"),
        ("A tank fills in 6 hours and drains in 9. Starting empty with both open, when is it full?", "math"),
        ("Write a short poem about a fox crossing a frozen river at dawn.", "creative_writing"),
        ("Please translate 'where is the nearest pharmacy' into Portuguese.", "translation"),
        ("Summarize the following article in three sentences: The city council met on Monday to discuss the new bus lanes, which residents have debated for months.", "summarization"),
        ("How much did I spend on groceries with my debit card last month?", "sensitive"),
        ("I need to dispute a charge on my credit card from yesterday.", "sensitive"),
        ("What is the tallest mountain in Africa?", "general"),
    ];
    let mut misses = Vec::new();
    for (text, want) in cases {
        let v = live.verdict(text);
        let total: f64 = v.verdict.scores.iter().map(|s| s.1).sum();
        assert!((total - 1.0).abs() < 0.02, "scores are probabilities: {v:?}");
        if v.verdict.capability != want {
            misses.push(format!("{text} -> {} ({}), want {want}", v.verdict.capability, v.verdict.confidence));
        }
    }
    // The head is right on 0.905 of its corpus out of fold and less on other prompts: allow two misses.
    assert!(misses.len() <= 2, "{} of {} wrong:\n{}", misses.len(), cases.len(), misses.join("\n"));
}

#[test]
fn the_detector_overrides_a_confident_keyword() {
    let config = Config::bundled().expect("bundled config");
    let live = Live::new(&config);
    // `python` makes the keyword tier confident for code; the prompt is about the caller's account.
    let c = chat("my python script shows my checking account balance dropped, why was my card charged twice?");
    assert!(router::needs_semantic(&config, &c), "the head screens keyword-decided prompts");
    let d = router::decide(&config, &c, Tier2::Ready(&live)).expect("decision");
    assert_eq!((d.tier, d.capability.as_deref(), d.route.as_str()), (Tier::Embedding, Some("sensitive"), "local"), "{d:?}");
    assert!(d.trace[0].confident && d.trace[0].capability.as_deref() == Some("code"), "{:?}", d.trace);
    // Below the detector's threshold the keyword decides (the trace still shows the screen).
    let d = router::decide(&config, &chat("Refactor this Rust function to use iterators instead of a for loop."), Tier2::Ready(&live)).expect("decision");
    let screen = &d.trace[1];
    let threshold = f64::from(llm_gateway::tiers::head::Head::bundled().expect("head").sensitive_threshold);
    assert!(screen.sensitive_probability.is_some_and(|p| p < threshold), "{d:?}");
    assert_eq!((d.tier, d.capability.as_deref()), (Tier::Keyword, Some("code")), "{d:?}");
}

#[test]
fn an_operators_capability_changes_decisions_without_retraining() {
    let yaml = include_str!("../gateway.yaml");
    let prompt = "Draft a non-disclosure agreement clause that survives termination of the contract.";
    let before = Live::new(&Config::from_yaml(yaml).expect("bundled parses")).verdict(prompt);
    assert_ne!(before.verdict.capability, "legal");
    // A new capability and route, with examples only: the head has never seen it.
    let extended = yaml
        .replace("capabilities:\n", "capabilities:\n  legal: { route: creative, description: \"Contracts and clauses\" }\n")
        .replace(
            "    intents:\n",
            "    intents:\n      - capability: legal\n        examples:\n          - \"Write an indemnification clause for a software licence agreement\"\n          - \"Draft a confidentiality clause for an employment contract\"\n          - \"Add a termination-for-convenience clause to this services contract\"\n",
        );
    let after = Live::new(&Config::from_yaml(&extended).expect("extended parses")).verdict(prompt);
    // The new capability ranks first. (The sensitive detector still runs on its own: contract
    // wording may sit above its recall-first threshold and pin the prompt local all the same.)
    assert_eq!(after.verdict.scores[0].0, "legal", "{after:?}");
    // And it does not take over unrelated prompts.
    let other = Live::new(&Config::from_yaml(&extended).expect("extended parses")).verdict("Write a haiku about autumn rain on a tin roof.");
    assert_eq!(other.verdict.capability, "creative_writing", "{other:?}");
}

#[test]
fn without_the_head_the_examples_decide_alone() {
    let yaml = include_str!("../gateway.yaml").replace("    head: bundled", "    head: none");
    let config = Config::from_yaml(&yaml).expect("parses");
    assert!(!config.router.embedding.as_ref().expect("tier 2").head);
    let v = Live::new(&config).verdict("Implement binary search over a sorted array");
    assert_eq!(v.verdict.capability, "code");
    assert!(v.sensitive_probability.is_none() && (v.verdict.confidence - 1.0).abs() < 0.01, "cosine to its own example: {v:?}");
}

/// The bundled config's tier-2 verdict for a few prompts, scores to three decimals, pinned in
/// `tests/fixtures/head_reference.json`: a retrain shows up as a diff. (The runtime suites check
/// the wasm against the native build directly: `the_trained_head_in_the_wasm_matches_native`.)
/// `GATEWAY_WRITE_HEAD_REFERENCE=1` rewrites it after a retrain.
#[test]
fn native_outputs_match_the_pinned_reference() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/head_reference.json");
    let prompts = [
        "Write a Go function that merges two sorted slices without allocating twice.",
        "How much did I spend on groceries with my debit card last month?",
        "Translate 'the meeting is moved to Thursday' into Japanese, politely.",
    ];
    let config = Config::bundled().expect("bundled config");
    let live = Live::new(&config);
    let cases: Vec<serde_json::Value> = prompts
        .iter()
        .map(|p| {
            let v = live.verdict(p);
            serde_json::json!({"prompt": p, "capability": v.verdict.capability, "confidence": v.verdict.confidence, "scores": v.verdict.scores})
        })
        .collect();
    let got = serde_json::json!({"note": "edge/tests/head.rs writes and checks this", "cases": cases});
    if std::env::var_os("GATEWAY_WRITE_HEAD_REFERENCE").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).expect("json") + "\n").expect("writes the reference");
    }
    let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("reference exists")).expect("reference parses");
    assert_eq!(got["cases"], want["cases"], "native tier-2 outputs changed: retrained? rerun with GATEWAY_WRITE_HEAD_REFERENCE=1");
}
