//! Token estimates and prices, in integer nano-dollars.
//!
//! Before the provider is called the gateway must reserve tokens and money, so it estimates the
//! prompt's tokens without the provider's tokenizer (which would add megabytes to the wasm):
//! an upper bound from the text's bytes, tested against OpenAI's o200k and cl100k tokenizers
//! (`estimate_is_an_upper_bound_of_openai_tokenizers`). The provider's reported usage settles
//! the difference afterwards.

use super::media;
use crate::api::{ChatRequest, Content};
use crate::config::{Model, Price};

/// Tokens a message costs beyond its text (role, separators), as OpenAI counts them.
const PER_MESSAGE: u64 = 4;

/// An upper-bound estimate of the prompt's tokens when the model is not known yet (`/v1/route`,
/// `gateway eval`): the text (`estimate_text_tokens`) plus each media part at the most any of
/// the providers' rules gives it (`media`).
pub fn estimate_prompt_tokens(req: &ChatRequest) -> u64 {
    let worst = media::media_of(req).iter().map(media::tokens_on_any_provider).fold(0u64, u64::saturating_add);
    estimate_text_tokens(req).saturating_add(worst)
}

/// The prompt's tokens on `model`: its text plus `media` (from `media::media_of`) by the
/// rules of the model's provider.
pub fn prompt_tokens_on(text_tokens: u64, media: &[media::Media], model: &Model) -> u64 {
    media.iter().map(|m| media::tokens(m, model)).fold(text_tokens, u64::saturating_add)
}

/// An upper-bound estimate of the tokens of the prompt's text, tool calls and tool definitions
/// (see `TextCount`); a 2-byte character (Latin accents, Cyrillic, Greek, Arabic) counts 1, a
/// 3-byte one (CJK) 2, a 4-byte one (emoji) 3, which covers both of OpenAI's tokenizers.
/// Images, audio and files are counted per model (`prompt_tokens_on`).
pub fn estimate_text_tokens(req: &ChatRequest) -> u64 {
    let mut text = TextCount::default();
    let mut fixed: u64 = 3;
    for m in &req.messages {
        fixed += PER_MESSAGE;
        match &m.content {
            Some(Content::Text(t)) => text.add(t),
            Some(Content::Parts(parts)) => {
                for p in parts {
                    if let crate::api::ContentPart::Text { text: t } = p {
                        text.add(t);
                    }
                }
            }
            None => {}
        }
        for c in m.tool_calls.iter().flatten() {
            text.add(&c.function.name);
            text.add(&c.function.arguments);
        }
    }
    for t in req.tools.iter().flatten() {
        text.add(&t.function.name);
        text.add(t.function.description.as_deref().unwrap_or_default());
        if let Some(p) = &t.function.parameters {
            text.add(&p.to_string());
        }
    }
    fixed + text.tokens
}

/// An upper-bound estimate of the tokens of embeddings input texts (no per-message overhead:
/// an embedding model counts the text alone).
pub fn estimate_input_tokens(texts: &[String]) -> u64 {
    let mut count = TextCount::default();
    texts.iter().for_each(|t| count.add(t));
    count.tokens
}

/// Counts tokens the way BPE tokenizers split text: a run of letters is one token per 4
/// letters (rounded up), a run of digits one per 3, each ASCII punctuation mark one, a single
/// space none (it joins the next word), a longer run of whitespace one.
#[derive(Default)]
struct TextCount {
    tokens: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    None,
    Letters,
    Digits,
    Space,
}

impl TextCount {
    fn add(&mut self, s: &str) {
        let (mut run, mut len) = (Run::None, 0u64);
        let close = |run: Run, len: u64| match run {
            Run::Letters => len.div_ceil(4),
            Run::Digits => len.div_ceil(3),
            Run::Space => u64::from(len > 1),
            Run::None => 0,
        };
        for c in s.chars() {
            let kind = match c {
                c if c.is_ascii_alphabetic() => Run::Letters,
                c if c.is_ascii_digit() => Run::Digits,
                c if c.is_ascii_whitespace() => Run::Space,
                _ => Run::None,
            };
            if kind != run {
                self.tokens += close(run, len);
                (run, len) = (kind, 0);
            }
            len += 1;
            self.tokens += match c.len_utf8() {
                1 if kind == Run::None => 1,
                1 => 0,
                2 => 1,
                3 => 2,
                _ => 3,
            };
        }
        self.tokens += close(run, len);
    }
}

