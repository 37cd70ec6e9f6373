//! The tier-3 classifier: the part of the regional host that decides, kept in a wasm module so it
//! can change without rebuilding the host.
//!
//! wasi-host runs this module (wasm32-wasip1) once per classification: the request is JSON on
//! stdin, the decision JSON on stdout. The module writes the prompt (instructions, the label set
//! with descriptions, the caller's text), and asks the `ggml` graph that wasi-host preloaded
//! (wasi-nn `load_by_name`) for the log-likelihood of each label as the answer. The answer is the
//! most likely label: the model never writes free text, so no input can make it answer outside
//! the label set.
//!
//! Graph protocol (wasi-host's llama.cpp backend):
//! - input 0, U8 `[n]`: the prompt, UTF-8, with the model's chat-template tokens;
//! - input 1, U8 `[m]`: the label continuations, UTF-8, one per line;
//! - input 2, U8 `[1]` (optional): 1 asks for output 2 (it costs the model's vocabulary
//!   projection on every token of the request, about a quarter more work);
//! - output 0, F32 `[labels]`: sum of the log-probabilities of each continuation's tokens;
//! - output 1, F32 `[3]`: prompt tokens, of which reused from the previous request, compute ms;
//! - output 2, F32 `[n_embd]`: the final hidden state (after the output norm) at the prompt's
//!   last token, where the answer starts;
//! - output 3, U8 `[k]`: the model's shape as JSON (`{"n_params", "n_embd", "n_vocab"}`).

use classifier_guest as classify;

use std::io::{Read as _, Write as _};

fn main() {
    let mut input = Vec::new();
    let result = std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| classify::Error::Input(format!("reading stdin: {e}")))
        .and_then(|_| classify::parse_request(&input))
        .and_then(|req| classify::run(&req, &mut nn::Engine));
    let out = match result {
        Ok(decision) => serde_json::to_vec(&decision),
        Err(e) => serde_json::to_vec(&e.to_json()),
    };
    let mut stdout = std::io::stdout();
    // A failed write leaves stdout empty, which the host reports as a guest failure.
    let _ = out.map(|bytes| stdout.write_all(&bytes).and_then(|()| stdout.flush()));
}

#[cfg(target_arch = "wasm32")]
mod nn {
    use crate::classify::{Error, ModelInfo, Scorer, Scores};
    use wasi_nn::{ExecutionTarget, GraphBuilder, GraphEncoding, TensorType};

    /// The widest hidden state read (70B-class models have 8,192).
    const MAX_EMBD: usize = 16_384;

    pub struct Engine;

    impl Scorer for Engine {
        fn score(&mut self, graph: &str, prompt: &str, continuations: &[String], hidden: bool) -> Result<Scores, Error> {
            let nn = |what: &str, e: wasi_nn::Error| Error::Engine(format!("{what}: {e}"));
            // The encoding is the host's business: a preloaded graph is found by name.
            let graph = GraphBuilder::new(GraphEncoding::Autodetec, ExecutionTarget::AUTO)
                .build_from_cache(graph)
                .map_err(|e| nn("loading the graph", e))?;
            let mut ctx = graph.init_execution_context().map_err(|e| nn("execution context", e))?;
            let labels = continuations.join("\n");
            ctx.set_input(0, TensorType::U8, &[prompt.len()], prompt.as_bytes()).map_err(|e| nn("prompt", e))?;
            ctx.set_input(1, TensorType::U8, &[labels.len()], labels.as_bytes()).map_err(|e| nn("labels", e))?;
            if hidden {
                ctx.set_input(2, TensorType::U8, &[1], &[1u8]).map_err(|e| nn("asking for the hidden state", e))?;
            }
            ctx.compute().map_err(|e| nn("compute", e))?;
            let mut log_probs = vec![0f32; continuations.len()];
            let n = ctx.get_output(0, &mut log_probs).map_err(|e| nn("scores", e))?;
            if n != log_probs.len() * 4 {
                return Err(Error::Engine(format!("the graph returned {n} bytes of scores for {} labels", log_probs.len())));
            }
            let mut stats = [0f32; 3];
            ctx.get_output(1, &mut stats).map_err(|e| nn("stats", e))?;
            let hidden = if hidden {
                let mut info = vec![0u8; 256];
                let n = ctx.get_output(3, &mut info).map_err(|e| nn("model shape", e))?;
                let info: ModelInfo = serde_json::from_slice(&info[..n.min(info.len())])
                    .map_err(|e| Error::Engine(format!("the graph's model shape: {e}")))?;
                if info.n_embd == 0 || info.n_embd > MAX_EMBD {
                    return Err(Error::Engine(format!("a hidden state of {} values", info.n_embd)));
                }
                let mut h = vec![0f32; info.n_embd];
                let n = ctx.get_output(2, &mut h).map_err(|e| nn("hidden state", e))?;
                if n != h.len() * 4 {
                    return Err(Error::Engine(format!("the graph returned {n} bytes of hidden state for {} values", h.len())));
                }
                Some((h, info))
            } else {
                None
            };
            Ok(Scores { log_probs, prompt_tokens: stats[0] as u32, reused_tokens: stats[1] as u32, compute_ms: stats[2], hidden })
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod nn {
    use crate::classify::{Error, Scorer, Scores};

    /// Native builds (unit tests, `cargo check`) have no wasi-nn.
    pub struct Engine;

    impl Scorer for Engine {
        fn score(&mut self, _: &str, _: &str, _: &[String], _: bool) -> Result<Scores, Error> {
            Err(Error::Engine("wasi-nn is only available in the wasm32-wasip1 build".into()))
        }
    }
}
