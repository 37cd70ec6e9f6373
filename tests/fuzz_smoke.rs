//! CI's fuzz smoke run (issue 12): every input of the committed corpus (`fuzz/corpus.tar.gz`)
//! through the function its libFuzzer target calls (`fuzz/src/lib.rs`), then a few seconds per
//! target of random mutations of those inputs (bit flips, byte edits, splices).
//!
//! It runs in the stable test build and is not coverage-guided: the long, guided runs are
//! cargo-fuzz's (fuzz/README.md). What it catches is a change that breaks on an input the fuzzer
//! once found interesting, or near one. A failing input is written to
//! `fuzz/artifacts/<target>/smoke-<hash>` (git-ignored), ready for `cargo fuzz run <target> <file>`.
//!
//! `FUZZ_SMOKE_SECS` sets the mutation time per target (default 4; 0 replays only) and
//! `FUZZ_SMOKE_SEED` the random seed (printed on failure, so a run can be repeated).

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The corpus, unpacked afresh once per test process into cargo's directory for test files.
fn corpus_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-corpus");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let archive = fuzz_dir().join("corpus.tar.gz");
        let status = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&dir)
            .status()
            .unwrap_or_else(|e| panic!("running tar: {e}"));
        assert!(status.success(), "tar -xzf {} failed: {status}", archive.display());
        dir.join("corpus")
    })
}

fn inputs(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_root().join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.map(|e| e.path()).unwrap_or_else(|e| panic!("{}: {e}", dir.display())))
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()))).collect()
}

/// xorshift64*: the mutations only need to be varied and repeatable from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Bytes the parsers treat specially, so mutations reach their branches sooner than with
/// uniform bytes.
const INTERESTING: &[u8] = b"\0\n\r\t \"\\{}[]:,-.@0123456789eE+/<>|#&*!%'`\xff\xc3\xa9";

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                out.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                out.drain(i..i + n);
            }
            4 if len > 0 => {
                // Repeat a slice: long runs find quadratic paths and length limits.
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = out[i..i + n].to_vec();
                for _ in 0..1 + rng.below(8) {
                    out.splice(i..i, chunk.iter().copied());
                }
            }
            5 if !corpus.is_empty() => {
                // Splice: this input's head with another's tail.
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(out.len() + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            _ if len > 0 => {
                let i = rng.below(len);
                out.truncate(i);
            }
            _ => out.push(INTERESTING[rng.below(INTERESTING.len())]),
        }
    }
    out
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}: a whole number, got {v:?}")),
        Err(_) => default,
    }
}

/// Runs `f` on `input`; a panic saves the input and fails the test with where it is.
fn check(target: &str, f: fn(&[u8]), input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_ok() {
        return;
    }
    let dir = fuzz_dir().join("artifacts").join(target);
    let hash: u64 = input.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let file = dir.join(format!("smoke-{hash:016x}"));
    let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, input));
    panic!("{target}: {what} panicked (above); input of {} bytes saved to {} ({saved:?})", input.len(), file.display());
}

fn smoke(target: &str) {
    let f = targets::TARGETS.iter().find(|(name, _)| *name == target).map(|(_, f)| *f).unwrap_or_else(|| panic!("no target {target}"));
    let corpus = inputs(target);
    assert!(corpus.len() >= 10, "{target}: only {} corpus inputs: is fuzz/corpus.tar.gz whole?", corpus.len());
    for (i, input) in corpus.iter().enumerate() {
        check(target, f, input, &format!("corpus input {i}"));
    }
    let seed = env_number("FUZZ_SMOKE_SEED", 0x5eed_1e55_u64 ^ target.len() as u64);
    let budget = Duration::from_secs(env_number("FUZZ_SMOKE_SECS", 4));
    let mut rng = Rng(seed.max(1));
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < budget {
        let pick = rng.below(corpus.len());
        let input = mutate(&mut rng, &corpus[pick], &corpus);
        check(target, f, &input, &format!("mutation {runs} (FUZZ_SMOKE_SEED={seed})"));
        runs += 1;
    }
    eprintln!("{target}: {} corpus inputs, {runs} mutations in {:.1} s", corpus.len(), start.elapsed().as_secs_f64());
}

#[test]
fn chat_request() {
    smoke("chat_request");
}

#[test]
fn classifier_request() {
    smoke("classifier_request");
}

#[test]
fn config_yaml() {
    smoke("config_yaml");
}

#[test]
fn keyword_tier() {
    smoke("keyword_tier");
}

#[test]
fn pii() {
    smoke("pii");
}

#[test]
fn provider_body() {
    smoke("provider_body");
}

#[test]
fn provider_stream() {
    smoke("provider_stream");
}

/// The smoke run would pass vacuously if a target could not fail: each must panic on an input
/// that breaks its property.
#[test]
fn a_failing_input_fails_the_smoke_run() {
    fn broken(data: &[u8]) {
        assert!(!data.starts_with(b"boom"), "found it");
    }
    let result = catch_unwind(|| check("selftest", broken, b"boom", "the planted input"));
    let _ = std::fs::remove_dir_all(fuzz_dir().join("artifacts").join("selftest"));
    assert!(result.is_err());
}
