//! Checks on the built Workers bundle itself (`edge/build/index.js`, made by `scripts/build`).

/// Nonces and request ids come from `crypto.getRandomValues`: the bundle must not import
/// `Math.random`, which is not a cryptographic generator.
#[test]
fn the_workers_bundle_uses_no_math_random() {
    let path = std::env::var("GATEWAY_WORKER_JS").unwrap_or_else(|_| format!("{}/../edge/build/index.js", env!("CARGO_MANIFEST_DIR")));
    let js = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e} (run scripts/build workers first)"));
    assert!(!js.contains("Math.random"), "{path} imports Math.random");
    assert!(js.contains("crypto.getRandomValues"), "{path} does not use crypto.getRandomValues");
}
