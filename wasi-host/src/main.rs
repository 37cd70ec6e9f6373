//! wasi-host: the native regional host of LLM-Gateway, built on wasmtime.
//!
//! `serve` runs a wasi:http component (the gateway's Spin build) with Spin's key-value and
//! variables interfaces, for machines without the Spin CLI and for the integration tests.
//! `kv-put` writes a key into a store directory the way the running host reads it.

mod serve;
mod spin_api;

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
        Command::Serve { component, listen, kv, vars, max_concurrency, dirs, instance_reuse, idle_instances } => {
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
                listen,
                spin,
                max_concurrency: max_concurrency.max(1),
                dirs,
                instance_reuse,
                idle_instances,
            }))
        }
        Command::KvPut { dir, key, file } => {
            let value = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            spin_api::write_key(&dir, &key, &value).with_context(|| format!("writing {key} in {}", dir.display()))
        }
    }
}
