#![no_main]
//! Feeds the streaming xorb validator in two pieces (the first byte picks the split point):
//! it must never panic, and the outcome must not depend on where the body was split.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut) * body.len() / 255;
    let mut split = kaiyuan_xet::XorbValidator::new();
    let split = split
        .feed(&body[..cut])
        .and_then(|()| split.feed(&body[cut..]))
        .and_then(|()| split.finish());
    let mut whole = kaiyuan_xet::XorbValidator::new();
    let whole = whole.feed(body).and_then(|()| whole.finish());
    assert_eq!(split.map_err(|e| e.to_string()), whole.map_err(|e| e.to_string()));
});
