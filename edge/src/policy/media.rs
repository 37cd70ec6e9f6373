//! Tokens of the non-text parts of a prompt (images, audio, files), by each provider's published
//! rules, so that reservations and `max_cost_usd_per_request` hold for them too.
//!
//! An image's tokens depend on its pixel size and on the model reading it. A base64 data URL
//! carries the size in its header (PNG, JPEG, GIF, WebP, ...: read with `imagesize` from the
//! first 96 KB); a remote URL does not, and counts as the largest image the rule allows. The
//! rules, as the providers publish them:
//! - OpenAI tile models (gpt-4o, gpt-4.1, gpt-4.5, o1, o3, gpt-5, and every OpenAI-compatible
//!   server by default): `low` detail costs the base; otherwise the image is fitted into
//!   2048x2048, scaled so its shortest side is 768, and cut into 512-pixel tiles: base + tiles x
//!   per tile (85 + 170; gpt-4o-mini 2,833 + 5,667; o1/o3 75 + 150; gpt-5 70 + 140).
//! - OpenAI patch models (gpt-4.1-mini/nano, gpt-5-mini/nano, o4-mini): 32-pixel patches, at
//!   most 1,536 (larger images are scaled down), times the model's multiplier (1.62, 2.46, 1.72).
//! - Anthropic: width x height / 750, after scaling the long edge down to 1,568 pixels, and at
//!   most about 1,600 tokens.
//!
//! Audio (`input_audio`, OpenAI) is billed about one token per 100 ms; its duration is bounded
//! from its size at the lowest bit rate accepted (8 kbit/s MP3: 1 KB a second, 10 tokens).
//! Files (`file`, PDFs) cost the text and an image of every page: pages are counted from the
//! PDF's page objects (or one per 3 KB when they are compressed away), each at 3,000 text tokens
//! (the top of Anthropic's published 1,500-3,000) plus the largest image. A part whose size cannot
//! be known (an uploaded `file_id`) costs the model's whole context window.

use base64::Engine as _;
use serde_json::Value;

use crate::api::{ChatRequest, Content, ContentPart, ImageUrl};
use crate::config::{Model, ProviderKind};

/// A non-text part of the prompt, as far as its cost is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// Pixel size when the image is inline; `low` is OpenAI's `detail: "low"`.
    Image { size: Option<(u32, u32)>, low: bool },
    /// Decoded bytes of inline audio.
    Audio { bytes: u64 },
    /// An inline file: decoded bytes and the page count read from it (0: not found).
    File { bytes: u64, pages: u64 },
    /// A part whose size the gateway cannot know.
    Unknown,
}

/// The media parts of every message, in order.
pub fn media_of(req: &ChatRequest) -> Vec<Media> {
    let mut out = Vec::new();
    for m in &req.messages {
        let Some(Content::Parts(parts)) = &m.content else { continue };
        for p in parts {
            match p {
                ContentPart::Text { .. } => {}
                ContentPart::ImageUrl { image_url } => out.push(Media::Image {
                    size: inline_bytes(&image_url.url, IMAGE_HEADER_BYTES).and_then(|b| image_size(&b)),
                    low: image_url.detail.as_deref() == Some("low"),
                }),
                ContentPart::Other(v) => out.push(other_part(v)),
            }
        }
    }
    out
}

/// Tokens of `media` on `model`.
pub fn tokens(media: &Media, model: &Model) -> u64 {
    tokens_with(media, model.provider, &model.upstream_model, model.context_window.unwrap_or(DEFAULT_WINDOW))
}

fn tokens_with(media: &Media, provider: ProviderKind, upstream_model: &str, window: u32) -> u64 {
    match media {
        Media::Image { size, low } => match provider {
            ProviderKind::Anthropic => anthropic_image(*size),
            ProviderKind::OpenAi => openai_image(openai_rule(upstream_model), *size, *low),
        },
        Media::Audio { bytes } => bytes.div_ceil(1_000).saturating_mul(10).max(10),
        Media::File { bytes, pages } => {
            let pages = if *pages > 0 { *pages } else { bytes.div_ceil(3_000).max(1) };
            let per_page = 3_000 + tokens_with(&Media::Image { size: None, low: false }, provider, upstream_model, window);
            pages.saturating_mul(per_page)
        }
        Media::Unknown => u64::from(window),
    }
}

/// The most tokens `media` costs on any provider's default model (no model known yet).
pub fn tokens_on_any_provider(media: &Media) -> u64 {
    match media {
        Media::Image { size, low } => anthropic_image(*size).max(openai_image(openai_rule(""), *size, *low)),
        Media::Unknown => u64::from(DEFAULT_WINDOW),
        Media::Audio { .. } | Media::File { .. } => {
            let probe = |provider| tokens_with(media, provider, "", DEFAULT_WINDOW);
            probe(ProviderKind::OpenAi).max(probe(ProviderKind::Anthropic))
        }
    }
}

/// The context window assumed for a model whose YAML gives none.
const DEFAULT_WINDOW: u32 = 200_000;
/// Enough of an image for its header: JPEG's size marker can follow 64 KB of EXIF.
const IMAGE_HEADER_BYTES: usize = 96 * 1024;

/// How an OpenAI model counts an image.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OpenAiRule {
    Tiles { base: u64, tile: u64 },
    /// Patches of 32 pixels (at most 1,536) times a multiplier, in hundredths.
    Patches { per_100: u64 },
}

