//! wasi-host: the native regional host of LLM-Gateway, built on wasmtime.
//!
//! `serve` runs a wasi:http component (the gateway's Spin build) with Spin's key-value and
//! variables interfaces, for machines without the Spin CLI and for the integration tests.
//! `classify` serves the tier-3 classifier: a guest wasm module that scores capability labels with
//! a GGUF model through wasi-nn (llama.cpp backend), behind signed requests from the edge.
//! `kv-put` writes a key into a store directory the way the running host reads it.

#[cfg(feature = "classifier")]
use wasi_host::{classifier, nn};
use wasi_host::{outbound, serve, spin_api};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "wasi-host", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a wasi:http component over HTTP/1.1.
    Serve {
        /// The component (.wasm), e.g. the gateway built for wasm32-wasip2.
        #[arg(long)]
        component: PathBuf,
        /// A directory that keeps the component's compiled code between runs, keyed by the
        /// component's SHA-256 and the engine's settings (the gateway's compiles in ~19 s on 2
        /// cores; a cached copy loads in well under one). Whoever can write this directory can
        /// run native code in the host: give it the host's own owner and permissions.
        #[arg(long, env = "WASI_HOST_COMPILE_CACHE", value_name = "DIR")]
        compile_cache: Option<PathBuf>,
        /// Address to listen on; port 0 picks a free one (printed on stderr).
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
        /// A key-value store: LABEL=DIRECTORY (Spin's `default` store is the usual label).
        #[arg(long = "kv", value_name = "LABEL=DIR")]
        kv: Vec<String>,
        /// A Spin variable: NAME=VALUE. SPIN_VARIABLE_<NAME> environment variables also count.
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Requests handled at once; more wait.
        #[arg(long, default_value_t = 256)]
        max_concurrency: usize,
        /// Mount a host directory read-only: HOST_DIR::GUEST_PATH (Spin's component `files`).
        #[arg(long = "dir", value_name = "HOST::GUEST")]
        dirs: Vec<String>,
        /// Requests one instance serves one after another (1: a fresh instance per request, as
        /// Spin 3 does for wasi:http 0.2 components).
        #[arg(long, default_value_t = 1000)]
        instance_reuse: u32,
        /// Finished instances kept for reuse.
        #[arg(long, default_value_t = 4)]
        idle_instances: usize,
        /// Seconds a request may run in the guest, streaming included; past it the instance traps.
        #[arg(long, default_value_t = 300)]
        deadline_secs: u64,
        /// Linear memory one instance may use, in MiB; growing past it traps. (Workers allow 128 MB
        /// an isolate; the gateway with tier 2 loaded uses about 100 MiB.)
        #[arg(long, default_value_t = 256)]
        max_memory_mib: usize,
        /// A Spin manifest whose component's `allowed_outbound_hosts` the guest may call (as Spin
        /// enforces it); without it and without --allow-outbound, no outbound request is allowed.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The manifest's component, when it has several.
        #[arg(long)]
        component_id: Option<String>,
        /// An origin the guest may call besides the manifest's: scheme://host[:port], with `*`
        /// wildcards as in Spin (e.g. http://127.0.0.1:*).
        #[arg(long = "allow-outbound", value_name = "ORIGIN")]
        allow_outbound: Vec<String>,
    },
    /// Serve the tier-3 classifier (`POST /v1/classify`, signed by the edge).
    #[cfg(feature = "classifier")]
    Classify {
        #[command(flatten)]
        run: GuestModel,
        #[arg(long, default_value = "127.0.0.1:8788")]
        listen: SocketAddr,
        /// Environment variable holding the shared secret (at least 32 characters) the edge signs with.
        #[arg(long, default_value = "CLASSIFIER_SECRET")]
        secret_env: String,
        /// Classifications running at once (each uses --threads cores).
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Requests waiting beyond those; more get 429.
        #[arg(long, default_value_t = 16)]
        queue: usize,
        /// Running and waiting requests one edge caller (client key) may hold at once, so one key
        /// cannot fill the queue; 0: half of --concurrency + --queue.
        #[arg(long, default_value_t = 0)]
        caller_share: usize,
        /// Per-request deadline in milliseconds, queue wait included (504 after).
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
        /// Largest request body in bytes (413 beyond).
        #[arg(long, default_value_t = 65536)]
        max_body: usize,
        /// Score only the edge's top-K tier-2 candidates (0: all labels).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        /// Contextual calibration: subtract each label's score for a content-free request
        /// (measured: worse with SmolLM2-135M, see bench/RESULTS.md; try it with other models).
        #[arg(long)]
        calibrate: bool,
        /// How much tier 2's scores (the edge's hint) count when deciding by likelihood: each
        /// label's log-likelihood gets this times its tier-2 probability added (0: the model
        /// alone). The trained head uses its own weight.
        #[arg(long, default_value_t = classifier::DEFAULT_HINT_WEIGHT)]
        hint_weight: f32,
        /// Score by label likelihood even where the guest's trained head fits the model and the
        /// edge's labels (the head, when it fits, blends the hint with its own trained weight).
        #[arg(long)]
        no_head: bool,
        /// KV cache size in tokens (prompt plus every label).
        #[arg(long, default_value_t = 2048)]
        context_tokens: u32,
    },
    /// The classifier's features for training a head: for each JSONL row (`id`, `text`), the
    /// model's hidden state where the guest's prompt asks for the answer, and the label
    /// likelihoods, as JSONL (offline; see models/router/tier3_cv.py).
    #[cfg(feature = "classifier")]
    Features {
        #[command(flatten)]
        run: GuestModel,
        /// The labels as the edge sends them: a JSON array of {"name", "description"}.
        #[arg(long)]
        labels: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
    },
    /// Rewrite a GGUF model's weights as Q8_0 or Q4_0 (faster on CPUs than the registry's Q4_1).
    #[cfg(feature = "classifier")]
    Quantize {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// q8_0 (keeps Q4_1's values) or q4_0 (smaller, lossy).
        #[arg(long, default_value = "q8_0")]
        to: nn::Quant,
    },
    /// Write KEY in a store directory from a file (atomically, safe while the host runs).
    KvPut {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        key: String,
        #[arg(long)]
        file: PathBuf,
    },
}

