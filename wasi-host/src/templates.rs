//! Which of the guest's chat templates a model speaks, decided by llama.cpp.
//!
//! The guest writes its prompt in one of a few families (`classifier_guest::Template`). Each
//! family must write exactly what llama.cpp's built-in template of the same family writes for the
//! same turns, and `--template auto` (the default) picks the family whose text llama.cpp writes
//! for the model's own template (`tokenizer.chat_template` in the GGUF), so a model swap needs no
//! flag when its family is one of these.

use classifier_guest::Template;

use crate::llama;

/// The turns both sides write when comparing: a system turn, a user turn and an answer that has
/// only begun (the guest's prompt stops after `Category:`).
const PROBE: [(&str, &str); 3] =
    [("system", "You route requests.\nAnswer with one word."), ("user", "Request:\nWhat is 2 + 2?"), ("assistant", "Category:")];

/// What closes the answer turn in each family (llama.cpp writes it after the answer; the guest's
/// prompt stops before it).
fn end_of_answer(t: Template) -> &'static str {
    match t {
        Template::Chatml => "<|im_end|>\n",
        Template::Llama3 => "<|eot_id|>",
        Template::Mistral | Template::MistralV7 => "</s>",
        Template::Gemma => "<end_of_turn>\n",
        Template::Plain => "",
    }
}

/// Whether llama.cpp writes the probe turns with `template` (a built-in name or a model's Jinja
/// template) exactly as the guest writes them with `t`.
pub fn writes_as(template: &str, t: Template) -> bool {
    if t == Template::Plain {
        return false;
    }
    let Some(written) = llama::apply_template(template, &PROBE, false) else { return false };
    written == format!("{}{}", t.render(PROBE[0].1, PROBE[1].1, PROBE[2].1), end_of_answer(t))
}

/// The family a model's own chat template belongs to, with its `--template` name.
pub fn detect(model_template: &str) -> Option<(&'static str, Template)> {
    Template::ALL.iter().copied().find(|(_, t)| writes_as(model_template, *t))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// llama.cpp's name for the family's built-in template.
    fn llama_name(t: Template) -> Option<&'static str> {
        match t {
            Template::Chatml => Some("chatml"),
            Template::Llama3 => Some("llama3"),
            Template::Mistral => Some("mistral-v3"),
            Template::MistralV7 => Some("mistral-v7"),
            Template::Gemma => Some("gemma"),
            Template::Plain => None,
        }
    }

    #[test]
    fn every_family_writes_what_llama_cpp_writes() {
        for (name, t) in Template::ALL {
            let Some(builtin) = llama_name(t) else { continue };
            let guest = format!("{}{}", t.render(PROBE[0].1, PROBE[1].1, PROBE[2].1), end_of_answer(t));
            let theirs = llama::apply_template(builtin, &PROBE, false);
            assert_eq!(theirs.as_deref(), Some(guest.as_str()), "{name} against llama.cpp's {builtin}");
            assert_eq!(detect(builtin), Some((name, t)), "{name}");
        }
    }

    /// Abridged Jinja templates of the models named: the parts llama.cpp recognises a family by
    /// (the whole templates run to kilobytes).
    #[test]
    fn model_templates_are_recognised() {
        let cases = [
            // SmolLM2-135M-Instruct, Qwen2.5-*-Instruct
            ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}", "chatml"),
            // Llama-3.1-8B-Instruct
            ("{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}{%- endfor %}", "llama3"),
            // Mistral-7B-Instruct-v0.3
            ("{{- bos_token }}{%- for message in loop_messages %}{%- if tools is not none %}{{- '[AVAILABLE_TOOLS] [' }}{%- endif %}{%- if message['role'] == 'user' %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content']|trim + eos_token}}{%- endif %}{%- endfor %}", "mistral"),
            // Mistral-Small-24B-Instruct-2501
            ("{{- bos_token }}{%- if system_message is defined %}{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}{%- endif %}{%- for message in loop_messages %}{%- if message['role'] == 'user' %}{{- '[INST]' + message['content'] + '[/INST]' }}{%- endif %}{%- endfor %}", "mistral-v7"),
            // gemma-2-2b-it
            ("{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}", "gemma"),
        ];
        for (jinja, want) in cases {
            assert_eq!(detect(jinja).map(|(n, _)| n), Some(want), "{jinja}");
        }
        assert_eq!(detect("{{ messages }} an unknown format"), None);
    }

    #[test]
    fn auto_takes_the_models_family_and_an_explicit_choice_wins() {
        use crate::classifier::resolve_template;
        let llama3 = "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}";
        assert_eq!(resolve_template("auto", Some(llama3)).unwrap(), "llama3");
        assert_eq!(resolve_template("chatml", Some(llama3)).unwrap(), "chatml");
        assert_eq!(resolve_template("plain", None).unwrap(), "plain");
        let no_template = resolve_template("auto", None).unwrap_err().to_string();
        assert!(no_template.contains("no chat template"), "{no_template}");
        let unknown = resolve_template("auto", Some("{{ messages }}")).unwrap_err().to_string();
        assert!(unknown.contains("none of the known families") && unknown.contains("mistral-v7"), "{unknown}");
        assert!(resolve_template("vicuna", Some(llama3)).is_err());
    }
}
