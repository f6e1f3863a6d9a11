//! Model cards to HTML that can never run script or load remote content: raw HTML in the
//! Markdown is shown as text, links keep only safe schemes, a picture stored in the repository
//! itself is shown (through the download route, behind its gates), and every other image
//! becomes a link (a remote image would be a tracking pixel). The pages'
//! Content-Security-Policy (`img-src 'self'`) backs this up.

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, html};

/// Markdown without its YAML front matter, as sanitised HTML. Relative links point at the
/// repository's files: `files_base` (e.g. `/alice/m/resolve/<commit>/`) is put in front.
pub fn render_card(card: &str, files_base: &str) -> String {
    let body = strip_front_matter(card);
    let parser = Parser::new_ext(body, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH);
    let mut in_image = false;
    let events = parser.map(move |event| match event {
        // A picture of the repository's own files stays a picture.
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if own_file(&dest_url) => Event::Start(Tag::Image {
            link_type,
            dest_url: in_repository(dest_url, files_base),
            title,
            id,
        }),
        // Raw HTML, block or inline, is shown as the text it is.
        Event::Html(text) | Event::InlineHtml(text) => Event::Text(text),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: in_repository(safe_url(dest_url), files_base),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            dest_url,
            title,
            id,
            ..
        }) => {
            in_image = true;
            Event::Start(Tag::Link {
                link_type: LinkType::Inline,
                dest_url: in_repository(safe_url(dest_url), files_base),
                title,
                id,
            })
        }
        Event::End(TagEnd::Image) if in_image => {
            in_image = false;
            Event::End(TagEnd::Link)
        }
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

/// Keeps `http(s)`, `mailto`, fragments and relative links; anything else (`javascript:`,
/// `data:`, `vbscript:`...) becomes `#`.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme = lower.split_once(':').map(|(s, _)| s);
    let relative = scheme.is_none_or(|s| s.contains('/') || s.contains('?') || s.contains('#'));
    if relative || matches!(scheme, Some("http" | "https" | "mailto")) {
        url
    } else {
        CowStr::Borrowed("#")
    }
}

/// A relative path inside the repository (`assets/arch.png`, `./x.png`), never climbing out of
/// it: an image the page may load from the hub itself.
fn own_file(url: &str) -> bool {
    let url = url.trim();
    !url.is_empty()
        && !url.starts_with('/')
        && !url.starts_with('#')
        && !url.contains(':')
        && !url.contains('\\')
        && !url.split(['/', '?', '#']).any(|segment| segment == "..")
}

/// A relative link (`docs/a.md`, `./x.png`) made to point into the repository's files.
fn in_repository<'a>(url: CowStr<'a>, files_base: &str) -> CowStr<'a> {
    let relative = !url.starts_with('/')
        && !url.starts_with('#')
        && !url.contains(':')
        && !url.starts_with("//");
    if relative && !url.is_empty() {
        CowStr::from(format!("{files_base}{}", url.trim_start_matches("./")))
    } else {
        url
    }
}

pub fn strip_front_matter(card: &str) -> &str {
    if let Some(rest) = card.strip_prefix("---")
        && let Some(end) = rest.find("\n---")
    {
        let after = &rest[end + 4..];
        return after.strip_prefix('\n').unwrap_or(after);
    }
    card
}

#[cfg(test)]
mod tests {
    use super::render_card;

    #[test]
    fn scripts_and_remote_content_are_inert() {
        let html = render_card(
            "---\nlicense: mit\n---\n# Hi\n<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n[x](javascript:alert(1)) ![pixel](https://tracker.example/p.gif) [ok](https://example.org) [docs](./docs/a.md)",
            "/alice/m/resolve/abc/",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(
            html.contains("href=\"https://tracker.example/p.gif\""),
            "images become links: {html}"
        );
        assert!(html.contains("href=\"https://example.org\""));
        assert!(!html.contains("license: mit"));
        assert!(
            html.contains("href=\"/alice/m/resolve/abc/docs/a.md\""),
            "{html}"
        );
    }

    #[test]
    fn pictures_of_the_repository_show_and_others_stay_links() {
        let html = render_card(
            "![arch](assets/arch.png) ![up](../../other/x.png) ![abs](/api/v1/repos) ![far](https://example.org/x.png)",
            "/alice/m/resolve/abc/",
        );
        assert!(
            html.contains("<img src=\"/alice/m/resolve/abc/assets/arch.png\" alt=\"arch\""),
            "{html}"
        );
        assert_eq!(html.matches("<img").count(), 1, "{html}");
        assert!(
            html.contains("href=\"https://example.org/x.png\""),
            "{html}"
        );
    }
}
