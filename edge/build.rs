//! Chooses the YAML bundled into the build: `$GATEWAY_CONFIG` (relative paths are taken from the
//! workspace root) or `edge/gateway.yaml`.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=GATEWAY_CONFIG");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let path = match env::var("GATEWAY_CONFIG") {
        Ok(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { manifest.join("..").join(p) }
        }
        _ => manifest.join("gateway.yaml"),
    };
    println!("cargo:rerun-if-changed={}", path.display());
    println!("cargo:rustc-env=GATEWAY_BUNDLED_CONFIG={}", path.display());
}
