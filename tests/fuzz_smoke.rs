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
//! `FUZZ_SMOKE_SEED` the random seed (printed on failure, so a run can be repeated). An input
//! that runs longer than `FUZZ_SMOKE_INPUT_SECS` (default 10: a hang, or a path far slower than
//! the parsers' bounds allow) is saved like a panicking one and ends the test process.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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

/// Writes a failing input where `cargo fuzz run` can take it.
fn save(target: &str, input: &[u8]) -> (PathBuf, std::io::Result<()>) {
    let dir = fuzz_dir().join("artifacts").join(target);
    let hash: u64 = input.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let file = dir.join(format!("smoke-{hash:016x}"));
    let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, input));
    (file, saved)
}

/// The input a target is running and since when (ms after `epoch`; 0: none), for the watchdog.
struct Running {
    epoch: Instant,
    since_ms: AtomicU64,
    input: Mutex<(Vec<u8>, String)>,
}

/// Watches one target's inputs from another thread: one that runs past `limit` is saved and the
/// process ends (a hang cannot be unwound), after saying which input and where it is.
fn watchdog(target: &'static str, limit: Duration) -> Arc<Running> {
    let running = Arc::new(Running { epoch: Instant::now(), since_ms: AtomicU64::new(0), input: Mutex::new((Vec::new(), String::new())) });
    let watched = Arc::clone(&running);
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        if Arc::strong_count(&watched) == 1 {
            return;
        }
        let since = watched.since_ms.load(Ordering::SeqCst);
        let now = watched.epoch.elapsed().as_millis() as u64;
        if since != 0 && now.saturating_sub(since) > limit.as_millis() as u64 {
            let (input, what) = watched.input.lock().map(|g| g.clone()).unwrap_or_default();
            let (file, saved) = save(target, &input);
            eprintln!("{target}: {what} ran longer than {} s; input of {} bytes saved to {} ({saved:?})", limit.as_secs(), input.len(), file.display());
            std::process::exit(101);
        }
    });
    running
}

/// Runs `f` on `input`; a panic saves the input and fails the test with where it is.
fn check(target: &str, f: fn(&[u8]), input: &[u8], what: &str, running: &Running) {
    if let Ok(mut g) = running.input.lock() {
        g.0.clear();
        g.0.extend_from_slice(input);
        g.1.clear();
        g.1.push_str(what);
    }
    running.since_ms.store((running.epoch.elapsed().as_millis() as u64).max(1), Ordering::SeqCst);
    let ok = catch_unwind(AssertUnwindSafe(|| f(input))).is_ok();
    running.since_ms.store(0, Ordering::SeqCst);
    if ok {
        return;
    }
    let (file, saved) = save(target, input);
    panic!("{target}: {what} panicked (above); input of {} bytes saved to {} ({saved:?})", input.len(), file.display());
}

fn smoke(target: &'static str) {
    let f = targets::TARGETS.iter().find(|(name, _)| *name == target).map(|(_, f)| *f).unwrap_or_else(|| panic!("no target {target}"));
    let corpus = inputs(target);
    assert!(corpus.len() >= 10, "{target}: only {} corpus inputs: is fuzz/corpus.tar.gz whole?", corpus.len());
    let running = watchdog(target, Duration::from_secs(env_number("FUZZ_SMOKE_INPUT_SECS", 10)));
    for (i, input) in corpus.iter().enumerate() {
        check(target, f, input, &format!("corpus input {i}"), &running);
    }
    let seed = env_number("FUZZ_SMOKE_SEED", 0x5eed_1e55_u64 ^ target.len() as u64);
    let budget = Duration::from_secs(env_number("FUZZ_SMOKE_SECS", 4));
    let mut rng = Rng(seed.max(1));
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < budget {
        let pick = rng.below(corpus.len());
        let input = mutate(&mut rng, &corpus[pick], &corpus);
        check(target, f, &input, &format!("mutation {runs} (FUZZ_SMOKE_SEED={seed})"), &running);
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
fn embeddings_request() {
    smoke("embeddings_request");
}

#[test]
fn keyword_tier() {
    smoke("keyword_tier");
}

#[test]
fn messages_request() {
    smoke("messages_request");
}

#[test]
fn messages_stream() {
    smoke("messages_stream");
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
    let running = watchdog("selftest", Duration::from_secs(60));
    let result = catch_unwind(AssertUnwindSafe(|| check("selftest", broken, b"boom", "the planted input", &running)));
    let _ = std::fs::remove_dir_all(fuzz_dir().join("artifacts").join("selftest"));
    assert!(result.is_err());
}

/// An input that hangs: what `a_hanging_input_ends_the_run` runs in a child process.
#[test]
#[ignore = "run by a_hanging_input_ends_the_run in a child process"]
fn hang_probe() {
    fn hangs(_: &[u8]) {
        std::thread::sleep(Duration::from_secs(30));
    }
    let running = watchdog("selftest-hang", Duration::from_secs(env_number("FUZZ_SMOKE_INPUT_SECS", 10)));
    check("selftest-hang", hangs, b"slow", "the planted input", &running);
}

/// A hang fails the run with the input saved, instead of stalling CI.
#[test]
fn a_hanging_input_ends_the_run() {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let started = Instant::now();
    let out = std::process::Command::new(exe)
        .args(["--exact", "hang_probe", "--ignored", "--nocapture"])
        .env("FUZZ_SMOKE_INPUT_SECS", "1")
        .output()
        .unwrap_or_else(|e| panic!("running the probe: {e}"));
    let _ = std::fs::remove_dir_all(fuzz_dir().join("artifacts").join("selftest-hang"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    assert!(stderr.contains("the planted input ran longer than 1 s"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "the watchdog let the hang run {:?}", started.elapsed());
}
