//! Anthropic's endpoints: `POST /v1/messages` runs the chat flow on the translated request
//! (`api::messages::to_chat`), and its answer, its stream and its errors go back in Anthropic's
//! shapes; `POST /v1/messages/count_tokens` answers with the estimate the budgets reserve.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use super::chat::{authenticated, Shared};
use super::{Body, Request, Response};
use crate::api::messages::{self, stream::Translator};
use crate::audit::Record;
use crate::config::Config;
use crate::error::GatewayError;
use crate::platform::Platform;
use crate::policy::cost;

pub(super) fn is_messages(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or("").trim_end_matches('/');
    path == "/v1/messages" || path == "/v1/messages/count_tokens"
}

/// The response in Anthropic's shapes: a completion as a `message`, chunks as Anthropic events,
/// an OpenAI-shaped error as Anthropic's. `model` is the config's name of the model that served.
pub(super) fn to_anthropic(mut resp: Response, model: &str) -> Response {
    resp.body = match resp.body {
        Body::Stream(s) => {
            let t = Rc::new(RefCell::new(Translator::new(model)));
            let end = Rc::clone(&t);
            let events = s.map(move |b| futures::stream::iter(t.borrow_mut().feed(&b))).flatten();
            let tail = futures::stream::once(async move { futures::stream::iter(end.borrow_mut().finish()) }).flatten();
            Body::Stream(Box::pin(events.chain(tail)))
        }
        Body::Full(b) => {
            let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
            let out = match resp.status {
                200 if v.get("choices").is_some() => messages::from_completion(&v, model),
                200 => v,
                status => messages::error_body(status, &v),
            };
            Body::Full(Bytes::from(out.to_string()))
        }
    };
    resp
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens as the gateway estimates them for its
/// budgets (an upper bound computed without the model's tokenizer, media by the providers'
/// rules at their most), said so in the body and in `x-gateway-token-count`.
pub(super) async fn count_tokens<P: Platform>(shared: &Rc<Shared>, p: &P, config: &Arc<Config>, req: Request, rec: &mut Record) -> Result<Response, GatewayError> {
    let (_, chat) = authenticated(shared, p, config, req, rec, count_request).await?;
    let tokens = cost::estimate_prompt_tokens(&chat.request);
    let mut resp = Response::json(200, &json!({"input_tokens": tokens, "estimate": "upper bound used for the gateway's budgets; the provider's count may be lower"}));
    resp.headers.push(("x-gateway-token-count".into(), "estimate".into()));
    Ok(resp)
}

/// A count_tokens body is a messages body without `max_tokens`.
fn count_request(body: &[u8]) -> Result<crate::api::ParsedChat, GatewayError> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| GatewayError::bad_request(format!("We could not parse the JSON body of your request: {e}"), None))?;
    if let Some(obj) = v.as_object_mut() {
        obj.entry("max_tokens").or_insert(json!(1));
        obj.remove("stream");
    }
    messages::to_chat(v.to_string().as_bytes())
}
