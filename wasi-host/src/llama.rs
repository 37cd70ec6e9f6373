//! The llama.cpp calls the classifier makes, as a small safe layer over `llama-cpp-sys-2`.
//!
//! The sys crate is used without its `common` feature: `common` is llama.cpp's helper library
//! (chat parsers, Jinja, an HTTP client), 52 more C++ files that took 271 s of a cold build on two
//! cores against 226 s for llama.cpp itself, and the classifier uses none of it. The `llama-cpp-2`
//! wrapper always enables it, so this module takes its place: every `unsafe` block of the crate's
//! inference path is here, next to the invariant it relies on.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::OnceLock;

use llama_cpp_sys_2 as sys;

/// A token id of the model's vocabulary.
pub type Token = sys::llama_token;

/// Initialises llama.cpp's process-wide state once; its logs go to stderr only when `verbose`
/// (the first call decides).
pub fn init(verbose: bool) {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        unsafe extern "C" fn quiet(_: sys::ggml_log_level, _: *const std::os::raw::c_char, _: *mut std::os::raw::c_void) {}
        // SAFETY: called once, before any other llama.cpp call of this process (every entry point
        // of this module calls `init` first); the callback ignores its arguments.
        unsafe {
            sys::llama_backend_init();
            if !verbose {
                sys::llama_log_set(Some(quiet), std::ptr::null_mut());
            }
        }
    });
}

fn c_path(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| format!("{}: a path with a NUL byte", path.display()))
}

/// Rewrites a GGUF file's weights as `ftype` (`llama_model_quantize`, requantising tensors that
/// are already quantised). Returns llama.cpp's status on failure.
pub fn quantize(input: &Path, output: &Path, ftype: sys::llama_ftype, threads: i32) -> Result<(), String> {
    let (inp, out) = (c_path(input)?, c_path(output)?);
    // SAFETY: the params struct comes from llama.cpp's defaults (every pointer in it null), and
    // both strings outlive the call.
    let status = unsafe {
        let mut params = sys::llama_model_quantize_default_params();
        params.nthread = threads;
        params.allow_requantize = true;
        params.ftype = ftype;
        sys::llama_model_quantize(inp.as_ptr(), out.as_ptr(), &params)
    };
    if status == 0 { Ok(()) } else { Err(format!("llama.cpp returned {status}")) }
}

/// A loaded model: read-only once loaded, so shared by every context and thread.
pub struct Model {
    ptr: NonNull<sys::llama_model>,
    /// Logits per token position (read once: `Context::logits` needs it on every call).
    n_vocab: usize,
    /// Width of the final hidden state (`Context::hidden`).
    n_embd: usize,
}

// SAFETY: llama.cpp does not mutate a model after loading it (contexts keep their own state);
// creating contexts concurrently is the one exception, which `GraphInner` serialises.
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

impl Model {
    pub fn load(path: &Path, gpu_layers: u32) -> Result<Self, String> {
        let path = c_path(path)?;
        // SAFETY: default params (no overrides, no callbacks) and a NUL-terminated path that
        // outlives the call; a null result is an error, reported by llama.cpp's log.
        let model = unsafe {
            let mut params = sys::llama_model_default_params();
            params.n_gpu_layers = i32::try_from(gpu_layers).unwrap_or(i32::MAX);
            sys::llama_model_load_from_file(path.as_ptr(), params)
        };
        let ptr = NonNull::new(model).ok_or("llama.cpp could not load it (WASI_HOST_LLAMA_LOG=1 shows why)")?;
        // SAFETY: a live model and its own vocabulary.
        let (n, d) = unsafe { (sys::llama_vocab_n_tokens(sys::llama_model_get_vocab(ptr.as_ptr())), sys::llama_model_n_embd_out(ptr.as_ptr())) };
        Ok(Self { ptr, n_vocab: usize::try_from(n).unwrap_or(0), n_embd: usize::try_from(d).unwrap_or(0) })
    }

