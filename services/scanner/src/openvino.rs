//! OpenVINO IR: the `.xml` topology (the `.bin` beside it is raw weights, referenced by offset
//! and size from `Const` layers, and scans as unknown data).
//!
//! Recognised by structure: an XML document whose root element is `<net>`. Checked without an
//! XML library: tags balance, the root is `<net>` with `<layers>`, nesting stays shallow (a
//! real IR is four or five levels deep; thousands of levels are a resource attack on the
//! parser), no DOCTYPE (entity expansion), and every layer's operation set is a standard
//! `opsetN` (anything else needs a custom-operation library loaded into the runtime).

use std::io::{self, Read, SeekFrom};

use crate::{Blob, Ctx, Verdict};

/// Deeper than any real IR; deeper documents are reported (and not walked further).
const MAX_DEPTH: usize = 64;

/// Whether the first bytes look like an IR: optional BOM, XML declaration and comments, then
/// `<net`.
pub fn looks_like_ir(head: &[u8]) -> bool {
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let Ok(text) = std::str::from_utf8(&text[..text.len().min(512)])
        .or_else(|e| std::str::from_utf8(&text[..e.valid_up_to()]))
    else {
        return false;
    };
    let mut rest = text.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("<?") {
            match after.find("?>") {
                Some(end) => rest = after[end + 2..].trim_start(),
                None => return false,
            }
        } else if let Some(after) = rest.strip_prefix("<!--") {
            match after.find("-->") {
                Some(end) => rest = after[end + 3..].trim_start(),
                None => return false,
            }
        } else {
            return rest.starts_with("<net ") || rest.starts_with("<net>");
        }
    }
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[at..].find('"')?;
    Some(&tag[at..at + end])
}

pub fn scan(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64) -> io::Result<()> {
    if len > ctx.limits.max_structure_bytes {
        ctx.add(
            "openvino-malformed",
            Verdict::Suspicious,
            "",
            "the IR topology is too large to inspect",
            None,
        );
        return Ok(());
    }
    blob.seek(SeekFrom::Start(0))?;
    let mut raw = Vec::with_capacity(len as usize);
    blob.take(len).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let malformed = |ctx: &mut Ctx, why: String| -> io::Result<()> {
        ctx.add("openvino-malformed", Verdict::Malformed, "", why, None);
        Ok(())
    };
    let mut stack: Vec<&str> = Vec::new();
    let mut saw_layers = false;
    let mut rest = &text[..];
    let mut root_closed = false;
    while let Some(open) = rest.find('<') {
        rest = &rest[open..];
        let (tag, after) = if let Some(r) = rest.strip_prefix("<!--") {
            match r.find("-->") {
                Some(end) => ("", &r[end + 3..]),
                None => return malformed(ctx, "an unterminated comment".into()),
            }
        } else if let Some(r) = rest.strip_prefix("<![CDATA[") {
            match r.find("]]>") {
                Some(end) => ("", &r[end + 3..]),
                None => return malformed(ctx, "an unterminated CDATA section".into()),
            }
        } else {
            match rest.find('>') {
                Some(end) => (&rest[1..end], &rest[end + 1..]),
                None => return malformed(ctx, "an unterminated tag".into()),
            }
        };
        rest = after;
        if tag.is_empty() || tag.starts_with('?') {
            continue;
        }
        if tag.starts_with('!') {
            ctx.add(
                "openvino-doctype",
                Verdict::Suspicious,
                "",
                "a DOCTYPE declaration in an IR (entity expansion or external entities); OpenVINO never writes one",
                Some(tag.chars().take(80).collect()),
            );
            continue;
        }
        if root_closed {
            return malformed(ctx, "content after the root element".into());
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                _ => {
                    return malformed(
                        ctx,
                        format!("a closing </{}> that does not match", name.trim()),
                    );
                }
            }
            root_closed = stack.is_empty();
            continue;
        }
        let name = tag
            .split(|c: char| c.is_ascii_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        if stack.is_empty() && name != "net" {
            return malformed(ctx, format!("the root element is <{name}>, not <net>"));
        }
        saw_layers |= name == "layers";
        if name == "layer" {
            let version = attr(tag, "version").unwrap_or("");
            let standard = version
                .strip_prefix("opset")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !standard {
                ctx.add(
                    "openvino-custom-op",
                    Verdict::Suspicious,
                    attr(tag, "name").unwrap_or(""),
                    "a layer outside the standard operation sets: it needs a custom-operation library loaded into the runtime",
                    Some(format!(
                        "{} ({version})",
                        attr(tag, "type").unwrap_or("?")
                    )),
                );
            }
        }
        if !tag.ends_with('/') {
            stack.push(name);
            if stack.len() > MAX_DEPTH {
                ctx.add(
                    "structure-too-deep",
                    Verdict::Suspicious,
                    "",
                    format!("elements nest more than {MAX_DEPTH} levels deep: a resource attack on recursive parsers"),
                    None,
                );
                return Ok(());
            }
        }
    }
    if !root_closed || !stack.is_empty() {
        malformed(ctx, "the <net> element is not closed".into())?;
    } else if !saw_layers {
        malformed(ctx, "no <layers> element".into())?;
    }
    Ok(())
}