/// The guest, the model and how they run: what `classify` and `features` share.
#[cfg(feature = "classifier")]
#[derive(clap::Args)]
struct GuestModel {
    /// The classifier guest (wasm32-wasip1), e.g. target/wasm32-wasip1/release/classifier.wasm.
    #[arg(long)]
    guest: PathBuf,
    /// The GGUF model (e.g. models/classifier/SmolLM2-135M-Instruct.Q4_1.gguf).
    #[arg(long)]
    model: PathBuf,
    /// The chat template the prompt is written in: auto (the family of the model's own
    /// template, read from the GGUF), chatml (SmolLM2, Qwen2.5), llama3 (Llama 3.x), mistral
    /// (Mistral 7B v0.3, Mixtral), mistral-v7 (Mistral Small 3), gemma, plain (none).
    #[arg(long, default_value = classifier::AUTO_TEMPLATE)]
    template: String,
    /// The request text is cut to this many characters (its beginning is kept). 400 (about 100
    /// tokens) bounds a classification to ~200 ms on 2 cores and lost no accuracy on the dev
    /// set against 1200 (bench/RESULTS.md).
    #[arg(long, default_value_t = classifier::DEFAULT_MAX_TEXT_CHARS)]
    max_text_chars: usize,
    /// CPU threads per classification (default: all cores).
    #[arg(long)]
    threads: Option<i32>,
    /// Model layers on the GPU (builds with --features cuda).
    #[arg(long, default_value_t = 0)]
    gpu_layers: u32,
}

#[cfg(feature = "classifier")]
impl GuestModel {
    fn model_options(&self) -> nn::ModelOptions {
        let mut o = nn::ModelOptions { gpu_layers: self.gpu_layers, ..Default::default() };
        if let Some(t) = self.threads {
            o.threads = t.max(1);
        }
        o
    }

    /// The guest's settings for this template and text length (the rest default).
    fn settings(&self) -> Result<classifier::GuestSettings> {
        let template = self.template.clone();
        if template != classifier::AUTO_TEMPLATE && classifier_guest::Template::from_name(&template).is_none() {
            bail!("--template: auto or a template name (see --help), got {template:?}");
        }
        Ok(classifier::GuestSettings { template, max_text_chars: self.max_text_chars.max(1), ..Default::default() })
    }
}

