//! `allowed_outbound_hosts`, enforced as Spin does: the component may send HTTP requests only to
//! the origins its manifest lists; any other request fails in the guest with
//! `HTTP-request-denied` before a connection is made. An empty list allows nothing.
//!
//! Entries are `scheme://host[:port]`: scheme `http`, `https` or `*`; host a name, `*` or
//! `*.domain` (any subdomain of `domain`, not `domain` itself); port a number or `*`, and when
//! omitted the scheme's default (80 for http, 443 for https; `*://` needs a port).
//! `wasi-host serve --manifest spin.toml` reads the list of the manifest's component;
//! `--allow-outbound` adds entries.

use std::future::Future;
use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    Exact(String),
    /// `*.example.com`: the stored suffix is `.example.com`.
    Subdomain(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    /// None: any scheme.
    scheme: Option<String>,
    host: Host,
    /// None: any port.
    port: Option<u16>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl std::str::FromStr for Origin {
    type Err = String;

    fn from_str(entry: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("allowed_outbound_hosts entry {entry:?}: {why}");
        let (scheme, rest) = entry.split_once("://").ok_or_else(|| bad("expected scheme://host[:port]"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "*" => None,
            s @ ("http" | "https") => Some(s.to_owned()),
            _ => return Err(bad("the scheme must be http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad("only an origin: no path, query or user"));
        }
        // An IPv6 literal is bracketed: its colons are not a port separator.
        let port_sep = if rest.ends_with(']') { None } else { rest.rsplit_once(':') };
        let (host, port) = match port_sep {
            Some((h, "*")) => (h, None),
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad("the port must be a number or *"))?)),
            None => match scheme.as_deref().and_then(default_port) {
                Some(p) => (rest, Some(p)),
                None => return Err(bad("`*://` needs a port")),
            },
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let host = match host.as_str() {
            "" => return Err(bad("no host")),
            "*" => Host::Any,
            h => match h.strip_prefix("*.") {
                Some(domain) if !domain.is_empty() && !domain.contains('*') => Host::Subdomain(format!(".{domain}")),
                _ if h.contains('*') => return Err(bad("a wildcard host is `*` or `*.domain`")),
                _ => Host::Exact(h.to_owned()),
            },
        };
        Ok(Self { scheme, host, port })
    }
}

/// The origins a component may call.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Vec<Origin>);

impl AllowedHosts {
    pub fn parse<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Result<Self, String> {
        entries.into_iter().map(|e| e.as_ref().trim().parse()).collect::<Result<_, _>>().map(Self)
    }

    /// The `allowed_outbound_hosts` of a Spin manifest's component: the only one, or `component`.
    pub fn from_manifest(text: &str, component: Option<&str>) -> Result<Self, String> {
        let doc: toml::Table = text.parse().map_err(|e| format!("the manifest is not TOML: {e}"))?;
        let components = doc.get("component").and_then(toml::Value::as_table).ok_or("the manifest has no [component.*]")?;
        let (id, table) = match component {
            Some(id) => (id, components.get(id).ok_or_else(|| format!("the manifest has no [component.{id}]"))?),
            None if components.len() == 1 => components.iter().next().map(|(k, v)| (k.as_str(), v)).ok_or("no component")?,
            None => return Err(format!("the manifest has {} components: name one", components.len())),
        };
        match table.get("allowed_outbound_hosts") {
            None => Ok(Self::default()),
            Some(toml::Value::Array(list)) => Self::parse(
                list.iter()
                    .map(|v| v.as_str().ok_or_else(|| format!("[component.{id}] allowed_outbound_hosts: entries are strings")))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => Err(format!("[component.{id}] allowed_outbound_hosts must be a list")),
        }
    }

    pub fn extend(&mut self, other: Self) {
        self.0.extend(other.0);
    }

    pub fn allows(&self, uri: &hyper::Uri) -> bool {
        let Some(scheme) = uri.scheme_str().map(str::to_ascii_lowercase) else { return false };
        let Some(host) = uri.host().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()) else {
            return false;
        };
        let Some(port) = uri.port_u16().or_else(|| default_port(&scheme)) else { return false };
        self.0.iter().any(|o| {
            o.scheme.as_ref().is_none_or(|s| *s == scheme)
                && o.port.is_none_or(|p| p == port)
                && match &o.host {
                    Host::Any => true,
                    Host::Exact(h) => *h == host,
                    Host::Subdomain(suffix) => host.ends_with(suffix.as_str()),
                }
        })
    }
}

type Sent = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// wasi:http hooks that send only to allowed origins.
pub struct Hooks(pub Arc<AllowedHosts>);

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Sent,
    ) -> Box<dyn Future<Output = Result<(hyper::Response<WasiBody>, Sent), Error>> + Send> {
        if !self.0.allows(request.uri()) {
            // The guest writes its body before it awaits the response: read that body to its end
            // (and drop it) before answering, so the guest sees the denial itself rather than a
            // closed body stream that hides it ("StreamError::Closed").
            let mut body = request.into_body();
            return Box::new(async move {
                use http_body_util::BodyExt;
                while let Some(Ok(_)) = body.frame().await {}
                Err(Error::HttpRequestDenied)
            });
        }
        // What the default hook does.
        drop(fut);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as Sent))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn allows(list: &[&str], url: &str) -> bool {
        AllowedHosts::parse(list).unwrap().allows(&url.parse().unwrap())
    }

    #[test]
    fn origins_match_as_spin_matches_them() {
        let list = ["https://api.openai.com", "http://127.0.0.1:*", "https://*.example.org", "*://mixed.test:8080", "http://[::1]"];
        for url in [
            "https://api.openai.com/v1/chat/completions",
            "https://API.OpenAI.com:443/v1",
            "http://127.0.0.1:9999/mock",
            "https://eu.example.org/x",
            "http://mixed.test:8080/",
            "https://mixed.test:8080/",
            "http://[::1]/x",
        ] {
            assert!(allows(&list, url), "{url} should be allowed");
        }
        for url in [
            "http://api.openai.com/v1",          // scheme
            "https://api.openai.com:8443/v1",    // port
            "https://api.openai.com.evil.test/", // suffix trick
            "https://evil.test/?https://api.openai.com",
            "http://localhost:9999/",     // 127.0.0.1 is not localhost
            "https://example.org/",       // *.example.org is subdomains only
            "https://mixed.test/",        // port 443 is not 8080
            "http://[::1]:8080/",         // http://[::1] is port 80
            "/relative",
        ] {
            assert!(!allows(&list, url), "{url} should be denied");
        }
        assert!(!allows(&[], "https://api.openai.com/"), "an empty list allows nothing");
    }

    #[test]
    fn bad_entries_are_refused_with_the_entry_named() {
        for bad in ["api.openai.com", "ftp://x.test", "*://x.test", "https://x.test/path", "https://x.test:port", "https://a*b.test", "https://"] {
            let err = AllowedHosts::parse([bad]).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn the_manifest_list_is_read_from_its_component() {
        let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spin.toml")).unwrap();
        let hosts = AllowedHosts::from_manifest(&manifest, None).unwrap();
        assert!(hosts.allows(&"https://api.openai.com/v1/chat/completions".parse().unwrap()));
        assert!(!hosts.allows(&"https://attacker.test/".parse().unwrap()));
        let two = "[component.a]\nallowed_outbound_hosts = [\"https://a.test\"]\n[component.b]\n";
        assert!(AllowedHosts::from_manifest(two, None).unwrap_err().contains("2 components"));
        assert!(AllowedHosts::from_manifest(two, Some("a")).unwrap().allows(&"https://a.test/".parse().unwrap()));
        assert!(!AllowedHosts::from_manifest(two, Some("b")).unwrap().allows(&"https://a.test/".parse().unwrap()));
    }
}
