//! `secrets:`: the hosts each secret may be sent to. A provider key or the classifier secret goes
//! only to a host its binding names, and a config read from KV may use only the bindings the
//! deployment allows (the bundled config's, plus `GATEWAY_SECRET_HOSTS` set as a platform
//! secret): whoever can write the KV config cannot send `secret:OPENAI_API_KEY` elsewhere.

use std::collections::BTreeMap;

use super::raw::RawConfig;
use super::{is_secret_name, ClassifierTierConfig, Model, Problem, Problems};

/// Secret name -> the hosts (`host` or `host:port`, lowercase) it may be sent to.
pub type SecretHosts = BTreeMap<String, Vec<String>>;

/// The platform secret holding extra bindings as JSON (`{"NAME": ["host", ...]}`): set by whoever
/// deploys (wrangler secret, Spin variable), never by the KV config.
pub const DEPLOYMENT_BINDINGS: &str = "GATEWAY_SECRET_HOSTS";

/// The URL's host, lowercase, and its explicit port, if any.
pub fn url_host(url: &str) -> Option<(String, Option<u16>)> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (format!("[{h}]"), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Whether `url`'s host is one of `hosts` (an entry with a port matches that port only).
fn allowed(hosts: &[String], url: &str) -> bool {
    let Some((host, port)) = url_host(url) else { return false };
    hosts.iter().any(|h| match h.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok() && !h.ends_with(']')) {
        Some((hh, pp)) => *hh == host && port.map(|p| p.to_string()).as_deref() == Some(pp),
        None => *h == host,
    })
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '[' | ']'))
        && url_host(&format!("https://{h}")).is_some_and(|(host, _)| !host.is_empty())
}

pub(super) fn validate_bindings(p: &mut Problems, raw: &RawConfig) -> SecretHosts {
    let mut out = SecretHosts::new();
    for (name, hosts) in &raw.secrets {
        let at = format!("secrets.{name}");
        if !is_secret_name(name) {
            p.push(&at, "the name of a secret: letters, digits and underscores");
        }
        if hosts.is_empty() {
            p.push(&at, "list the hosts this secret may be sent to");
        }
        for (i, h) in hosts.iter().enumerate() {
            if !valid_host(h) {
                p.push(format!("{at}[{i}]"), format!("\"{h}\" is not a host or host:port (no scheme, path or wildcard)"));
            }
        }
        out.insert(name.clone(), hosts.iter().map(|h| h.to_ascii_lowercase()).collect());
    }
    out
}

/// Every secret a model or the classifier uses must be bound to that URL's host.
pub(super) fn check_uses(p: &mut Problems, bindings: &SecretHosts, models: &BTreeMap<String, std::sync::Arc<Model>>, classifier: Option<&ClassifierTierConfig>) {
    let mut check = |at: String, secret: &str, url: &str| match bindings.get(secret) {
        // An invalid name is reported where it is written, and never echoed: it may be a value.
        _ if !is_secret_name(secret) => {}
        None => p.push(at, format!("secret {secret} is not bound to any host: add `secrets: {{{secret}: [<host>]}}`")),
        Some(hosts) if !allowed(hosts, url) => {
            let host = url_host(url).map(|(h, port)| port.map_or(h.clone(), |p| format!("{h}:{p}"))).unwrap_or_default();
            p.push(at, format!("secret {secret} may not be sent to {host} (secrets.{secret} allows: {})", hosts.join(", ")));
        }
        Some(_) => {}
    };
    for (name, m) in models {
        if let Some(secret) = &m.api_key {
            check(format!("models.{name}.api_key"), &secret.0, &m.base_url);
        }
    }
    if let Some(c) = classifier {
        check("router.classifier.secret".into(), &c.secret, &c.url);
    }
}

/// The deployment's bindings: the bundled config's and those in the `GATEWAY_SECRET_HOSTS`
/// platform secret. A problem reading the latter is returned, and its bindings are left out.
pub fn deployment_bindings(bundled: Option<&SecretHosts>, platform_json: Option<&str>) -> (SecretHosts, Option<String>) {
    let mut out = bundled.cloned().unwrap_or_default();
    let Some(text) = platform_json.filter(|t| !t.trim().is_empty()) else { return (out, None) };
    match serde_json::from_str::<BTreeMap<String, Vec<String>>>(text) {
        Ok(extra) => {
            for (name, hosts) in extra {
                let entry = out.entry(name).or_default();
                for h in hosts {
                    let h = h.to_ascii_lowercase();
                    if valid_host(&h) && !entry.contains(&h) {
                        entry.push(h);
                    }
                }
            }
            (out, None)
        }
        Err(e) => (out, Some(format!("{DEPLOYMENT_BINDINGS} is not a JSON object of host lists: {e}"))),
    }
}

/// The bindings of `config` that the deployment does not allow: a KV config may narrow them,
/// never widen them.
pub fn widenings(config: &SecretHosts, deployment: &SecretHosts) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, hosts) in config {
        let allowed = deployment.get(name);
        for h in hosts {
            if !allowed.is_some_and(|a| a.contains(h)) {
                problems.push(Problem {
                    path: format!("secrets.{name}"),
                    message: format!("{h} is not allowed for {name} by this deployment (the bundled config or {DEPLOYMENT_BINDINGS})"),
                });
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_and_ports_when_given() {
        let hosts = vec!["api.openai.com".to_owned(), "127.0.0.1:8788".to_owned(), "[::1]".to_owned()];
        assert!(allowed(&hosts, "https://api.openai.com/v1"));
        assert!(allowed(&hosts, "https://API.OpenAI.com:443/v1"));
        assert!(!allowed(&hosts, "https://api.openai.com.evil.example/v1"));
        assert!(!allowed(&hosts, "https://evil.example/api.openai.com"));
        assert!(!allowed(&hosts, "https://api.openai.com@evil.example/v1"));
        assert!(allowed(&hosts, "http://127.0.0.1:8788"));
        assert!(!allowed(&hosts, "http://127.0.0.1:8789"));
        assert!(!allowed(&hosts, "http://127.0.0.1"));
        assert!(allowed(&hosts, "http://[::1]:9/v1"));
    }

    #[test]
    fn a_kv_config_may_narrow_the_deployments_bindings_never_widen_them() {
        let bundled: SecretHosts = [("OPENAI_API_KEY".to_owned(), vec!["api.openai.com".to_owned()])].into();
        let (deployment, err) = deployment_bindings(Some(&bundled), Some(r#"{"OPENAI_API_KEY": ["gw-proxy.internal"], "LOCAL_KEY": ["10.0.0.5:8000"]}"#));
        assert_eq!(err, None);
        let kv: SecretHosts = [("OPENAI_API_KEY".to_owned(), vec!["gw-proxy.internal".to_owned()])].into();
        assert!(widenings(&kv, &deployment).is_empty());
        let kv: SecretHosts = [("OPENAI_API_KEY".to_owned(), vec!["api.openai.com".to_owned(), "collector.evil.example".to_owned()])].into();
        let w = widenings(&kv, &deployment);
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("collector.evil.example"), "{w:?}");
        let kv: SecretHosts = [("ANOTHER".to_owned(), vec!["api.openai.com".to_owned()])].into();
        assert_eq!(widenings(&kv, &deployment).len(), 1, "a secret the deployment does not bind");
        let (d, err) = deployment_bindings(Some(&bundled), Some("not json"));
        assert!(err.is_some_and(|e| e.contains("GATEWAY_SECRET_HOSTS")));
        assert_eq!(d, bundled, "a bad platform value adds nothing");
    }
}