fn pairs(items: &[String], what: &str) -> Result<HashMap<String, String>> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => bail!("--{what} expects NAME=VALUE, got {s:?}"),
        })
        .collect()
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            component,
            compile_cache,
            listen,
            kv,
            vars,
            max_concurrency,
            dirs,
            instance_reuse,
            idle_instances,
            deadline_secs,
            max_memory_mib,
            manifest,
            component_id,
            allow_outbound,
        } => {
            let mut outbound = match &manifest {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                    outbound::AllowedHosts::from_manifest(&text, component_id.as_deref())
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                }
                None => outbound::AllowedHosts::default(),
            };
            outbound.extend(outbound::AllowedHosts::parse(&allow_outbound).map_err(|e| anyhow::anyhow!("--allow-outbound: {e}"))?);
            let dirs = dirs
                .iter()
                .map(|d| match d.split_once("::") {
                    Some((host, guest)) if !host.is_empty() && guest.starts_with('/') => Ok((PathBuf::from(host), guest.to_owned())),
                    _ => bail!("--dir expects HOST_DIR::/GUEST_PATH, got {d:?}"),
                })
                .collect::<Result<Vec<_>>>()?;
            let kv_dirs = pairs(&kv, "kv")?.into_iter().map(|(k, v)| (k, PathBuf::from(v))).collect();
            let variables = pairs(&vars, "var")?;
            let spin = spin_api::SpinConfig { kv_dirs, variables, ..Default::default() }.with_env_variables();
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(serve::run(serve::ServeOptions {
                component,
                compile_cache,
                listen,
                spin,
                max_concurrency: max_concurrency.max(1),
                dirs,
                instance_reuse,
                idle_instances,
                deadline: std::time::Duration::from_secs(deadline_secs.max(1)),
                max_memory_bytes: max_memory_mib.saturating_mul(1024 * 1024),
                outbound,
            }))
        }
        #[cfg(feature = "classifier")]
        Command::Classify {
            run,
            listen,
            secret_env,
            concurrency,
            queue,
            caller_share,
            timeout_ms,
            max_body,
            top_k,
            calibrate,
            hint_weight,
            no_head,
            context_tokens,
        } => {
            let secret = std::env::var(&secret_env).with_context(|| format!("the shared secret: set {secret_env}"))?;
            let secret = gateway_signing::Secret::new(&secret).map_err(|e| anyhow::anyhow!("{secret_env}: {e}"))?;
            let model_options = nn::ModelOptions { context_tokens, ..run.model_options() };
            if !(hint_weight.is_finite() && hint_weight >= 0.0) {
                bail!("--hint-weight: a number >= 0, got {hint_weight}");
            }
            let settings = classifier::GuestSettings { top_k, calibrate, hint_weight, head: !no_head, ..run.settings()? };
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(classifier::run(classifier::ClassifyOptions {
                listen,
                guest: run.guest,
                model: run.model,
                model_options,
                settings,
                secret,
                concurrency,
                queue,
                caller_share,
                timeout: std::time::Duration::from_millis(timeout_ms.max(1)),
                max_body,
            }))
        }
        #[cfg(feature = "classifier")]
        Command::Features { run, labels, input, output } => {
            let text = std::fs::read_to_string(&labels).with_context(|| format!("reading {}", labels.display()))?;
            let labels: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: a JSON array of labels", labels.display()))?;
            let (settings, model_options) = (run.settings()?, run.model_options());
            classifier::features(classifier::FeaturesOptions { guest: run.guest, model: run.model, model_options, settings, labels, input, output })
        }
        #[cfg(feature = "classifier")]
        Command::Quantize { input, output, to } => {
            // Written beside the output and renamed, so an interrupted run leaves no half file.
            let partial = output.with_extension("partial");
            if let Err(e) = nn::quantize(&input, &partial, to, nn::ModelOptions::default().threads) {
                let _ = std::fs::remove_file(&partial);
                bail!("quantising {} to {}: {e}", input.display(), output.display());
            }
            std::fs::rename(&partial, &output).with_context(|| format!("renaming {} to {}", partial.display(), output.display()))
        }
        Command::KvPut { dir, key, file } => {
            let value = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            spin_api::write_key(&dir, &key, &value).with_context(|| format!("writing {key} in {}", dir.display()))
        }
    }
}
