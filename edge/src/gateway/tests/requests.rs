//! The rules every shell gets from the core (`Gateway::serve`): the same answer to the same odd
//! method, header or path on every platform.

use serde_json::json;

use super::support::*;
use crate::testing::body_of;

fn serve(p: &crate::testing::MemoryPlatform, gw: &crate::Gateway, method: &str, path: &str, headers: Vec<(&str, Vec<u8>)>) -> crate::testing::Received {
    let body = body_of(bytes::Bytes::from(json!({"model": "oa", "messages": user("hi")}).to_string()));
    p.run(async {
        let resp = gw.serve(p, method, path.to_owned(), headers, body).await;
        crate::testing::Received::read(resp).await
    })
}

#[test]
fn a_method_that_is_not_an_http_token_is_a_400_with_a_request_id_and_an_audit_record() {
    let (p, gw) = setup();
    let r = serve(&p, &gw, "PO ST", "/v1/chat/completions", vec![]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert!(r.header("x-request-id").is_some_and(|id| id.starts_with("req_")));
    let records = audit_records(&p);
    assert_eq!(records.len(), 1);
    assert_eq!((records[0]["status"].as_u64(), records[0]["outcome"].as_str()), (Some(400), Some("error")));
}

#[test]
fn an_unknown_method_is_never_served_as_another() {
    let (p, gw) = setup();
    // A valid token but not GET: before, a shell mapped what it could not parse to GET.
    let r = serve(&p, &gw, "PURGE", "/v1/models", vec![("authorization", format!("Bearer {}", key("main")).into_bytes())]);
    assert_eq!(r.status, 405, "{}", r.body);
}

#[test]
fn a_header_value_with_control_characters_is_dropped_so_its_key_is_not_presented() {
    let (p, gw) = setup();
    let auth = format!("Bearer {}\r\nx-injected: 1", key("main")).into_bytes();
    let r = serve(&p, &gw, "POST", "/v1/chat/completions", vec![("authorization", auth)]);
    assert_eq!(r.status, 401, "{}", r.body);
    // Non-ASCII bytes are a valid header value, but not a key: the same 401.
    let r = serve(&p, &gw, "POST", "/v1/chat/completions", vec![("authorization", b"Bearer \xff\xfe".to_vec())]);
    assert_eq!(r.status, 401, "{}", r.body);
    let r = serve(&p, &gw, "POST", "/v1/chat/completions?x=1", vec![("authorization", format!("Bearer {}", key("main")).into_bytes())]);
    assert_served(&r, "oa", 1);
}