    pub fn n_params(&self) -> u64 {
        // SAFETY: a live model.
        unsafe { sys::llama_model_n_params(self.ptr.as_ptr()) }
    }

    /// Bytes of weights.
    pub fn size(&self) -> u64 {
        // SAFETY: a live model.
        unsafe { sys::llama_model_size(self.ptr.as_ptr()) }
    }

    /// The chat template stored in the GGUF file (`tokenizer.chat_template`), if any.
    pub fn chat_template(&self) -> Option<String> {
        // SAFETY: a live model; a null name asks for the default template. The returned string
        // belongs to the model's metadata and is copied before the model can go away.
        let ptr = unsafe { sys::llama_model_chat_template(self.ptr.as_ptr(), std::ptr::null()) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: non-null, NUL-terminated (llama.cpp's metadata strings are std::string data).
        let s = unsafe { std::ffi::CStr::from_ptr(ptr) };
        Some(s.to_string_lossy().into_owned())
    }

    fn vocab(&self) -> *const sys::llama_vocab {
        // SAFETY: a live model; the vocabulary lives as long as it.
        unsafe { sys::llama_model_get_vocab(self.ptr.as_ptr()) }
    }

    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    pub fn n_embd(&self) -> usize {
        self.n_embd
    }

    /// `text` as tokens; `add_special` adds BOS/EOS as the model is configured to, and
    /// `parse_special` reads control tokens written in the text as such.
    pub fn tokenize(&self, text: &[u8], add_special: bool, parse_special: bool) -> Result<Vec<Token>, String> {
        let len = i32::try_from(text.len()).map_err(|_| format!("{} bytes of text are too many to tokenize", text.len()))?;
        let mut tokens: Vec<Token> = Vec::with_capacity(text.len() / 2 + 8);
        for _ in 0..2 {
            let room = i32::try_from(tokens.capacity()).unwrap_or(i32::MAX);
            // SAFETY: `text` is valid for `len` bytes and `tokens` has room for `room` tokens;
            // llama.cpp writes at most `room` and returns how many, or minus the room it needs.
            let n = unsafe {
                sys::llama_tokenize(self.vocab(), text.as_ptr().cast(), len, tokens.as_mut_ptr(), room, add_special, parse_special)
            };
            if n >= 0 {
                // SAFETY: llama.cpp initialised the first `n` (<= room) tokens.
                unsafe { tokens.set_len(n as usize) };
                return Ok(tokens);
            }
            if n == i32::MIN {
                break;
            }
            tokens.reserve_exact(n.unsigned_abs() as usize);
        }
        Err("llama.cpp could not tokenize the text".into())
    }

    /// A new inference context. llama.cpp must not create two contexts of one model at once:
    /// callers serialise this.
    pub fn new_context(&self, p: &ContextParams) -> Result<Context<'_>, String> {
        // SAFETY: llama.cpp's default context params with plain numeric fields changed; a null
        // result is an error.
        let ctx = unsafe {
            let mut params = sys::llama_context_default_params();
            params.n_ctx = p.n_ctx;
            params.n_batch = p.n_ctx;
            params.n_seq_max = p.n_seq_max;
            params.kv_unified = true;
            params.n_threads = p.threads;
            params.n_threads_batch = p.threads;
            sys::llama_init_from_model(self.ptr.as_ptr(), params)
        };
        let ptr = NonNull::new(ctx).ok_or("llama.cpp could not create a context with these settings")?;
        Ok(Context { ptr, model: self, hidden: false })
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: contexts borrow the model, so none outlives it.
        unsafe { sys::llama_model_free(self.ptr.as_ptr()) }
    }
}

/// The settings of a context.
#[derive(Debug, Clone, Copy)]
pub struct ContextParams {
    /// KV cache size and batch size, in tokens.
    pub n_ctx: u32,
    /// Sequences the cache holds (one unified cache shared by them).
    pub n_seq_max: u32,
    pub threads: i32,
}

/// An inference context: its KV cache and its last logits.
pub struct Context<'m> {
    ptr: NonNull<sys::llama_context>,
    model: &'m Model,
    /// `set_hidden`'s last value (llama.cpp aborts in debug builds when asked for hidden states
    /// it did not extract, so `hidden` checks this first).
    hidden: bool,
}

