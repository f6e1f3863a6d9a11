//! Hostile inputs never panic: expressions, cards, policies, GGUF headers and licence texts.

use kaiyuan_license::expr::{interpret, normalize};
use kaiyuan_license::{Policy, card, detect, gguf};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn expressions_parse_or_fail_cleanly(s in "[ -~]{0,80}", t in "(MIT|Apache-2.0|AND|OR|WITH|\\(|\\)|/|\\+|apache-2.0|llama3|other| ){0,12}") {
        let _ = normalize(&s);
        let _ = normalize(&t);
        let _ = interpret(&t, Some(&s));
    }

    #[test]
    fn cards_parse_or_fail_cleanly(body in "[ -~\\n]{0,200}") {
        let text = format!("---\n{body}\n---\n# card");
        if let Ok(meta) = card::parse(&text) {
            let _ = meta.multimodal();
        }
        let _ = Policy::from_json_or_yaml(&body);
    }

    #[test]
    fn gguf_headers_never_over_read(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut data = b"GGUF\x03\x00\x00\x00".to_vec();
        data.extend(bytes);
        let _ = gguf::licence_keys(&data[..]);
    }

    #[test]
    fn arbitrary_texts_are_detected_or_not(words in proptest::collection::vec("[a-zA-Z]{1,9}", 0..60)) {
        let _ = detect::detect_text("LICENSE", &words.join(" "));
    }
}

#[test]
fn deeply_nested_and_huge_expressions_are_bounded() {
    let nested = format!("{}MIT{}", "(".repeat(200), ")".repeat(200));
    let _ = normalize(&nested);
    let wide = (0..12)
        .map(|i| {
            format!(
                "(MIT OR Apache-2.0 OR BSD-3-Clause OR ISC{})",
                if i % 2 == 0 { "" } else { " OR Zlib" }
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    if let kaiyuan_license::expr::Declared::Valid { expr, .. } = normalize(&wide) {
        assert!(expr.alternatives().len() <= 256);
    }
}