/// The most output tokens the request can produce on `model`.
pub fn max_output_tokens(req: &ChatRequest, model: &Model) -> u64 {
    let asked = req.max_completion_tokens.or(req.max_tokens).unwrap_or(model.max_output_tokens);
    u64::from(asked) * u64::from(req.n.unwrap_or(1).max(1))
}

/// Nano-dollars for these token counts at `price` (micro-dollars per million tokens), rounded up.
pub fn cost_nanos(price: &Price, input: u64, output: u64) -> u64 {
    let n = u128::from(input) * u128::from(price.input_micros_per_mtok) + u128::from(output) * u128::from(price.output_micros_per_mtok);
    // micro-dollars per Mtok * tokens / 1e6 = micro-dollars; * 1e3 = nano-dollars.
    u64::try_from(n.div_ceil(1_000)).unwrap_or(u64::MAX)
}

/// Formats nano-dollars as USD with 9 decimals trimmed: `0.000123`.
pub fn usd(nanos: u64) -> String {
    let s = format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000);
    let s = s.trim_end_matches('0');
    let s = s.strip_suffix('.').unwrap_or(s);
    s.to_owned()
}

/// `(prompt, completion)` tokens from an OpenAI-shaped `usage` object.
pub fn usage_tokens(usage: &serde_json::Value) -> Option<(u64, u64)> {
    let p = usage.get("prompt_tokens")?.as_u64()?;
    let c = usage.get("completion_tokens").and_then(serde_json::Value::as_u64).unwrap_or(0);
    Some((p, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_in_nanos() {
        // $0.15 / $0.60 per Mtok.
        let p = Price { input_micros_per_mtok: 150_000, output_micros_per_mtok: 600_000 };
        assert_eq!(cost_nanos(&p, 1_000_000, 0), 150_000_000);
        assert_eq!(cost_nanos(&p, 100, 10), 15_000 + 6_000);
        assert_eq!(cost_nanos(&p, 1, 0), 150);
        assert_eq!(usd(21_000), "0.000021");
        assert_eq!(usd(2_000_000_000), "2");
        assert_eq!(usd(0), "0");
    }

    #[test]
    fn estimate_is_an_upper_bound_of_openai_tokenizers() {
        // Real counts from OpenAI's o200k_base and cl100k_base BPE (tiktoken-rs), on prompts in
        // several scripts and shapes; OpenAI adds about 3 tokens per message and 3 per reply.
        let long = "The quick brown fox jumps over the lazy dog. ".repeat(40);
        let texts = [
            "Write a Python function that returns the n-th Fibonacci number.",
            "Résumez ce texte en trois phrases, s'il vous plaît, en gardant les chiffres clés.",
            "请把这段话翻译成英文，并保持语气礼貌。谢谢！",
            "東京の天気を教えてください。明日は雨が降りますか？",
            "Переведи на немецкий: я люблю программировать на Rust.",
            "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 3;",
            "fn main() { let v: Vec<u8> = (0..=255).collect(); println!(\"{:?}\", v); }",
            "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2",
            "🙂🙃😉😊😇🥰😍🤩😘😗",
            long.as_str(),
            "",
        ];
        let o200k = tiktoken_rs::o200k_base().expect("o200k");
        let cl100k = tiktoken_rs::cl100k_base().expect("cl100k");
        for text in texts {
            let req: ChatRequest = serde_json::from_value(serde_json::json!({
                "model": "m", "messages": [{"role": "user", "content": text}]
            }))
            .expect("request");
            let est = estimate_prompt_tokens(&req);
            for (name, bpe) in [("o200k", &o200k), ("cl100k", &cl100k)] {
                let real = bpe.encode_with_special_tokens(text).len() as u64 + 6;
                assert!(est >= real, "{name}: {text:?}: estimate {est} < real {real}");
                assert!(est <= real * 3 + 10, "{name}: {text:?}: estimate {est} far above real {real}");
            }
        }
    }
}
