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

pub fn check_template(ctx: &mut Ctx, template: &str, location: &str) {
    let compact: String = template.chars().filter(|c| !c.is_whitespace()).collect();
    let lowered = compact.to_lowercase();
    for pattern in ESCAPES {
        let needle: String = pattern
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_lowercase();
        if lowered.contains(&needle) {
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
