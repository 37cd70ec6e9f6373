//! OpenAI's embeddings request (`POST /v1/embeddings`), checked as OpenAI checks it (its
//! OpenAPI schema: `input` a string, or 1 to 2,048 strings, token ids or arrays of token ids;
//! `encoding_format` `float` or `base64`; `dimensions` at least 1). The caller's JSON object is
//! kept and sent on with only `model` rewritten, so a server's own extensions (vLLM's
//! `truncate_prompt_tokens`, ...) pass through.

use serde_json::{Map, Value};

use crate::error::GatewayError;

/// The most inputs one request may carry, as OpenAI allows.
pub const MAX_INPUTS: usize = 2048;

#[derive(Debug, Clone)]
pub struct ParsedEmbeddings {
    pub model: String,
    pub input: Input,
    /// The caller's object, as sent.
    pub raw: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Text: one string or several.
    Text(Vec<String>),
    /// Token ids (one array or several): the count is exact, but the text cannot be read.
    Tokens { count: u64 },
}

fn invalid(message: impl Into<String>, param: &str) -> GatewayError {
    GatewayError::bad_request(message, Some(param))
}

impl ParsedEmbeddings {
    pub fn from_slice(body: &[u8]) -> Result<Self, GatewayError> {
        let raw: Value = serde_json::from_slice(body)
            .map_err(|e| GatewayError::bad_request(format!("We could not parse the JSON body of your request: {e}"), None))?;
        let Value::Object(raw) = raw else {
            return Err(GatewayError::bad_request("The request body must be a JSON object.", None));
        };
        for field in ["model", "input"] {
            if !raw.contains_key(field) {
                return Err(invalid(format!("Missing required parameter: '{field}'."), field));
            }
        }
        let model = match &raw["model"] {
            Value::String(m) if !m.trim().is_empty() => m.clone(),
            Value::String(_) => return Err(invalid("'model' must not be empty.", "model")),
            _ => return Err(invalid("Invalid type for 'model': expected a string.", "model")),
        };
        let input = parse_input(&raw["input"])?;
        match raw.get("encoding_format") {
            None | Some(Value::Null) => {}
            Some(Value::String(f)) if f == "float" || f == "base64" => {}
            Some(other) => return Err(invalid(format!("Invalid value for 'encoding_format': {other}. Supported values are: 'float' and 'base64'."), "encoding_format")),
        }
        match raw.get("dimensions") {
            None | Some(Value::Null) => {}
            Some(d) if d.as_u64().is_some_and(|d| (1..=u64::from(u32::MAX)).contains(&d)) => {}
            Some(other) => return Err(invalid(format!("Invalid value for 'dimensions': {other}. It must be an integer of at least 1."), "dimensions")),
        }
        if raw.get("user").is_some_and(|u| !u.is_string() && !u.is_null()) {
            return Err(invalid("Invalid type for 'user': expected a string.", "user"));
        }
        Ok(Self { model, input, raw })
    }
}

