//! Real client libraries against the gateway: each suite runs a pytest file from
//! `tests/clients/` with the interpreter of the venv `scripts/setup` installs from
//! `tests/clients/requirements.txt` (`GATEWAY_CLIENTS_PYTHON`). The client is pointed at the
//! runtime under test with the test keys it needs; what it checks is in the Python file.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use tokio::process::Command;

use crate::scenarios::{test_key, Ctx};

async fn pytest(c: &Ctx, file: &str) -> Result<()> {
    let python = std::env::var("GATEWAY_CLIENTS_PYTHON")
        .context("GATEWAY_CLIENTS_PYTHON is not set: run the tests with ./scripts/test (scripts/setup installs the client libraries)")?;
    let path = crate::repo_root().join("tests/clients").join(file);
    let run = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header", "-rfEs"])
        .arg(&path)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("GATEWAY_BASE_URL", &c.rt.base)
        .env("GATEWAY_KEY_MAIN", test_key("main"))
        .env("GATEWAY_KEY_RESTRICTED", test_key("restricted"))
        .env("GATEWAY_KEY_RPM1", test_key("sdkrpm1"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .with_context(|| format!("{file} did not finish in 180 s"))?
        .with_context(|| format!("running {python} (scripts/setup makes it)"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("{file} failed ({}):\n{text}", out.status);
    }
    // pytest's summary line, e.g. "15 passed in 3.1s", and why any test skipped itself, into
    // the suite's output.
    eprintln!("{file}: {}", text.lines().rev().find(|l| l.contains("passed")).unwrap_or("").trim());
    for skipped in text.lines().filter(|l| l.starts_with("SKIPPED")) {
        eprintln!("  {skipped}");
    }
    Ok(())
}

pub async fn openai_python_sdk(c: &Ctx) -> Result<()> {
    pytest(c, "test_openai_sdk.py").await
}

pub async fn langchain_standard_tests(c: &Ctx) -> Result<()> {
    pytest(c, "test_langchain_standard.py").await
}

pub async fn anthropic_python_sdk(c: &Ctx) -> Result<()> {
    pytest(c, "test_anthropic_sdk.py").await
}
