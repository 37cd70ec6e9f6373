//! Starting the real runtimes: `wrangler dev` (workerd) with the Workers build, or
//! `wasi-host serve` with the Spin component, on a free port, with captured logs and a way to
//! write the key-value store the gateway reads its config from.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// The deployment's extra secret bindings (`GATEWAY_SECRET_HOSTS`): the test config in KV sends
/// the secrets to the mock on 127.0.0.1, which the bundled config alone does not allow.
pub const SECRET_HOSTS: &str = r#"{"OPENAI_API_KEY":["127.0.0.1"],"ANTHROPIC_API_KEY":["127.0.0.1"],"MISSING_KEY":["127.0.0.1"],"CLASSIFIER_SECRET":["127.0.0.1"]}"#;

/// Fake provider keys the runtimes get as secrets; tests check they never leak.
pub const OPENAI_KEY: &str = "sk-test-openai-5ecret-0123456789";
pub const ANTHROPIC_KEY: &str = "sk-ant-test-5ecret-9876543210";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Workers,
    Spin,
}

pub struct Runtime {
    pub kind: Kind,
    pub base: String,
    pub logs: Arc<Mutex<String>>,
    dir: PathBuf,
    _child: Child,
}

fn env_path(name: &str) -> Result<PathBuf> {
    let v = std::env::var(name).with_context(|| {
        format!("{name} is not set: run the tests with ./scripts/test, which builds the wasm targets and sets it")
    })?;
    let p = PathBuf::from(v);
    if !p.exists() {
        bail!("{name}={} does not exist: build it first (./scripts/test does)", p.display());
    }
    Ok(p)
}