fn parse_input(v: &Value) -> Result<Input, GatewayError> {
    let shape = "'input' must be a string, an array of strings, an array of token ids, or an array of arrays of token ids.";
    let items = match v {
        Value::String(s) if s.is_empty() => return Err(invalid("'input' must not be an empty string.", "input")),
        Value::String(s) => return Ok(Input::Text(vec![s.clone()])),
        Value::Array(items) => items,
        _ => return Err(invalid(shape, "input")),
    };
    if items.is_empty() {
        return Err(invalid("'input' must hold at least one item.", "input"));
    }
    if items.len() > MAX_INPUTS {
        return Err(invalid(format!("'input' holds {} items; at most {MAX_INPUTS} are allowed.", items.len()), "input"));
    }
    let token = |t: &Value| t.as_u64().is_some_and(|t| t <= u64::from(u32::MAX));
    match &items[0] {
        Value::String(_) => {
            let mut texts = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) if s.is_empty() => return Err(invalid(format!("'input[{i}]' must not be an empty string."), "input")),
                    Value::String(s) => texts.push(s.clone()),
                    _ => return Err(invalid(format!("'input[{i}]' is not a string; {shape}"), "input")),
                }
            }
            Ok(Input::Text(texts))
        }
        Value::Number(_) => match items.iter().position(|t| !token(t)) {
            Some(i) => Err(invalid(format!("'input[{i}]' is not a token id (an integer from 0 to 4294967295)."), "input")),
            None => Ok(Input::Tokens { count: items.len() as u64 }),
        },
        Value::Array(_) => {
            let mut count = 0u64;
            for (i, item) in items.iter().enumerate() {
                let Value::Array(ids) = item else { return Err(invalid(format!("'input[{i}]' is not an array of token ids; {shape}"), "input")) };
                if ids.is_empty() {
                    return Err(invalid(format!("'input[{i}]' must hold at least one token id."), "input"));
                }
                if let Some(j) = ids.iter().position(|t| !token(t)) {
                    return Err(invalid(format!("'input[{i}][{j}]' is not a token id (an integer from 0 to 4294967295)."), "input"));
                }
                count += ids.len() as u64;
            }
            Ok(Input::Tokens { count })
        }
        _ => Err(invalid(shape, "input")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ParsedEmbeddings, GatewayError> {
        ParsedEmbeddings::from_slice(v.to_string().as_bytes())
    }

    #[test]
    fn every_shape_openai_accepts_parses() {
        let text = |v: Value| parse(json!({"model": "e", "input": v})).map(|p| p.input).expect("parses");
        assert_eq!(text(json!("one")), Input::Text(vec!["one".into()]));
        assert_eq!(text(json!(["a", "b"])), Input::Text(vec!["a".into(), "b".into()]));
        assert_eq!(text(json!([1212, 318, 257])), Input::Tokens { count: 3 });
        assert_eq!(text(json!([[1212, 318], [13]])), Input::Tokens { count: 3 });
        let p = parse(json!({"model": "e", "input": "x", "encoding_format": "base64", "dimensions": 256, "user": "u1", "truncate_prompt_tokens": 8})).expect("parses");
        assert_eq!(p.raw["truncate_prompt_tokens"], 8, "unknown fields are kept for the provider");
    }

    #[test]
    fn bad_requests_name_the_parameter() {
        let cases = [
            (json!({"input": "x"}), "model", "Missing required parameter"),
            (json!({"model": "e"}), "input", "Missing required parameter"),
            (json!({"model": 3, "input": "x"}), "model", "expected a string"),
            (json!({"model": " ", "input": "x"}), "model", "must not be empty"),
            (json!({"model": "e", "input": ""}), "input", "empty string"),
            (json!({"model": "e", "input": []}), "input", "at least one item"),
            (json!({"model": "e", "input": ["a", ""]}), "input", "'input[1]' must not be an empty string"),
            (json!({"model": "e", "input": ["a", 1]}), "input", "'input[1]' is not a string"),
            (json!({"model": "e", "input": [1, -2]}), "input", "'input[1]' is not a token id"),
            (json!({"model": "e", "input": [1, 1.5]}), "input", "'input[1]' is not a token id"),
            (json!({"model": "e", "input": [[1], []]}), "input", "'input[1]' must hold at least one"),
            (json!({"model": "e", "input": [[1], [2, 99999999999u64]]}), "input", "'input[1][1]'"),
            (json!({"model": "e", "input": [[1], "a"]}), "input", "'input[1]' is not an array"),
            (json!({"model": "e", "input": {"text": "a"}}), "input", "must be a string, an array"),
            (json!({"model": "e", "input": [null]}), "input", "must be a string, an array"),
            (json!({"model": "e", "input": "x", "encoding_format": "int8"}), "encoding_format", "'float' and 'base64'"),
            (json!({"model": "e", "input": "x", "dimensions": 0}), "dimensions", "at least 1"),
            (json!({"model": "e", "input": "x", "dimensions": "256"}), "dimensions", "at least 1"),
            (json!({"model": "e", "input": "x", "user": 7}), "user", "expected a string"),
        ];
        for (body, param, message) in cases {
            let e = parse(body.clone()).expect_err("refused");
            let v = e.to_json();
            assert_eq!(e.status(), 400, "{body}");
            assert_eq!(v["error"]["param"], param, "{body}: {v}");
            assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains(message)), "{body}: {v}");
        }
        let many: Vec<&str> = vec!["a"; MAX_INPUTS + 1];
        let e = parse(json!({"model": "e", "input": many})).expect_err("too many");
        assert!(e.to_string().contains("at most 2048"), "{e}");
        assert_eq!(ParsedEmbeddings::from_slice(b"[1]").expect_err("not an object").status(), 400);
        assert_eq!(ParsedEmbeddings::from_slice(b"{").expect_err("not JSON").status(), 400);
    }
}
