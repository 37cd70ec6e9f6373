//! Spin's `fermyon:spin/key-value@2.0.0` and `fermyon:spin/variables@2.0.0`, implemented for
//! components served by `wasi-host serve`, so the gateway's Spin build runs unchanged here and
//! under `spin up`.
//!
//! Key-value stores are directories, one file per key (the key hex-encoded), written atomically
//! by rename: another process (a test, an operator) may change a key while the host runs, and
//! each `get` sees the newest complete value. Variables come from `--var name=value` and the
//! `SPIN_VARIABLE_<NAME>` environment variables, as with Spin's environment provider.

use std::collections::HashMap;
use std::path::PathBuf;
use wasmtime::component::Resource;

use crate::serve::RequestState;

wasmtime::component::bindgen!({
    path: "wit",
    world: "spin-host",
    with: {
        "fermyon:spin/key-value.store": KvStore,
        "wasi:keyvalue/store.bucket": KvStore,
        "wasi:keyvalue/atomics.cas": Cas,
    },
});

pub use fermyon::spin::{key_value, variables};
use wasi::keyvalue::{atomics, store as wkv};

/// A compare-and-swap handle: the value read when it was made.
pub struct Cas {
    dir: PathBuf,
    key: String,
    current: Option<Vec<u8>>,
}

/// An open store: the label names one configured directory.
pub struct KvStore {
    dir: PathBuf,
}

/// Host-wide Spin state shared by every request's store.
#[derive(Debug, Default)]
pub struct SpinConfig {
    pub kv_dirs: HashMap<String, PathBuf>,
    pub variables: HashMap<String, String>,
    /// Serialises compare-and-swap and increment across all requests of this process.
    pub atomic: std::sync::Mutex<()>,
}

impl SpinConfig {
    /// Adds `SPIN_VARIABLE_*` from the environment (explicit `--var`s win).
    pub fn with_env_variables(mut self) -> Self {
        for (k, v) in std::env::vars() {
            if let Some(name) = k.strip_prefix("SPIN_VARIABLE_") {
                self.variables.entry(name.to_ascii_lowercase()).or_insert(v);
            }
        }
        self
    }
}

fn other(e: impl std::fmt::Display) -> key_value::Error {
    key_value::Error::Other(e.to_string())
}

fn key_path(store: &KvStore, key: &str) -> PathBuf {
    store.dir.join(hex(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Writes `value` to `key` in `dir` atomically (temp file, then rename).
pub fn write_key(dir: &std::path::Path, key: &str, value: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(hex(key.as_bytes()));
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), hex(key.as_bytes())));
    std::fs::write(&tmp, value)?;
    std::fs::rename(tmp, path)
}

impl key_value::HostStore for RequestState {
    fn open(&mut self, label: String) -> Result<Resource<KvStore>, key_value::Error> {
        let Some(dir) = self.spin.kv_dirs.get(&label).cloned() else {
            return Err(key_value::Error::NoSuchStore);
        };
        std::fs::create_dir_all(&dir).map_err(other)?;
        self.table.push(KvStore { dir }).map_err(other)
    }

    fn get(&mut self, store: Resource<KvStore>, key: String) -> Result<Option<Vec<u8>>, key_value::Error> {
        let s = self.table.get(&store).map_err(other)?;
        read_key(&s.dir, &key).map_err(other)
    }

    fn set(&mut self, store: Resource<KvStore>, key: String, value: Vec<u8>) -> Result<(), key_value::Error> {
        let s = self.table.get(&store).map_err(other)?;
        write_key(&s.dir, &key, &value).map_err(other)
    }

    fn delete(&mut self, store: Resource<KvStore>, key: String) -> Result<(), key_value::Error> {
        let s = self.table.get(&store).map_err(other)?;
        remove_key(&s.dir, &key).map_err(other)
    }

    fn exists(&mut self, store: Resource<KvStore>, key: String) -> Result<bool, key_value::Error> {
        let s = self.table.get(&store).map_err(other)?;
        Ok(key_path(s, &key).exists())
    }

    fn get_keys(&mut self, store: Resource<KvStore>) -> Result<Vec<String>, key_value::Error> {
        let s = self.table.get(&store).map_err(other)?;
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(&s.dir).map_err(other)? {
            let name = entry.map_err(other)?.file_name();
            if let Some(k) = name.to_str().filter(|n| !n.starts_with('.')).and_then(unhex) {
                keys.push(k);
            }
        }
        Ok(keys)
    }

    fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl key_value::Host for RequestState {}

fn wother(e: impl std::fmt::Display) -> wkv::Error {
    wkv::Error::Other(e.to_string())
}

/// The value of `key` in `dir`, `None` when absent. Shared by both key-value APIs.
fn read_key(dir: &std::path::Path, key: &str) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(dir.join(hex(key.as_bytes()))) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `key` from `dir`; absent is fine.
fn remove_key(dir: &std::path::Path, key: &str) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(hex(key.as_bytes()))) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `wasi:keyvalue/store`: the same directories as Spin's key-value stores (Spin 3 also maps
/// both APIs onto the same stores).
impl wkv::Host for RequestState {
    fn open(&mut self, identifier: String) -> Result<Resource<KvStore>, wkv::Error> {
        let Some(dir) = self.spin.kv_dirs.get(&identifier).cloned() else {
            return Err(wkv::Error::NoSuchStore);
        };
        std::fs::create_dir_all(&dir).map_err(wother)?;
        self.table.push(KvStore { dir }).map_err(wother)
    }
}

impl wkv::HostBucket for RequestState {
    fn get(&mut self, b: Resource<KvStore>, key: String) -> Result<Option<Vec<u8>>, wkv::Error> {
        let s = self.table.get(&b).map_err(wother)?;
        read_key(&s.dir, &key).map_err(wother)
    }

    fn set(&mut self, b: Resource<KvStore>, key: String, value: Vec<u8>) -> Result<(), wkv::Error> {
        let s = self.table.get(&b).map_err(wother)?;
        write_key(&s.dir, &key, &value).map_err(wother)
    }

    fn delete(&mut self, b: Resource<KvStore>, key: String) -> Result<(), wkv::Error> {
        let s = self.table.get(&b).map_err(wother)?;
        remove_key(&s.dir, &key).map_err(wother)
    }

    fn exists(&mut self, b: Resource<KvStore>, key: String) -> Result<bool, wkv::Error> {
        let s = self.table.get(&b).map_err(wother)?;
        Ok(key_path(s, &key).exists())
    }

    fn list_keys(&mut self, b: Resource<KvStore>, _cursor: Option<String>) -> Result<wkv::KeyResponse, wkv::Error> {
        let keys = key_value::HostStore::get_keys(self, Resource::new_borrow(b.rep())).map_err(|e| wother(format!("{e:?}")))?;
        Ok(wkv::KeyResponse { keys, cursor: None })
    }

    fn drop(&mut self, b: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

/// `wasi:keyvalue/atomics`: increment and compare-and-swap, atomic across every request this
/// process serves (one lock). Another process writing the same directory is not covered.
impl atomics::Host for RequestState {
    fn increment(&mut self, b: Resource<KvStore>, key: String, delta: i64) -> Result<i64, wkv::Error> {
        let dir = self.table.get(&b).map_err(wother)?.dir.clone();
        let _guard = self.spin.atomic.lock().map_err(wother)?;
        let current = match read_key(&dir, &key).map_err(wother)? {
            None => 0,
            Some(v) => std::str::from_utf8(&v).ok().and_then(|s| s.trim().parse::<i64>().ok()).ok_or_else(|| wother("value is not an integer"))?,
        };
        let next = current.checked_add(delta).ok_or_else(|| wother("overflow"))?;
        write_key(&dir, &key, next.to_string().as_bytes()).map_err(wother)?;
        Ok(next)
    }

    fn swap(&mut self, cas: Resource<Cas>, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let c = self.table.delete(cas).map_err(|e| atomics::CasError::StoreError(wother(e)))?;
        let _guard = self.spin.atomic.lock().map_err(|e| atomics::CasError::StoreError(wother(e)))?;
        let now = read_key(&c.dir, &c.key).map_err(|e| atomics::CasError::StoreError(wother(e)))?;
        if now != c.current {
            let again = self.table.push(Cas { current: now, ..c }).map_err(|e| atomics::CasError::StoreError(wother(e)))?;
            return Err(atomics::CasError::CasFailed(again));
        }
        write_key(&c.dir, &c.key, &value).map_err(|e| atomics::CasError::StoreError(wother(e)))
    }
}

impl atomics::HostCas for RequestState {
    fn new(&mut self, b: Resource<KvStore>, key: String) -> Result<Resource<Cas>, wkv::Error> {
        let dir = self.table.get(&b).map_err(wother)?.dir.clone();
        let current = read_key(&dir, &key).map_err(wother)?;
        self.table.push(Cas { dir, key, current }).map_err(wother)
    }

    fn current(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>, wkv::Error> {
        Ok(self.table.get(&cas).map_err(wother)?.current.clone())
    }

    fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl variables::Host for RequestState {
    fn get(&mut self, name: String) -> Result<String, variables::Error> {
        let valid = !name.is_empty()
            && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(variables::Error::InvalidName(name));
        }
        self.spin.variables.get(&name).cloned().ok_or(variables::Error::Undefined(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(&hex("config.last-good".as_bytes())).as_deref(), Some("config.last-good"));
        assert_eq!(unhex("zz"), None);
    }
}