// SAFETY: a context has no thread affinity; `&mut self` on every call that uses it keeps it to
// one thread at a time.
unsafe impl Send for Context<'_> {}

impl Context<'_> {
    fn memory(&mut self) -> sys::llama_memory_t {
        // SAFETY: a live context; the memory handle lives as long as it.
        unsafe { sys::llama_get_memory(self.ptr.as_ptr()) }
    }

    /// Empties the KV cache.
    pub fn clear(&mut self) {
        let mem = self.memory();
        // SAFETY: this context's memory.
        unsafe { sys::llama_memory_clear(mem, true) }
    }

    /// Removes positions `from..` of sequence `seq` (`seq` None: of every sequence). False when
    /// the cache cannot remove part of a sequence.
    pub fn remove(&mut self, seq: Option<i32>, from: u32) -> bool {
        let mem = self.memory();
        let from = i32::try_from(from).unwrap_or(i32::MAX);
        // SAFETY: this context's memory; -1 means "every sequence" and "to the end".
        unsafe { sys::llama_memory_seq_rm(mem, seq.unwrap_or(-1), from, -1) }
    }

    /// Copies sequence `src` into `dst` (every position).
    pub fn copy(&mut self, src: i32, dst: i32) {
        let mem = self.memory();
        // SAFETY: this context's memory; sequence ids are checked by llama.cpp.
        unsafe { sys::llama_memory_seq_cp(mem, src, dst, -1, -1) }
    }

    /// Whether the next decodes also return each token's final hidden state (the output norm's
    /// result, before the vocabulary projection). llama.cpp then computes logits and hidden
    /// states for every token of the batch, whatever the batch asks for: about a quarter more
    /// work for a small model, so it is turned on only for the decodes that need it.
    pub fn set_hidden(&mut self, on: bool) {
        // SAFETY: a live context; the flag only changes what the next decode extracts.
        unsafe { sys::llama_set_embeddings(self.ptr.as_ptr(), on) }
        self.hidden = on;
    }

    /// Runs the batch; llama.cpp's status on failure (1: no room in the KV cache).
    pub fn decode(&mut self, batch: &Batch) -> Result<(), i32> {
        // SAFETY: the batch's arrays hold `n_tokens` valid entries (`Batch::add` keeps that).
        match unsafe { sys::llama_decode(self.ptr.as_ptr(), batch.raw) } {
            0 => Ok(()),
            status => Err(status),
        }
    }

    /// The logits after batch entry `i`, which must have asked for them.
    pub fn logits(&mut self, i: usize) -> Option<&[f32]> {
        let n = self.model.n_vocab();
        // SAFETY: llama.cpp returns null for an entry without logits, else `n_vocab` floats that
        // stay valid until the next decode (which needs `&mut self`).
        unsafe {
            let p = sys::llama_get_logits_ith(self.ptr.as_ptr(), i32::try_from(i).ok()?);
            (!p.is_null()).then(|| std::slice::from_raw_parts(p, n))
        }
    }
}

impl Context<'_> {
    /// The final hidden state after batch entry `i`, when the decode ran with `set_hidden(true)`.
    pub fn hidden(&mut self, i: usize) -> Option<&[f32]> {
        let n = self.model.n_embd();
        if !self.hidden {
            return None;
        }
        // SAFETY: llama.cpp returns null when the decode extracted no hidden states or `i` is not
        // an entry of the last batch, else `n_embd` floats that stay valid until the next decode.
        unsafe {
            let p = sys::llama_get_embeddings_ith(self.ptr.as_ptr(), i32::try_from(i).ok()?);
            (!p.is_null() && n > 0).then(|| std::slice::from_raw_parts(p, n))
        }
    }
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: owned, freed once.
        unsafe { sys::llama_free(self.ptr.as_ptr()) }
    }
}

