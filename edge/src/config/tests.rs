//! Config validation: the bundled file is valid, and every invalid fixture in
//! `edge/tests/ui/config/*.yaml` produces exactly the message in the `.err` beside it.
//! `BLESS=1 cargo test -p llm-gateway` rewrites the `.err` files after a deliberate change.

use std::path::PathBuf;

use super::*;

#[test]
fn bundled_config_is_valid() {
    let c = Config::bundled().unwrap_or_else(|e| panic!("bundled config invalid:\n{e}"));
    assert!(c.models.contains_key("local-llama"));
    assert_eq!(c.router.default_route, "general");
    assert!(c.router.keyword.rule_count() >= 8);
    assert_eq!(c.models["gpt-4o-mini"].price.input_micros_per_mtok, 150_000);
    assert_eq!(c.models["gpt-4o-mini"].api_key, Some(SecretRef("OPENAI_API_KEY".into())));
    assert_eq!(c.models["local-llama"].locality, Locality::Local);
}

#[test]
fn invalid_configs_match_their_golden_errors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ui/config");
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir).expect("fixture dir").flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
        seen += 1;
        let text = std::fs::read_to_string(&path).expect("read fixture");
        let err = match Config::from_yaml(&text) {
            Ok(_) => panic!("{} should be invalid", path.display()),
            Err(e) => format!("{e}\n"),
        };
        let golden = path.with_extension("err");
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(&golden, &err).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| panic!("missing {}", golden.display()));
        assert_eq!(err, want, "{}", path.display());
    }
    assert!(seen >= 6, "fixtures not found in {}", dir.display());
}

#[test]
fn literal_key_is_refused_without_echoing_it() {
    let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ui/config/literal-api-key.yaml"))
        .expect("fixture");
    let err = Config::from_yaml(&text).expect_err("invalid").to_string();
    assert!(!err.contains("sk-proj"), "{err}");
}

#[test]
fn cloud_models_and_provider_keys_need_tls() {
    let yaml = |model: &str| {
        format!(
            "models:\n  m: {model}\ncapabilities:\n  general: {{ route: general }}\nroutes:\n  general: {{ models: [m] }}\nrouter: {{ default_route: general }}\nkeys:\n  k: {{ hash: \"sha256:0000000000000000000000000000000000000000000000000000000000000001\" }}\nsecrets:\n  K: [api.example.net, \"127.0.0.1:8000\"]\n  VLLM_KEY: [\"10.0.0.7:8000\"]\n"
        )
    };
    let err = |model: &str| Config::from_yaml(&yaml(model)).err().map(|e| e.to_string()).unwrap_or_default();
    let e = err(r#"{ provider: openai, base_url: "http://api.example.net/v1", capabilities: [general] }"#);
    assert!(e.contains("a cloud model must use https"), "{e}");
    assert!(err(r#"{ provider: openai, base_url: "http://10.0.0.7:8000/v1", locality: local, api_key: "secret:VLLM_KEY", capabilities: [general] }"#).contains("a provider key is sent only over https"));
    for ok in [
        r#"{ provider: openai, base_url: "https://api.example.net/v1", api_key: "secret:K", capabilities: [general] }"#,
        r#"{ provider: openai, base_url: "http://10.0.0.7:8000/v1", locality: local, capabilities: [general] }"#,
        r#"{ provider: openai, base_url: "http://127.0.0.1:8000/v1", api_key: "secret:K", capabilities: [general] }"#,
    ] {
        assert_eq!(err(ok), "", "{ok}");
    }
}

#[test]
fn a_secret_goes_only_to_the_hosts_it_is_bound_to() {
    let yaml = |model: &str, secrets: &str| {
        format!(
            "models:\n  m: {model}\ncapabilities:\n  general: {{ route: general }}\nroutes:\n  general: {{ models: [m] }}\nrouter: {{ default_route: general }}\nauth: {{ kv_keys: true }}\n{secrets}"
        )
    };
    let err = |model: &str, secrets: &str| Config::from_yaml(&yaml(model, secrets)).err().map(|e| e.to_string()).unwrap_or_default();
    let model = r#"{ provider: openai, base_url: "https://collector.evil.example/v1", api_key: "secret:OPENAI_API_KEY" }"#;
    let e = err(model, "");
    assert!(e.contains("models.m.api_key: secret OPENAI_API_KEY is not bound to any host"), "{e}");
    let e = err(model, "secrets:\n  OPENAI_API_KEY: [api.openai.com]\n");
    assert!(e.contains("may not be sent to collector.evil.example (secrets.OPENAI_API_KEY allows: api.openai.com)"), "{e}");
    let ok = r#"{ provider: openai, base_url: "https://api.openai.com/v1", api_key: "secret:OPENAI_API_KEY" }"#;
    assert_eq!(err(ok, "secrets:\n  OPENAI_API_KEY: [api.openai.com]\n"), "");
    let e = err(ok, "secrets:\n  OPENAI_API_KEY: [\"https://api.openai.com/v1\"]\n");
    assert!(e.contains("is not a host or host:port"), "{e}");
    let e = err(ok, "secrets:\n  OPENAI_API_KEY: []\n");
    assert!(e.contains("list the hosts"), "{e}");
}
