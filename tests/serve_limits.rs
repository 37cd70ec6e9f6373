//! `wasi-host serve` bounds each instance: past its memory cap the request gets an
//! OpenAI-shaped 500 and the host logs why, instead of the instance growing without bound or
//! the connection being dropped. And it stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn an_instance_past_its_memory_cap_fails_with_a_clear_500() {
    // The component's own initial memory is more than 1 MiB: every instance must fail.
    let (child, base, rx) = start(&["--max-memory-mib", "1"]);
    let r = reqwest::get(format!("{base}/healthz")).await.expect("an answer, not a dropped connection");
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.expect("json");
    drop(child);
    assert_eq!(status, 500);
    assert_eq!(body["error"]["code"], "instance_failed", "{body}");
    let log: Vec<String> = rx.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("request failed")), "{log:?}");
}

/// SIGTERM ends the accept loop (shared with `wasi-host classify`): the host says so, drains and
/// exits 0, and the port is closed.
#[tokio::test]
async fn sigterm_shuts_the_host_down_cleanly() {
    let (mut child, base, rx) = start(&[]);
    let r = reqwest::get(format!("{base}/healthz")).await.expect("serves before the signal");
    assert!(r.status().is_success() || r.status().as_u16() == 503, "{}", r.status());
    let killed = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "still running 15 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let log: Vec<String> = rx.recv_timeout(Duration::from_secs(5)).into_iter().chain(rx.try_iter()).collect();
    assert!(log.iter().any(|l| l.contains("shutting down")), "{log:?}");
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err(), "the port still answers");
}

/// `wasi-host serve` on the Spin component with `extra` arguments, on a free port: the process,
/// its base URL and its stderr lines after the address.
fn start(extra: &[&str]) -> (Reaped, String, std::sync::mpsc::Receiver<String>) {
    let host = std::env::var("WASI_HOST_BIN").expect("WASI_HOST_BIN (scripts/env.sh)");
    let component = std::env::var("GATEWAY_SPIN_WASM").expect("GATEWAY_SPIN_WASM (scripts/env.sh)");
    let mut child = Reaped(
        Command::new(host)
            .args(["serve", "--component", &component, "--listen", "127.0.0.1:0"])
            .args(extra)
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
    (child, base, rx)
}

/// The host process, killed and waited for however the test ends (a failed assertion included).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
