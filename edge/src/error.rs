//! The gateway's one error type, who is to blame for each case, and its rendering as
//! OpenAI-shaped JSON (`{"error":{"message","type","param","code"}}`).
//!
//! Client errors are the caller's fault and are never logged as faults. Upstream errors come
//! from providers and drive retries and fallback. Internal errors are logged with the request
//! id; their body says only "internal error" and that id.

use serde_json::json;

/// Who caused an error: decides the status class, logging and whether fallback helps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    Client,
    Upstream,
    Internal,
}

/// Why one upstream attempt failed. Drives retry (same model) and fallback (next model).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("no response within {0} ms")]
    Timeout(u64),
    #[error("rate limited (429)")]
    RateLimited { retry_after_ms: Option<u64> },
    #[error("server error ({status})")]
    Server { status: u16 },
    #[error("provider rejected the gateway's credentials ({status})")]
    Unauthorized { status: u16 },
    #[error("provider does not know the model ({status})")]
    ModelNotFound { status: u16 },
    #[error("secret {0} is not set")]
    MissingSecret(String),
    /// The gateway's own per-model limit (`models.*.rpm` / `tpm`).
    #[error("the gateway's rate limit for this model is reached")]
    ModelLimit { retry_after_ms: Option<u64> },
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("stream ended before its first event")]
    EmptyStream,
    #[error("stream failed before its first event: {0}")]
    StreamFailed(String),
    /// The request cannot be expressed for this provider (e.g. `n > 1` for Anthropic).
    #[error("{0}")]
    Unsupported(String),
}

impl AttemptError {
    /// Worth trying the same model again after a backoff.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Connect(_)
                | Self::Timeout(_)
                | Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::EmptyStream
                | Self::StreamFailed(_)
        )
    }
}

