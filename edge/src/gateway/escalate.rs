//! Tier 3 from the edge: asks the classifier host (`wasi-host classify`) which capability a
//! request needs, with a signed request and a deadline. Any failure (no secret, connection
//! refused, timeout, an error status, a bad response signature, an answer outside the label
//! set) comes back as `Err` with a reason that names no secret; the caller serves anyway.

use bytes::Bytes;
use gateway_signing::{Secret, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use serde_json::{json, Value};

use crate::config::ClassifierTierConfig;
use crate::platform::{Platform, UpstreamRequest};
use crate::proxy;
use crate::router::ClassifierAnswer;

/// The text sent is cut to this many bytes (the host cuts further; the body stays small).
const MAX_TEXT_BYTES: usize = 8 * 1024;
const MAX_ANSWER_BYTES: usize = 64 * 1024;
const PATH: &str = "/v1/classify";

/// The path the host sees: the URL's own path (if any) plus `/v1/classify`.
pub fn signed_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let base = rest.find('/').map_or("", |i| &rest[i..]);
    format!("{}{PATH}", base.trim_end_matches('/'))
}

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The id the classifier host shares its queue by (`wasi-host classify --caller-share`): one per
/// client key, opaque (the first 16 hex digits of a hash of the key's name), so the host learns
/// which requests come from the same key and nothing else about it.
pub fn caller_id(key_name: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new().chain_update(b"llm-gateway classifier caller\0").chain_update(key_name.as_bytes()).finalize();
    hex::encode(&digest[..8])
}

/// The body of `POST /v1/classify`: the caller's id, the text, every configured capability with
/// its description, and tier 2's scores as a hint.
pub fn request_body(cfg: &ClassifierTierConfig, caller: &str, text: &str, hint: &[(String, f64)]) -> Bytes {
    let body = json!({
        "caller": caller,
        "text": cut(text, MAX_TEXT_BYTES),
        "labels": cfg.labels.iter().map(|l| json!({"name": l.capability, "description": l.description})).collect::<Vec<_>>(),
        "hint": hint.iter().map(|(label, score)| json!({"label": label, "score": score})).collect::<Vec<_>>(),
    });
    Bytes::from(body.to_string())
}

pub async fn classify<P: Platform>(p: &P, cfg: &ClassifierTierConfig, caller: &str, text: &str, hint: &[(String, f64)]) -> Result<ClassifierAnswer, String> {
    let secret = p.secret(&cfg.secret).await.ok_or_else(|| format!("the secret {:?} is not set", cfg.secret))?;
    let secret = Secret::new(&secret).map_err(|e| format!("the secret {:?}: {e}", cfg.secret))?;
    let body = request_body(cfg, caller, text, hint);
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&p.random_u64().to_le_bytes());
    nonce[8..].copy_from_slice(&p.random_u64().to_le_bytes());
    let signed = gateway_signing::sign_request(&secret, "POST", &signed_path(&cfg.url), p.now_ms() / 1000, nonce, &body);
    let request = UpstreamRequest {
        url: format!("{}{PATH}", cfg.url),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            (TIMESTAMP_HEADER.into(), signed.timestamp),
            (NONCE_HEADER.into(), signed.nonce.clone()),
            (SIGNATURE_HEADER.into(), signed.signature),
        ],
        body,
    };
    let exchange = async {
        let resp = p.fetch(request).await.map_err(|e| format!("the classifier host is unreachable: {e}"))?;
        let status = resp.status;
        let signature = resp.header(SIGNATURE_HEADER).map(str::to_owned);
        let body = proxy::read_body(resp.body, MAX_ANSWER_BYTES).await.map_err(|e| format!("reading the classifier's answer: {e}"))?;
        Ok::<_, String>((status, signature, body))
    };
    let (status, signature, body) = proxy::timeout(p, cfg.timeout_ms, exchange)
        .await
        .ok_or_else(|| format!("the classifier host did not answer within {} ms", cfg.timeout_ms))??;
    let Some(signature) = signature else {
        return Err(format!("the classifier host answered {status} without a signature"));
    };
    gateway_signing::verify_response(&secret, &signed.nonce, status, &body, &signature)
        .map_err(|e| format!("the classifier's answer failed verification: {e}"))?;
    if status != 200 {
        let message = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
        return Err(format!("the classifier host answered {status}: {}", message.unwrap_or_default()));
    }
    parse_answer(cfg, &body)
}

/// The host's 200 answer, checked against the configured label set.
pub fn parse_answer(cfg: &ClassifierTierConfig, body: &[u8]) -> Result<ClassifierAnswer, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the classifier's answer is not JSON: {e}"))?;
    let label = v["label"].as_str().ok_or("the classifier's answer has no label")?.to_owned();
    if !cfg.labels.iter().any(|l| l.capability == label) {
        return Err(format!("the classifier answered {label:?}, which is not a configured capability"));
    }
    let probabilities: Vec<(String, f64)> = v["probabilities"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| Some((x["label"].as_str()?.to_owned(), x["probability"].as_f64()?))).collect())
        .unwrap_or_default();
    let probability = probabilities.iter().find(|(l, _)| *l == label).map_or(0.0, |(_, p)| *p);
    Ok(ClassifierAnswer { label, probability, probabilities, latency_ms: v["latency_ms"].as_f64().unwrap_or(0.0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_path_keeps_a_base_path() {
        assert_eq!(signed_path("http://127.0.0.1:8788"), "/v1/classify");
        assert_eq!(signed_path("https://h.example/tier3"), "/tier3/v1/classify");
        assert_eq!(signed_path("https://h.example/tier3/"), "/tier3/v1/classify");
    }

    /// The guest's head (wasi-host/guest/src/head.rs) decides only for the prompt it was trained
    /// on; the labels the bundled config sends must be those, or tier 3 falls back to likelihood.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_bundled_tier3_head_was_trained_on_the_labels_the_bundled_config_sends() {
        let config = crate::config::Config::from_yaml(include_str!("../../gateway.yaml")).unwrap();
        let cfg = config.router.classifier.as_ref().unwrap();
        let body: Value = serde_json::from_slice(&request_body(cfg, "key", "text", &[])).unwrap();
        let head: Value = serde_json::from_str(include_str!("../../../models/router/tier3-head.json")).unwrap();
        assert_eq!(body["labels"], head["labels"], "retrain the head (models/router/tier3_cv.py head) after changing capabilities or descriptions");
    }

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        assert_eq!(cut("ééé", 3), "é");
        assert_eq!(cut("abc", 10), "abc");
    }
}
