//! How the embedding tier's files are laid out in a Workers KV namespace (`MODELS`).
//!
//! KV values are capped at 25 MiB and the fp32 model is 90 MB, so every file is stored as
//! chunks under content-addressed keys plus a small manifest under the file's own name:
//!
//! ```text
//! model-int8.onnx                 -> {"size":22928619,"sha256":"8199…","chunks":2}
//! model-int8.onnx@8199be6f699a395f#0  -> bytes [0, 20 MiB)
//! model-int8.onnx@8199be6f699a395f#1  -> bytes [20 MiB, end)
//! ```
//!
//! Chunks are immutable (their key names the content), so an isolate never mixes chunks of
//! two versions of a file while a new one is being uploaded: the manifest is written last and
//! points at one complete set. The size is checked on load.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Below KV's 25 MiB value limit.
pub const CHUNK_BYTES: usize = 20 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub size: u64,
    pub sha256: String,
    pub chunks: u32,
}

impl Manifest {
    pub fn chunk_key(&self, name: &str, i: u32) -> String {
        format!("{name}@{}#{i}", &self.sha256[..16.min(self.sha256.len())])
    }
}

/// The KV entries for one file: the manifest (under `name`) last.
pub fn kv_entries(name: &str, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let manifest = Manifest {
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
        chunks: bytes.len().div_ceil(CHUNK_BYTES).max(1) as u32,
    };
    let mut out: Vec<(String, Vec<u8>)> = bytes
        .chunks(CHUNK_BYTES)
        .enumerate()
        .map(|(i, c)| (manifest.chunk_key(name, i as u32), c.to_vec()))
        .collect();
    if out.is_empty() {
        out.push((manifest.chunk_key(name, 0), Vec::new()));
    }
    out.push((name.to_owned(), serde_json::to_vec(&manifest).unwrap_or_default()));
    out
}

/// Joins the chunks read for `manifest`, checking their count and total size.
pub fn assemble(name: &str, manifest: &Manifest, chunks: Vec<Vec<u8>>) -> Result<Vec<u8>, String> {
    if chunks.len() != manifest.chunks as usize {
        return Err(format!("{name}: {} of {} chunks", chunks.len(), manifest.chunks));
    }
    let total: usize = chunks.iter().map(Vec::len).sum();
    if total as u64 != manifest.size {
        return Err(format!("{name}: chunks hold {total} bytes, the manifest says {}", manifest.size));
    }
    let mut out = Vec::with_capacity(total);
    for c in chunks {
        out.extend_from_slice(&c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip() {
        let bytes: Vec<u8> = (0..(CHUNK_BYTES * 2 + 5)).map(|i| (i % 251) as u8).collect();
        let entries = kv_entries("m.onnx", &bytes);
        assert_eq!(entries.len(), 4);
        let (last_key, manifest) = entries.last().expect("manifest");
        assert_eq!(last_key, "m.onnx");
        let manifest: Manifest = serde_json::from_slice(manifest).expect("json");
        assert_eq!(manifest.chunks, 3);
        let chunks: Vec<Vec<u8>> = (0..3).map(|i| entries.iter().find(|(k, _)| *k == manifest.chunk_key("m.onnx", i)).expect("chunk").1.clone()).collect();
        assert_eq!(assemble("m.onnx", &manifest, chunks.clone()).expect("joins"), bytes);
        assert!(assemble("m.onnx", &manifest, chunks[..2].to_vec()).is_err());
        let mut short = chunks;
        short[2].pop();
        assert!(assemble("m.onnx", &manifest, short).is_err());
    }

    #[test]
    fn empty_file_has_one_empty_chunk() {
        let entries = kv_entries("e", b"");
        assert_eq!(entries.len(), 2);
    }
}
