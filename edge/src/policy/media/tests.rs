//! The providers' published image, audio and file rules, on their own worked examples where
//! they give one.

use super::*;
use crate::config::Config;

/// The first bytes of a PNG of `w` x `h` (signature and IHDR: all a size reader needs).
fn png(w: u32, h: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend(w.to_be_bytes());
    b.extend(h.to_be_bytes());
    b.extend([8, 6, 0, 0, 0, 0, 0, 0, 0]);
    b
}

fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn image_request(url: &str, detail: Option<&str>) -> ChatRequest {
    let mut image = serde_json::json!({"url": url});
    if let Some(d) = detail {
        image["detail"] = d.into();
    }
    serde_json::from_value(serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is in this picture?"},
        {"type": "image_url", "image_url": image}]}]}))
    .expect("valid request")
}

fn model(provider: &str, upstream: &str) -> std::sync::Arc<Model> {
    let yaml = format!(
        "models:\n  m: {{ provider: {provider}, base_url: \"https://x.example/v1\", upstream_model: {upstream}, context_window: 128000, capabilities: [general] }}\ncapabilities:\n  general: {{ route: general }}\nroutes:\n  general: {{ models: [m] }}\nrouter:\n  default_route: general\nauth:\n  kv_keys: true\n"
    );
    let config = Config::from_yaml(&yaml).expect("valid config");
    std::sync::Arc::clone(&config.models["m"])
}

fn image_tokens(provider: &str, upstream: &str, size: Option<(u32, u32)>, detail: Option<&str>) -> u64 {
    let url = size.map_or_else(|| "https://img.example/cat.png".to_owned(), |(w, h)| data_url("image/png", &png(w, h)));
    let media = media_of(&image_request(&url, detail));
    assert_eq!(media.len(), 1);
    tokens(&media[0], &model(provider, upstream))
}

#[test]
fn an_inline_image_is_measured_from_its_header() {
    let media = media_of(&image_request(&data_url("image/png", &png(1024, 768)), None));
    assert_eq!(media, [Media::Image { size: Some((1024, 768)), low: false }]);
    // Not an image: the size is unknown, so the rule's largest image counts.
    let media = media_of(&image_request(&data_url("image/png", b"not an image at all"), Some("low")));
    assert_eq!(media, [Media::Image { size: None, low: true }]);
}

#[test]
fn openai_tiles_follow_the_published_examples() {
    // OpenAI's examples: 1024 x 1024 high detail is 765 tokens; 2048 x 4096 is 1,105; low is 85.
    assert_eq!(image_tokens("openai", "gpt-4o", Some((1024, 1024)), Some("high")), 765);
    assert_eq!(image_tokens("openai", "gpt-4o-2024-08-06", Some((2048, 4096)), None), 1_105);
    assert_eq!(image_tokens("openai", "gpt-4o", Some((4096, 8192)), Some("low")), 85);
    // A remote image's size is unknown: the most tiles the rule allows (4 x 2).
    assert_eq!(image_tokens("openai", "gpt-4o", None, None), 85 + 8 * 170);
    // gpt-4o-mini counts the same picture in many more (cheaper) tokens.
    assert_eq!(image_tokens("openai", "gpt-4o-mini", Some((1024, 1024)), None), 2_833 + 4 * 5_667);
    // Any OpenAI-compatible server gets the gpt-4o rule.
    assert_eq!(image_tokens("openai", "llama3.2-vision", Some((1024, 1024)), None), 765);
}

#[test]
fn openai_patch_models_count_32_pixel_patches() {
    // 1024 x 1024 is 32 x 32 = 1,024 patches, times gpt-4.1-mini's 1.62.
    assert_eq!(image_tokens("openai", "gpt-4.1-mini", Some((1024, 1024)), None), 1_659);
    // At most 1,536 patches however large the image, or when its size is unknown.
    assert_eq!(image_tokens("openai", "gpt-4.1-nano", Some((8000, 8000)), None), (1_536u64 * 246).div_ceil(100));
    assert_eq!(image_tokens("openai", "o4-mini", None, None), (1_536u64 * 172).div_ceil(100));
}

#[test]
fn anthropic_counts_pixels_over_750() {
    // Anthropic's table: 1000 x 1000 is about 1,334 tokens; 200 x 200 about 54.
    assert_eq!(image_tokens("anthropic", "claude-sonnet-4-5", Some((1000, 1000)), None), 1_334);
    assert_eq!(image_tokens("anthropic", "claude-haiku-4-5", Some((200, 200)), None), 54);
    // Large images are scaled down: never more than about 1,600.
    assert_eq!(image_tokens("anthropic", "claude-sonnet-4-5", Some((4000, 3000)), None), 1_600);
    assert_eq!(image_tokens("anthropic", "claude-sonnet-4-5", None, None), 1_600);
}

#[test]
fn audio_files_and_unknown_parts_are_bounded() {
    let req: ChatRequest = serde_json::from_value(serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": base64::engine::general_purpose::STANDARD.encode(vec![0u8; 100_000]), "format": "mp3"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": data_url("application/pdf", b"%PDF-1.4 1 0 obj << /Type /Pages /Count 2 >> 2 0 obj << /Type /Page >> 3 0 obj <</Type/Page>>")}},
        {"type": "file", "file": {"file_id": "file-abc123"}}]}]}))
    .expect("valid request");
    let media = media_of(&req);
    assert_eq!(media[0], Media::Audio { bytes: 100_000 });
    assert!(matches!(media[1], Media::File { pages: 2, .. }), "{:?}", media[1]);
    assert_eq!(media[2], Media::Unknown);
    let m = model("openai", "gpt-4o");
    // 100 KB of audio: at most 100 s at 8 kbit/s, 10 tokens a second.
    assert_eq!(tokens(&media[0], &m), 1_000);
    // Two pages, each 3,000 text tokens plus the largest page image.
    assert_eq!(tokens(&media[1], &m), 2 * (3_000 + 85 + 8 * 170));
    // An uploaded file: the whole context window.
    assert_eq!(tokens(&media[2], &m), 128_000);
}

#[test]
fn the_text_estimate_no_longer_counts_images_as_a_flat_thousand() {
    let req = image_request(&data_url("image/png", &png(1024, 1024)), None);
    let text = crate::policy::cost::estimate_text_tokens(&req);
    assert!(text < 30, "{text}");
    // Without a model: the most any provider's rule gives (Anthropic's 1,399 here, over 765).
    assert_eq!(crate::policy::cost::estimate_prompt_tokens(&req), text + 1_399);
}
