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

/// `tools/workers/shim.js` is worker-build's shim for one version of the `worker` crate
/// (`__worker_init_state`, `__wbg_reset_state`): upgrading the crate without taking the matching
/// shim must fail here, not in production.
#[test]
fn the_workers_shim_matches_the_worker_crate() {
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let lock = std::fs::read_to_string(format!("{root}/Cargo.lock")).unwrap();
    let locked = lock
        .split("[[package]]")
        .find_map(|p| p.contains("\nname = \"worker\"\n").then(|| p.split("version = \"").nth(1)?.split('"').next()))
        .flatten()
        .expect("Cargo.lock has the worker crate");
    let bundler = std::fs::read_to_string(format!("{root}/tools/workers/bundle.mjs")).unwrap();
    assert!(
        bundler.contains(&format!("export const WORKER_VERSION = \"{locked}\";")),
        "Cargo.lock has worker {locked}; take worker-build {locked}'s src/js/shim.js into tools/workers/ and update WORKER_VERSION"
    );
}

/// The bundle wraps the Durable Object class and the fetch handler as worker-build does.
#[test]
fn the_workers_bundle_exports_its_handlers() {
    let path = std::env::var("GATEWAY_WORKER_JS").unwrap_or_else(|_| format!("{}/../edge/build/index.js", env!("CARGO_MANIFEST_DIR")));
    let js = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e} (run scripts/build workers first)"));
    assert!(js.contains("LedgerObject"), "{path} does not export the LedgerObject Durable Object");
    assert!(js.contains("index_bg.wasm") && !js.contains("import source "), "{path} does not import its wasm as a module");
    assert!(js.contains("export"), "{path} exports nothing");
}