/// The embedding tier's files (models/fetch, then `gateway intents build` in scripts/build).
pub fn models_dir() -> Result<PathBuf> {
    let dir = std::env::var_os("GATEWAY_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| crate::repo_root().join("models/minilm"));
    for f in MODEL_FILES {
        if !dir.join(f).exists() {
            bail!("{} is missing: run models/fetch and scripts/build (./scripts/test does both)", dir.join(f).display());
        }
    }
    Ok(dir)
}

/// What the tests seed: the bundled default's model (int8), its tokenizer and the vectors.
pub const MODEL_FILES: [&str; 3] = ["model-int8.onnx", "tokenizer.json", "intents.bin"];

/// Writes the model files into the local `MODELS` KV namespace the way a deploy does
/// (`gateway models kv-export`, then `wrangler kv key put` per key): chunked, manifests last.
async fn seed_workers_models(dir: &Path, node: &Path, wrangler: &Path) -> Result<()> {
    let models = models_dir()?;
    let (mut chunks, mut manifests) = (Vec::new(), Vec::new());
    for f in MODEL_FILES {
        let bytes = std::fs::read(models.join(f))?;
        for (key, value) in llm_gateway::models::kv_entries(f, &bytes) {
            if key == f { manifests.push((key, value)) } else { chunks.push((key, value)) }
        }
    }
    let staging = dir.join("models-kv");
    std::fs::create_dir_all(&staging)?;
    for (key, value) in chunks.into_iter().chain(manifests) {
        let file = staging.join(&key);
        std::fs::write(&file, &value)?;
        let out = Command::new(node)
            .arg(wrangler)
            .args(["kv", "key", "put", &key, "--binding", "MODELS", "--local", "--path"])
            .arg(&file)
            .arg("--persist-to")
            .arg(dir.join("state"))
            .arg("-c")
            .arg(dir.join("wrangler.toml"))
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .current_dir(dir)
            .output()
            .await?;
        if !out.status.success() {
            bail!("seeding MODELS/{key} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) fn capture(stream: impl AsyncRead + Unpin + Send + 'static, logs: Arc<Mutex<String>>, port_tx: Option<tokio::sync::mpsc::Sender<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let (Some(tx), Some(addr)) = (&port_tx, line.split("listening on http://").nth(1)) {
                let _ = tx.send(addr.trim().to_owned()).await;
            }
            if let Ok(mut l) = logs.lock() {
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
}

impl Runtime {
    pub async fn start(kind: Kind) -> Result<Runtime> {
        Self::start_with(kind, &[]).await
    }

    /// `host_args` go to `wasi-host serve` (ignored for Workers).
    pub async fn start_with(kind: Kind, host_args: &[&str]) -> Result<Runtime> {
        let dir = std::env::temp_dir().join(format!("gateway-e2e-{kind:?}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let (child, base) = match kind {
            Kind::Workers => {
                let main = env_path("GATEWAY_WORKER_JS")?;
                let node = env_path("GATEWAY_NODE")?;
                let wrangler = env_path("GATEWAY_WRANGLER")?;
                std::fs::write(
                    dir.join("wrangler.toml"),
                    format!(
                        "name = \"gateway-e2e\"\nmain = \"{}\"\ncompatibility_date = \"2026-04-01\"\n\n[[kv_namespaces]]\nbinding = \"GATEWAY_KV\"\nid = \"e2e\"\n\n[[kv_namespaces]]\nbinding = \"MODELS\"\nid = \"e2e-models\"\n\n[[durable_objects.bindings]]\nname = \"LEDGER\"\nclass_name = \"LedgerObject\"\n\n[[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [\"LedgerObject\"]\n",
                        main.display()
                    ),
                )?;
                std::fs::write(dir.join(".dev.vars"), format!("OPENAI_API_KEY={OPENAI_KEY}\nANTHROPIC_API_KEY={ANTHROPIC_KEY}\nCLASSIFIER_SECRET={}\nGATEWAY_SECRET_HOSTS='{SECRET_HOSTS}'\n", crate::classifier::SECRET))?;
                seed_workers_models(&dir, &node, &wrangler).await?;
                let port = free_port()?;
                let mut child = Command::new(&node)
                    .arg(&wrangler)
                    .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string(), "--log-level", "log"])
                    .arg("-c")
                    .arg(dir.join("wrangler.toml"))
                    .arg("--persist-to")
                    .arg(dir.join("state"))
                    .env("WRANGLER_SEND_METRICS", "false")
                    .env("CI", "true")
                    .env("NO_COLOR", "1")
                    .current_dir(&dir)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    // wrangler starts workerd as a child: its own process group lets Drop stop both.
                    .process_group(0)
                    .kill_on_drop(true)
                    .spawn()
                    .context("starting wrangler dev")?;
                capture(child.stdout.take().context("stdout")?, logs.clone(), None);
                capture(child.stderr.take().context("stderr")?, logs.clone(), None);
                (child, format!("http://127.0.0.1:{port}"))
            }
            Kind::Spin => {
                let host = env_path("WASI_HOST_BIN")?;
                let wasm = env_path("GATEWAY_SPIN_WASM")?;
                let mut child = Command::new(&host)
                    .args(["serve", "--listen", "127.0.0.1:0"])
                    .arg("--component")
                    .arg(&wasm)
                    .arg(format!("--kv=default={}", dir.join("kv").display()))
                    // spin.toml: files = [{ source = "models/minilm", destination = "/models" }]
                    .arg(format!("--dir={}::/models", models_dir()?.display()))
                    .arg(format!("--var=openai_api_key={OPENAI_KEY}"))
                    .arg(format!("--var=anthropic_api_key={ANTHROPIC_KEY}"))
                    .arg(format!("--var=classifier_secret={}", crate::classifier::SECRET))
                    .arg(format!("--var=gateway_secret_hosts={SECRET_HOSTS}"))
                    // Outbound HTTP only to spin.toml's allowed_outbound_hosts, as under Spin
                    // (the mock providers listen on 127.0.0.1).
                    .arg(concat!("--manifest=", env!("CARGO_MANIFEST_DIR"), "/../spin.toml"))
                    .args(host_args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0)
                    .kill_on_drop(true)
                    .spawn()
                    .context("starting wasi-host serve")?;
                capture(child.stdout.take().context("stdout")?, logs.clone(), None);
                capture(child.stderr.take().context("stderr")?, logs.clone(), Some(tx));
                let addr = tokio::time::timeout(Duration::from_secs(120), rx.recv())
                    .await
                    .ok()
                    .flatten()
                    .with_context(|| format!("wasi-host did not start; its log:\n{}", logs.lock().map(|l| l.clone()).unwrap_or_default()))?;
                (child, format!("http://{addr}"))
            }
        };
        let rt = Runtime { kind, base, logs, dir, _child: child };
        rt.wait_healthy().await?;
        Ok(rt)
    }

    async fn wait_healthy(&self) -> Result<()> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(90) {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).timeout(Duration::from_secs(5)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!("{:?} runtime did not become healthy; its log:\n{}", self.kind, self.log_text())
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Writes `key` in the store the gateway reads (`GATEWAY_KV` / Spin's `default`).
    pub async fn kv_put(&self, key: &str, value: &[u8]) -> Result<()> {
        let file = self.dir.join(format!("kv-value-{key}"));
        std::fs::write(&file, value)?;
        let status = match self.kind {
            Kind::Workers => {
                Command::new(env_path("GATEWAY_NODE")?)
                    .arg(env_path("GATEWAY_WRANGLER")?)
                    .args(["kv", "key", "put", key, "--binding", "GATEWAY_KV", "--local", "--path"])
                    .arg(&file)
                    .arg("--persist-to")
                    .arg(self.dir.join("state"))
                    .arg("-c")
                    .arg(self.dir.join("wrangler.toml"))
                    .env("WRANGLER_SEND_METRICS", "false")
                    .env("CI", "true")
                    .current_dir(&self.dir)
                    .output()
                    .await?
            }
            Kind::Spin => {
                Command::new(env_path("WASI_HOST_BIN")?)
                    .args(["kv-put", "--key", key])
                    .arg("--dir")
                    .arg(self.dir.join("kv"))
                    .arg("--file")
                    .arg(&file)
                    .output()
                    .await?
            }
        };
        if !status.status.success() {
            bail!("kv put {key} failed: {}", String::from_utf8_lossy(&status.stderr));
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Stop the whole process group (wrangler and its workerd), politely first.
        if let Some(pid) = self._child.id() {
            let group = format!("-{pid}");
            let _ = std::process::Command::new("kill").args(["-TERM", "--", &group]).status();
            std::thread::sleep(Duration::from_millis(500));
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
