//! Chat templates are Jinja2 programs: a sandbox escape reaches the interpreter through dunder
//! attributes and template internals (CVE-2024-34359, CVE-2026-5760).

use crate::{Ctx, Verdict};

/// Attribute and name patterns that ordinary chat templates never use.
const ESCAPES: &[&str] = &[
    "__class__",
    "__globals__",
    "__builtins__",
    "__subclasses__",
    "__init__",
    "__mro__",
    "__base__",
    "__bases__",
    "__import__",
    "__getattribute__",
    "__dict__",
    "__code__",
    "__reduce__",
    "mro(",
    ".mro",
    "self._",
    "cycler.",
    "joiner.",
    "namespace.__",
    "lipsum",
    "os.popen",
    "popen(",
    "subprocess",
    "eval(",
    "exec(",
    "import os",
    "request.application",
    "config.__",
    "url_for.",
    "get_flashed_messages",
];

/// Whether `needle` occurs in `haystack` not as the tail of a longer identifier
/// (`retrieval(` must not match `eval(`).
fn contains_word(haystack: &str, needle: &str) -> bool {
    let starts_with_word = needle.chars().next().is_some_and(|c| c.is_alphanumeric());
    haystack.match_indices(needle).any(|(i, _)| {
        !starts_with_word
            || haystack[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

pub fn check_template(ctx: &mut Ctx, template: &str, location: &str) {
    let compact: String = template.chars().filter(|c| !c.is_whitespace()).collect();
    let lowered = compact.to_lowercase();
    for pattern in ESCAPES {
        let needle: String = pattern
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_lowercase();
        if contains_word(&lowered, &needle) {
            ctx.add(
                "template-injection",
                Verdict::Malicious,
                location,
                format!("the chat template (a Jinja2 program run by inference servers) uses `{pattern}`, a sandbox-escape pattern that reaches Python"),
                Some(pattern.to_string()),
            );
            return;
        }
    }
    // `['__x__']`, `|attr('__x__')` and string-joined dunders hide attribute names.
    if lowered.contains("|attr(")
        || lowered.contains("['__")
        || lowered.contains("[\"__")
        || lowered.contains("'_'~'_'")
    {
        ctx.add(
            "template-injection",
            Verdict::Malicious,
            location,
            "the chat template reaches attributes by computed names (attr filter or subscripted dunders), a sandbox-escape technique",
            Some("computed attribute access".into()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn verdict(template: &str) -> Verdict {
        let limits = Limits::default();
        let mut ctx = Ctx::new_for_tests(&limits);
        check_template(&mut ctx, template, "t");
        ctx.worst()
    }

    #[test]
    fn ordinary_templates_are_clean() {
        let llama = "{%- set ns = namespace(found=false) %}{%- for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' + message['content'] | trim }}{%- if message.role == 'tool' %}retrieval(results){% endif %}{%- endfor %}{{ raise_exception('bad role') if false }}";
        assert_eq!(verdict(llama), Verdict::Clean);
    }

    #[test]
    fn sandbox_escapes_are_malicious() {
        for t in [
            "{{ self.__init__.__globals__.__builtins__ }}",
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "{{ ''|attr('__class__') }}",
            "{{ x['__class__'] }}",
            "{{ lipsum.__globals__ }}",
        ] {
            assert_eq!(verdict(t), Verdict::Malicious, "{t}");
        }
    }
}
