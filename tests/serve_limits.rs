//! `wasi-host serve` bounds each instance: past its memory cap the request gets an
//! OpenAI-shaped 500 and the host logs why, instead of the instance growing without bound or
//! the connection being dropped.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn an_instance_past_its_memory_cap_fails_with_a_clear_500() {
    let host = std::env::var("WASI_HOST_BIN").expect("WASI_HOST_BIN (scripts/env.sh)");
    let component = std::env::var("GATEWAY_SPIN_WASM").expect("GATEWAY_SPIN_WASM (scripts/env.sh)");
    // The component's own initial memory is more than 1 MiB: every instance must fail.
    let mut child = Reaped(
        Command::new(host)
            .args(["serve", "--component", &component, "--listen", "127.0.0.1:0", "--max-memory-mib", "1"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts"),
    );
    let stderr = child.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let base = loop {
        let line = rx.recv_timeout(Duration::from_secs(120)).expect("wasi-host prints its address");
        if let Some(addr) = line.strip_prefix("wasi-host: listening on ") {
            break addr.to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no address");
    };
    let r = reqwest::get(format!("{base}/healthz")).await.expect("an answer, not a dropped connection");
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.expect("json");
    drop(child);
    assert_eq!(status, 500);
    assert_eq!(body["error"]["code"], "instance_failed", "{body}");
    let log: Vec<String> = rx.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("request failed")), "{log:?}");
}

/// The host process, killed and waited for however the test ends (a failed assertion included).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
