//! `models:`: providers, URLs (TLS unless loopback), key references, prices, attempt policy.

use super::raw::{RawDefaults, RawModel};
use super::{check_name, is_secret_name, positive, AttemptPolicy, Locality, Model, ModelKind, Price, Problems, ProviderKind, SecretRef};

pub(super) fn validate_model(
    p: &mut Problems,
    name: &str,
    m: &RawModel,
    d: &RawDefaults,
    caps: &[&String],
) -> Option<Model> {
    let at = |field: &str| format!("models.{name}.{field}");
    check_name(p, &format!("models.{name}"), name);
    let provider = ProviderKind::parse(&m.provider);
    if provider.is_none() {
        p.push(at("provider"), format!("unknown provider \"{}\" (known: {})", m.provider, ProviderKind::NAMES.join(", ")));
    }
    let base_url = m.base_url.trim_end_matches('/').to_owned();
    let scheme_ok = base_url.starts_with("https://") || base_url.starts_with("http://");
    if !scheme_ok || base_url.parse::<http::Uri>().is_err() || base_url.contains(char::is_whitespace) {
        p.push(at("base_url"), format!("\"{}\" is not an http(s) URL", m.base_url));
    }
    let api_key = m.api_key.as_deref().and_then(|v| secret_ref(p, &at("api_key"), v));
    let kind = match m.kind.as_deref() {
        None | Some("chat") => ModelKind::Chat,
        Some("embedding") => ModelKind::Embedding,
        Some(other) => {
            p.push(at("kind"), format!("unknown kind \"{other}\" (known: chat, embedding)"));
            ModelKind::Chat
        }
    };
    if kind == ModelKind::Embedding {
        if provider == Some(ProviderKind::Anthropic) {
            p.push(at("kind"), "Anthropic has no embeddings API: an embedding model needs an OpenAI-compatible provider");
        }
        if !m.capabilities.is_empty() {
            p.push(at("capabilities"), "an embedding model serves /v1/embeddings, not the router's capabilities");
        }
    }
    for (i, c) in m.capabilities.iter().enumerate() {
        if !caps.contains(&c) {
            p.unknown(at(&format!("capabilities[{i}]")), "capability", c, caps);
        }
    }
    let price = match &m.price {
        None => Price::default(),
        Some(pr) => Price {
            input_micros_per_mtok: micros(p, &at("price.input_per_mtok"), pr.input_per_mtok),
            output_micros_per_mtok: micros(p, &at("price.output_per_mtok"), pr.output_per_mtok),
        },
    };
    let locality = match m.locality.as_deref() {
        None | Some("cloud") => Locality::Cloud,
        Some("local") => Locality::Local,
        Some(other) => {
            p.push(at("locality"), format!("unknown locality \"{other}\" (known: local, cloud)"));
            Locality::Cloud
        }
    };
    // Prompts to a cloud provider, and any provider key, travel only over TLS (plain http only
    // to a loopback address: a local server on this machine, or the tests' mock).
    if scheme_ok && base_url.starts_with("http://") && !is_loopback_url(&base_url) {
        if locality == Locality::Cloud {
            p.push(at("base_url"), "a cloud model must use https (plain http only to a loopback address; a server on your network is `locality: local`)");
        } else if api_key.is_some() {
            p.push(at("base_url"), "a provider key is sent only over https (plain http only to a loopback address)");
        }
    }
    if m.context_window == Some(0) {
        p.push(at("context_window"), "must be greater than 0");
    }
    let attempt = AttemptPolicy {
        timeout_ms: m.timeout_ms.or(d.timeout_ms).unwrap_or(30_000),
        stream_idle_timeout_ms: m.stream_idle_timeout_ms.or(d.stream_idle_timeout_ms).unwrap_or(60_000),
        retries: m.retries.or(d.retries).unwrap_or(1),
        backoff_ms: d.backoff_ms.unwrap_or(250),
        max_retry_after_ms: d.max_retry_after_ms.unwrap_or(5_000),
    };
    positive(p, &at("timeout_ms"), attempt.timeout_ms);
    positive(p, &at("stream_idle_timeout_ms"), attempt.stream_idle_timeout_ms);
    if attempt.retries > 10 {
        p.push(at("retries"), "at most 10 retries per model");
    }
    let max_output_tokens = m.max_output_tokens.or(d.max_output_tokens).unwrap_or(4096);
    for (field, v) in [("rpm", m.rpm), ("tpm", m.tpm)] {
        if v == Some(0) {
            p.push(at(field), "must be greater than 0");
        }
    }
    Some(Model {
        name: name.to_owned(),
        provider: provider?,
        kind,
        base_url,
        upstream_model: m.upstream_model.clone().unwrap_or_else(|| name.to_owned()),
        api_key,
        capabilities: m.capabilities.clone(),
        price,
        context_window: m.context_window,
        locality,
        attempt,
        max_output_tokens,
        rpm: m.rpm,
        tpm: m.tpm,
    })
}

/// `secret:NAME` to a reference; anything else is refused without echoing the value.
fn secret_ref(p: &mut Problems, path: &str, v: &str) -> Option<SecretRef> {
    match v.strip_prefix("secret:") {
        Some(n) if is_secret_name(n) => Some(SecretRef(n.to_owned())),
        Some(n) => {
            p.push(path, format!("\"{n}\" is not a valid secret name (letters, digits and _, not starting with a digit)"));
            None
        }
        None => {
            // Never echo the value: it may be a real key pasted by mistake.
            p.push(path, "provider keys must be referenced as secret:NAME and set as a platform secret, never written in the YAML");
            None
        }
    }
}

fn micros(p: &mut Problems, path: &str, usd: f64) -> u64 {
    if !(0.0..1e6).contains(&usd) {
        p.push(path, "must be a price in USD per million tokens, 0 or more");
        return 0;
    }
    (usd * 1_000_000.0).round() as u64
}

/// `http://127.x.y.z[:port]`, `http://[::1][:port]` or `http://localhost[:port]`, with an
/// optional path.
pub(super) fn is_loopback_url(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, port)) if port.is_empty() || port.starts_with(':') => h,
            _ => return false,
        }
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.eq_ignore_ascii_case("localhost") || host == "::1" {
        return true;
    }
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4 && octets[0] == "127" && octets.iter().all(|o| o.parse::<u8>().is_ok())
}