fn openai_rule(upstream_model: &str) -> OpenAiRule {
    // Longest prefixes first: `gpt-4o-mini` before `gpt-4o`, `gpt-5-mini` before `gpt-5`.
    const RULES: &[(&str, OpenAiRule)] = &[
        ("gpt-4o-mini", OpenAiRule::Tiles { base: 2_833, tile: 5_667 }),
        ("gpt-4.1-mini", OpenAiRule::Patches { per_100: 162 }),
        ("gpt-4.1-nano", OpenAiRule::Patches { per_100: 246 }),
        ("gpt-5-mini", OpenAiRule::Patches { per_100: 162 }),
        ("gpt-5-nano", OpenAiRule::Patches { per_100: 246 }),
        ("o4-mini", OpenAiRule::Patches { per_100: 172 }),
        ("gpt-5", OpenAiRule::Tiles { base: 70, tile: 140 }),
        ("o1", OpenAiRule::Tiles { base: 75, tile: 150 }),
        ("o3", OpenAiRule::Tiles { base: 75, tile: 150 }),
    ];
    RULES
        .iter()
        .find(|(prefix, _)| upstream_model.starts_with(prefix))
        .map_or(OpenAiRule::Tiles { base: 85, tile: 170 }, |(_, rule)| *rule)
}

fn openai_image(rule: OpenAiRule, size: Option<(u32, u32)>, low: bool) -> u64 {
    match rule {
        OpenAiRule::Tiles { base, .. } if low => base,
        OpenAiRule::Tiles { base, tile } => {
            // Unknown size: the most tiles the rule allows, 2048 x 768 -> 4 x 2.
            let tiles = size.map_or(8, |(w, h)| {
                let (w, h) = (f64::from(w.max(1)), f64::from(h.max(1)));
                let fit = (2048.0 / w.max(h)).min(1.0);
                let (w, h) = (w * fit, h * fit);
                let short = 768.0 / w.min(h);
                let (w, h) = (w * short, h * short);
                // Cap rounding noise: the long side never exceeds 2048 after these steps.
                let tiles_w = (w.min(2048.0) / 512.0).ceil() as u64;
                let tiles_h = (h.min(2048.0) / 512.0).ceil() as u64;
                tiles_w.max(1) * tiles_h.max(1)
            });
            base + tiles * tile
        }
        OpenAiRule::Patches { per_100 } => {
            let patches = size.map_or(1_536, |(w, h)| {
                let (w, h) = (u64::from(w.max(1)), u64::from(h.max(1)));
                (w.div_ceil(32) * h.div_ceil(32)).min(1_536)
            });
            (patches * per_100).div_ceil(100)
        }
    }
}

fn anthropic_image(size: Option<(u32, u32)>) -> u64 {
    const MAX: u64 = 1_600;
    size.map_or(MAX, |(w, h)| {
        let (w, h) = (f64::from(w.max(1)), f64::from(h.max(1)));
        let s = (1568.0 / w.max(h)).min(1.0);
        let t = ((w * s) * (h * s) / 750.0).ceil() as u64;
        t.clamp(1, MAX)
    })
}

/// The first `limit` decoded bytes of a base64 data URL (`data:<type>;base64,<data>`).
fn inline_bytes(url: &str, limit: usize) -> Option<Vec<u8>> {
    let (_, data) = ImageUrl::base64_data(url)?;
    // Whole 4-character groups only, so a prefix decodes on its own.
    let take = (limit.div_ceil(3) * 4).min(data.len() / 4 * 4);
    base64::engine::general_purpose::STANDARD.decode(data.get(..take)?.as_bytes()).ok()
}

fn decoded_len(b64: &str) -> u64 {
    let pad = b64.bytes().rev().take_while(|&c| c == b'=').count() as u64;
    (b64.len() as u64 / 4 * 3).saturating_sub(pad)
}

fn image_size(header: &[u8]) -> Option<(u32, u32)> {
    let s = imagesize::blob_size(header).ok()?;
    Some((u32::try_from(s.width).ok()?, u32::try_from(s.height).ok()?))
}

fn other_part(v: &Value) -> Media {
    match v.get("type").and_then(Value::as_str) {
        Some("input_audio") => match v.pointer("/input_audio/data").and_then(Value::as_str) {
            Some(data) => Media::Audio { bytes: decoded_len(data) },
            None => Media::Unknown,
        },
        Some("file") => {
            let Some(data) = v.pointer("/file/file_data").and_then(Value::as_str) else { return Media::Unknown };
            let b64 = ImageUrl::base64_data(data).map_or(data, |(_, d)| d);
            let bytes = decoded_len(b64);
            let pages = base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()).map_or(0, |pdf| pdf_pages(&pdf));
            Media::File { bytes, pages }
        }
        _ => Media::Unknown,
    }
}

/// Page objects in a PDF (`/Type /Page`, not `/Pages`), as written uncompressed.
fn pdf_pages(pdf: &[u8]) -> u64 {
    let mut pages = 0;
    for pattern in [&b"/Type/Page"[..], &b"/Type /Page"[..]] {
        for (i, w) in pdf.windows(pattern.len()).enumerate() {
            if w == pattern && pdf.get(i + pattern.len()) != Some(&b's') {
                pages += 1;
            }
        }
    }
    pages
}

#[cfg(test)]
mod tests;