/// Tokens to decode, each with its position, sequences and whether its logits are wanted.
pub struct Batch {
    raw: sys::llama_batch,
    capacity: usize,
    n_seq_max: usize,
}

impl Batch {
    pub fn new(capacity: usize, n_seq_max: usize) -> Result<Self, String> {
        let too_big = || format!("a batch of {capacity} tokens in {n_seq_max} sequences is too large");
        let (c, s) = (i32::try_from(capacity).map_err(|_| too_big())?, i32::try_from(n_seq_max).map_err(|_| too_big())?);
        // SAFETY: llama.cpp allocates arrays for `c` tokens of up to `s` sequences each.
        let raw = unsafe { sys::llama_batch_init(c, 0, s) };
        Ok(Self { raw, capacity, n_seq_max })
    }

    pub fn add(&mut self, token: Token, pos: usize, seqs: &[i32], logits: bool) -> Result<(), String> {
        let i = usize::try_from(self.raw.n_tokens).unwrap_or(usize::MAX);
        if i >= self.capacity {
            return Err(format!("the batch is full ({} tokens)", self.capacity));
        }
        if seqs.is_empty() || seqs.len() > self.n_seq_max {
            return Err(format!("a token belongs to 1 to {} sequences, not {}", self.n_seq_max, seqs.len()));
        }
        let pos = i32::try_from(pos).map_err(|_| format!("position {pos} is out of range"))?;
        // SAFETY: `i` < capacity, the length of every array; `seq_id[i]` has room for
        // `n_seq_max` >= seqs.len() ids.
        unsafe {
            *self.raw.token.add(i) = token;
            *self.raw.pos.add(i) = pos;
            *self.raw.n_seq_id.add(i) = seqs.len() as i32;
            let ids = *self.raw.seq_id.add(i);
            for (k, &s) in seqs.iter().enumerate() {
                *ids.add(k) = s;
            }
            *self.raw.logits.add(i) = i8::from(logits);
        }
        self.raw.n_tokens += 1;
        Ok(())
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: allocated by `llama_batch_init`, freed once.
        unsafe { sys::llama_batch_free(self.raw) }
    }
}

/// A conversation written by llama.cpp's `llama_chat_apply_template`: `template` is a built-in
/// template's name ("chatml", "llama3", ...) or a model's Jinja template, which llama.cpp maps to
/// the built-in it resembles (it does not run Jinja). `None` when llama.cpp knows no such
/// template.
pub fn apply_template(template: &str, messages: &[(&str, &str)], add_assistant: bool) -> Option<String> {
    let tmpl = CString::new(template).ok()?;
    let owned: Vec<(CString, CString)> =
        messages.iter().map(|(r, c)| Some((CString::new(*r).ok()?, CString::new(*c).ok()?))).collect::<Option<_>>()?;
    let chat: Vec<sys::llama_chat_message> = owned.iter().map(|(r, c)| sys::llama_chat_message { role: r.as_ptr(), content: c.as_ptr() }).collect();
    let mut room = 2 * messages.iter().map(|(r, c)| r.len() + c.len()).sum::<usize>() + 256;
    loop {
        let mut buf = vec![0u8; room];
        let length = i32::try_from(room).ok()?;
        // SAFETY: every pointer in `chat` points into `owned`, which outlives the call; the
        // buffer is `room` bytes long and llama.cpp writes at most `length` of them.
        let n = unsafe { sys::llama_chat_apply_template(tmpl.as_ptr(), chat.as_ptr(), chat.len(), add_assistant, buf.as_mut_ptr().cast(), length) };
        let n = usize::try_from(n).ok()?;
        if n <= room {
            buf.truncate(n);
            return String::from_utf8(buf).ok();
        }
        room = n;
    }
}
