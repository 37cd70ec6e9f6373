//! `gateway`: the native command-line tool.
//!
//! - `gateway keys create --name NAME`: makes a new client key from the OS's random source and
//!   prints it once, with the hash line for the YAML's `keys:` and the KV record for
//!   `auth.kv_keys`. The key itself is stored nowhere.
//! - `gateway config check FILE`: validates a config file and prints every problem.
//! - `gateway intents build [--config FILE]... [--models DIR]`: precomputes the embedding
//!   tier's example vectors for every given config (`intents.bin`, shipped beside the model).
//! - `gateway models kv-export --out DIR [--models DIR] [NAME...]`: the model files as Workers
//!   KV values (chunked, `edge/src/models.rs`), one file per key in DIR; prints the keys in
//!   upload order (manifests last) for `wrangler kv key put --binding MODELS KEY --path DIR/KEY`.
//! - `gateway eval --data FILE [--config FILE] [--models DIR] [--out PRED.jsonl] [--sweep]`:
//!   routes a labelled set through the gateway's cascade and prints accuracy, per-class F1,
//!   the confusion matrix, sensitive recall and false positives, share / accuracy / latency per
//!   tier, the routed mix's cost against the most capable model, the trained head's
//!   cross-validated figures (models/router/head.json), and with `--plot` an SVG of accuracy
//!   against the share decided at the edge as `min_confidence` moves.
//!   With `--classifier URL` the rows tiers 1-2 leave unresolved go to that classifier host
//!   (`wasi-host classify`, signed with $CLASSIFIER_SECRET) and both cascades are reported.

#[cfg(feature = "embedding")]
mod report;
#[cfg(feature = "embedding")]
mod routing;

use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use llm_gateway::auth;
use llm_gateway::Config;

const USAGE: &str = "usage:\n  gateway keys create --name NAME [--json]\n  gateway config check FILE\n  \
    gateway intents build [--config FILE] [--models DIR] [--out FILE]\n  \
    gateway models kv-export --out DIR [--models DIR] [NAME...]\n  \
    gateway eval --data FILE [--config FILE] [--models DIR] [--out PRED.jsonl] [--sweep] [--plot FILE.svg] [--classifier URL]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<ExitCode> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["keys", "create", rest @ ..] => {
            let (mut name, mut json) = (None, false);
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match *a {
                    "--name" => name = it.next().copied(),
                    "--json" => json = true,
                    other => bail!("unknown argument {other}\n{USAGE}"),
                }
            }
            let name = name.context(USAGE)?;
            let valid = !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid {
                bail!("key names may use letters, digits and - _ . (at most 128)");
            }
            let mut random = [0u8; 32];
            getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("OS random source: {e}"))?;
            let (key, hash) = auth::new_key(random);
            let kv_name = format!("apikey:{}", hash.trim_start_matches("sha256:"));
            let record = serde_json::json!({"name": name});
            let out = if json {
                serde_json::json!({"key": key, "name": name, "hash": hash, "kv_key": kv_name, "kv_value": record}).to_string()
            } else {
                format!(
                    "key (shown once; give it to the caller): {key}\n\n\
                     either in the YAML, under keys:\n  {name}: {{ hash: \"{hash}\" }}\n\n\
                     or in KV (auth.kv_keys: true):\n  wrangler kv key put --binding GATEWAY_KV '{kv_name}' '{record}'\n"
                )
            };
            std::io::Write::write_all(&mut std::io::stdout(), format!("{out}\n").as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        ["config", "check", file] => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
            match Config::from_yaml(&text) {
                Ok(c) => {
                    eprintln!("{file}: ok ({} models, {} routes, {} keys, digest {})", c.models.len(), c.routes.len(), c.keys.len(), c.digest);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{file}:\n{e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        ["models", "kv-export", rest @ ..] => {
            let (mut out, mut dir, mut names) = (None, None, Vec::new());
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match *a {
                    "--out" => out = it.next().copied(),
                    "--models" => dir = it.next().copied(),
                    name => names.push(name),
                }
            }
            let out = std::path::PathBuf::from(out.context(USAGE)?);
            let dir = dir.map(std::path::PathBuf::from).unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/minilm"));
            if names.is_empty() {
                names = vec!["model-int8.onnx", "tokenizer.json", "intents.bin"];
            }
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let (mut chunks, mut manifests) = (Vec::new(), Vec::new());
            for name in names {
                let bytes = std::fs::read(dir.join(name)).with_context(|| format!("reading {}", dir.join(name).display()))?;
                for (key, value) in llm_gateway::models::kv_entries(name, &bytes) {
                    std::fs::write(out.join(&key), &value).with_context(|| format!("writing {key}"))?;
                    // Manifests go last, so a reader never finds one before its chunks.
                    if key == name { manifests.push(key) } else { chunks.push(key) }
                }
            }
            chunks.extend(manifests);
            std::io::Write::write_all(&mut std::io::stdout(), (chunks.join("\n") + "\n").as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "embedding")]
        ["intents", "build", rest @ ..] => {
            routing::build(&routing_opts(rest)?)?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "embedding")]
        ["eval", rest @ ..] => {
            routing::eval(&routing_opts(rest)?)?;
            Ok(ExitCode::SUCCESS)
        }
        _ => bail!("{USAGE}"),
    }
}

#[cfg(feature = "embedding")]
fn routing_opts(args: &[&str]) -> Result<routing::Opts> {
    let mut o = routing::Opts {
        configs: Vec::new(),
        models: routing::default_models_dir(),
        data: None,
        out: None,
        sweep: false,
        plot: None,
        classifier: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().map(std::path::PathBuf::from).with_context(|| format!("{a} needs a value"));
        match *a {
            "--config" => o.configs.push(value()?),
            "--models" => o.models = value()?,
            "--data" => o.data = Some(value()?),
            "--out" => o.out = Some(value()?),
            "--sweep" => o.sweep = true,
            "--plot" => o.plot = Some(value()?),
            "--classifier" => o.classifier = Some(it.next().map(|s| s.trim_end_matches('/').to_owned()).context("--classifier needs a URL")?),
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if o.configs.is_empty() {
        o.configs.push(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.yaml"));
    }
    Ok(o)
}