/// One failed attempt, kept for the final error message and the attempts header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailure {
    pub model: String,
    pub error: AttemptError,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("{message}")]
    InvalidRequest { message: String, param: Option<String>, code: &'static str },
    #[error("The model `{model}` does not exist or you do not have access to it. Known models and routes: {known}")]
    UnknownModel { model: String, known: String },
    #[error("Request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("Unknown request URL: {method} {path}")]
    NotFound { method: String, path: String },
    #[error("Method {method} is not allowed on {path}; use {allowed}")]
    MethodNotAllowed { method: String, path: String, allowed: &'static str },
    /// The provider said the request itself is wrong (400, 413, 422...): not retried.
    #[error("{message}")]
    UpstreamRejected { status: u16, model: String, message: String },
    #[error("{}", describe_attempts(.route, .attempts))]
    AllAttemptsFailed { route: String, attempts: Vec<AttemptFailure> },
    #[error("internal error (request id {request_id})")]
    Internal { request_id: String, detail: String },
    /// Missing, unknown or revoked client key: one message for all, so nothing is revealed.
    #[error("Invalid API key. Send a gateway key as `Authorization: Bearer <key>` or `x-api-key: <key>`.")]
    Unauthorized,
    #[error("{message}")]
    Forbidden { message: String, code: &'static str },
    /// A per-key or per-model rate limit of the gateway.
    #[error("{message}")]
    RateLimited { message: String, retry_after_ms: Option<u64> },
    /// A key's daily or monthly budget is spent.
    #[error("{message}")]
    QuotaExceeded { message: String, retry_after_ms: Option<u64> },
}

fn describe_attempts(route: &str, attempts: &[AttemptFailure]) -> String {
    let parts: Vec<String> =
        attempts.iter().map(|a| format!("{}: {}", a.model, a.error)).collect();
    format!("No model on route `{route}` could serve the request ({})", parts.join("; "))
}

impl GatewayError {
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::InvalidRequest { message: message.into(), param: param.map(str::to_owned), code: "invalid_request" }
    }

    pub fn blame(&self) -> Blame {
        match self {
            Self::InvalidRequest { .. }
            | Self::UnknownModel { .. }
            | Self::PayloadTooLarge { .. }
            | Self::NotFound { .. }
            | Self::MethodNotAllowed { .. }
            | Self::UpstreamRejected { .. }
            | Self::Unauthorized
            | Self::Forbidden { .. }
            | Self::RateLimited { .. }
            | Self::QuotaExceeded { .. } => Blame::Client,
            Self::AllAttemptsFailed { .. } => Blame::Upstream,
            Self::Internal { .. } => Blame::Internal,
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidRequest { .. } => 400,
            Self::UnknownModel { .. } | Self::NotFound { .. } => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::PayloadTooLarge { .. } => 413,
            Self::UpstreamRejected { status, .. } => *status,
            Self::AllAttemptsFailed { attempts, .. } => {
                let all = |f: fn(&AttemptError) -> bool| !attempts.is_empty() && attempts.iter().all(|a| f(&a.error));
                if all(|e| matches!(e, AttemptError::RateLimited { .. } | AttemptError::ModelLimit { .. })) {
                    429
                } else if all(|e| matches!(e, AttemptError::Timeout(_))) {
                    504
                } else {
                    502
                }
            }
            Self::Internal { .. } => 500,
            Self::Unauthorized => 401,
            Self::Forbidden { .. } => 403,
            Self::RateLimited { .. } | Self::QuotaExceeded { .. } => 429,
        }
    }

    /// Headers the error response carries (`Retry-After`).
    pub fn headers(&self) -> Vec<(String, String)> {
        match self {
            Self::RateLimited { retry_after_ms: Some(ms), .. } | Self::QuotaExceeded { retry_after_ms: Some(ms), .. } => vec![
                ("retry-after".into(), ms.div_ceil(1000).to_string()),
                ("retry-after-ms".into(), ms.to_string()),
            ],
            Self::Unauthorized => vec![("www-authenticate".into(), "Bearer".into())],
            _ => Vec::new(),
        }
    }

    fn kind(&self) -> (&'static str, Option<&str>, &str) {
        // (type, param, code)
        match self {
            Self::InvalidRequest { param, code, .. } => ("invalid_request_error", param.as_deref(), code),
            Self::UnknownModel { .. } => ("invalid_request_error", Some("model"), "model_not_found"),
            Self::PayloadTooLarge { .. } => ("invalid_request_error", None, "payload_too_large"),
            Self::NotFound { .. } => ("invalid_request_error", None, "unknown_url"),
            Self::MethodNotAllowed { .. } => ("invalid_request_error", None, "method_not_allowed"),
            Self::UpstreamRejected { .. } => ("invalid_request_error", None, "upstream_rejected"),
            Self::AllAttemptsFailed { .. } => match self.status() {
                429 => ("rate_limit_error", None, "upstream_rate_limited"),
                504 => ("upstream_error", None, "upstream_timeout"),
                _ => ("upstream_error", None, "upstream_unavailable"),
            },
            Self::Internal { .. } => ("server_error", None, "internal_error"),
            Self::Unauthorized => ("invalid_request_error", None, "invalid_api_key"),
            Self::Forbidden { code, .. } => ("permission_error", None, code),
            Self::RateLimited { .. } => ("rate_limit_error", None, "rate_limit_exceeded"),
            Self::QuotaExceeded { .. } => ("insufficient_quota", None, "insufficient_quota"),
        }
    }

    /// The OpenAI-shaped body: `{"error":{"message","type","param","code"}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let (kind, param, code) = self.kind();
        json!({"error": {"message": self.to_string(), "type": kind, "param": param, "code": code}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_rate_limited_is_429_mixed_is_502() {
        let rl = |m: &str| AttemptFailure { model: m.into(), error: AttemptError::RateLimited { retry_after_ms: None } };
        let e = GatewayError::AllAttemptsFailed { route: "r".into(), attempts: vec![rl("a"), rl("b")] };
        assert_eq!(e.status(), 429);
        let mixed = GatewayError::AllAttemptsFailed {
            route: "r".into(),
            attempts: vec![rl("a"), AttemptFailure { model: "b".into(), error: AttemptError::Server { status: 503 } }],
        };
        assert_eq!(mixed.status(), 502);
        assert_eq!(mixed.to_json()["error"]["code"], "upstream_unavailable");
        assert!(mixed.to_string().contains("b: server error (503)"), "{mixed}");
    }

    #[test]
    fn internal_error_hides_detail() {
        let e = GatewayError::Internal { request_id: "req_1".into(), detail: "secret path".into() };
        let body = e.to_json().to_string();
        assert!(!body.contains("secret path"));
        assert!(body.contains("req_1"));
        assert_eq!(e.blame(), Blame::Internal);
    }
}
