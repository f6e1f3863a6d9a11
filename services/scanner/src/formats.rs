//! Format recognition by content, the extension cross-check, and dispatch to the scanners.

use std::io;

use crate::{
    Blob, Ctx, Verdict, archive, gguf, keras, numpy, openvino, pickle, protobuf, safetensors, text,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Empty,
    Zip,
    Tar,
    Gzip,
    Zlib,
    Zstd,
    /// lz4, xz and bzip2 streams (inflated and scanned).
    OtherCompression(&'static str),
    /// 7z archives (own bounded reader: members decoded and scanned).
    SevenZip,
    Pickle,
    /// Might be a protocol 0/1 pickle (no `\x80` marker): confirmed only if it parses.
    MaybePickle,
    Npy,
    Safetensors,
    Gguf,
    Hdf5,
    Onnx,
    /// Apple CoreML (a protobuf too, told from ONNX by its fields).
    CoreMl,
    TfLite,
    TfSavedModel,
    /// OpenVINO IR topology (`.xml`).
    OpenVino,
    Json,
    PythonSource,
    NativeCode,
    Unknown,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Empty => "empty",
            Format::Zip => "zip",
            Format::Tar => "tar",
            Format::Gzip => "gzip",
            Format::Zlib => "zlib",
            Format::Zstd => "zstd",
            Format::OtherCompression(name) => name,
            Format::SevenZip => "7z",
            Format::Pickle | Format::MaybePickle => "pickle",
            Format::Npy => "numpy-npy",
            Format::Safetensors => "safetensors",
            Format::Gguf => "gguf",
            Format::Hdf5 => "hdf5",
            Format::Onnx => "onnx",
            Format::CoreMl => "coreml",
            Format::TfLite => "tflite",
            Format::TfSavedModel => "tf-savedmodel",
            Format::OpenVino => "openvino-ir",
            Format::Json => "json",
            Format::PythonSource => "python-source",
            Format::NativeCode => "native-code",
            Format::Unknown => "unknown",
        }
    }
}

fn extension(path: &str) -> String {
    let file = path.rsplit(['/', '!']).next().unwrap_or(path);
    file.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '!']).next().unwrap_or(path)
}

/// Recognises a format from the first bytes (up to 512), the length and, only to tell apart
/// formats without a magic number (protobufs), the path.
///
/// The checks run in order of precedence: the first that matches wins.
pub fn detect(head: &[u8], len: u64, path: &str) -> Format {
    if head.is_empty() {
        return Format::Empty;
    }
    if let Some(format) = detect_archive_or_compression(head) {
        return format;
    }
    if let Some(format) = detect_binary_magic(head) {
        return format;
    }
    // Only files without a magic number get this far: the extension is worked out once, here.
    let ext = extension(path);
    if let Some(format) = detect_serialised_header(head, len, &ext) {
        return format;
    }
    if let Some(format) = detect_by_name(head, path, &ext) {
        return format;
    }
    detect_weak_signature(head, len, &ext)
}

/// Archives and compressed streams, recognised by their magic numbers.
fn detect_archive_or_compression(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Some(Format::Zip);
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Some(Format::Tar);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some(Format::Gzip);
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Some(Format::Zstd);
    }
    // A zlib header: deflate method, a window size, and a check value that divides by 31.
    if head.len() >= 2
        && head[0] == 0x78
        && matches!(head[1], 0x01 | 0x5e | 0x9c | 0xda)
        && (u16::from(head[0]) * 256 + u16::from(head[1])) % 31 == 0
    {
        return Some(Format::Zlib);
    }
    // bzip2: "BZh", a block size digit, then a block or end-of-stream magic (not just "BZh").
    if head.len() >= 10
        && head.starts_with(b"BZh")
        && (b'1'..=b'9').contains(&head[3])
        && (head[4..10] == *b"1AY&SY" || head[4..10] == *b"\x17rE8P\x90")
    {
        return Some(Format::OtherCompression("bzip2"));
    }
    if head.starts_with(b"7z\xbc\xaf\x27\x1c") {
        return Some(Format::SevenZip);
    }
    for (magic, name) in [
        (&b"\xfd7zXZ\x00"[..], "xz"),
        (&b"\x04\x22\x4d\x18"[..], "lz4"),
    ] {
        if head.starts_with(magic) {
            return Some(Format::OtherCompression(name));
        }
    }
    None
}

/// Model formats and native code with a fixed magic number.
fn detect_binary_magic(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"GGUF") {
        return Some(Format::Gguf);
    }
    if head.starts_with(b"\x93NUMPY") {
        return Some(Format::Npy);
    }
    if head.starts_with(b"\x89HDF\r\n\x1a\n") {
        return Some(Format::Hdf5);
    }
    if head.len() >= 8 && &head[4..8] == b"TFL3" {
        return Some(Format::TfLite);
    }
    if head.starts_with(b"\x7fELF")
        || head.starts_with(b"MZ")
        || head.starts_with(&[0xcf, 0xfa, 0xed, 0xfe])
    {
        return Some(Format::NativeCode);
    }
    None
}

/// Safetensors (by its JSON header, else by its name) and pickles with a protocol marker.
fn detect_serialised_header(head: &[u8], len: u64, ext: &str) -> Option<Format> {
    // An 8-byte length then a JSON object: `{"` keeps random tensor bytes from matching.
    if head.len() >= 10 && head[8] == b'{' && (head[9] == b'"' || head[9] == b'}') {
        return Some(Format::Safetensors);
    }
    if matches!(head, [0x80, protocol, ..] if *protocol <= 5) {
        return Some(Format::Pickle);
    }
    // A file named .safetensors whose header is broken is still judged as safetensors.
    if ext == "safetensors" && len >= 8 {
        return Some(Format::Safetensors);
    }
    None
}

/// Formats without a magic number, told apart by the file's name (or a protobuf's shape).
fn detect_by_name(head: &[u8], path: &str, ext: &str) -> Option<Format> {
    let name = file_name(path);
    if ext == "mlmodel" {
        return Some(Format::CoreMl);
    }
    if ext == "onnx" || (ext.is_empty() && protobuf::looks_like_onnx(head)) {
        return Some(Format::Onnx);
    }
    if ext == "pb" || name == "saved_model.pb" || protobuf::looks_like_saved_model(head) {
        return Some(Format::TfSavedModel);
    }
    if ext == "py" {
        return Some(Format::PythonSource);
    }
    None
}

/// The last, weakest guesses: JSON text, a pickle without a protocol marker, an ONNX protobuf.
fn detect_weak_signature(head: &[u8], len: u64, ext: &str) -> Format {
    if openvino::looks_like_ir(head) {
        return Format::OpenVino;
    }
    let first_text = head.iter().find(|b| !b.is_ascii_whitespace());
    if first_text == Some(&b'{') && (ext == "json" || std::str::from_utf8(head).is_ok()) && len > 1
    {
        return Format::Json;
    }
    if pickle::could_start_pickle(head) {
        return Format::MaybePickle;
    }
    if protobuf::looks_like_onnx(head) {
        return Format::Onnx;
    }
    Format::Unknown
}

/// A file whose content contradicts its extension is itself a finding.
pub fn check_extension(ctx: &mut Ctx, format: Format, path: &str) {
    let ext = extension(path);
    let expected: &[Format] = match ext.as_str() {
        "safetensors" => &[Format::Safetensors],
        "gguf" => &[Format::Gguf],
        "npy" => &[Format::Npy],
        "npz" | "keras" | "zip" => &[Format::Zip],
        "pt" | "pth" | "ckpt" => &[
            Format::Zip,
            Format::Pickle,
            Format::MaybePickle,
            Format::Tar,
        ],
        "pkl" | "pickle" => &[Format::Pickle, Format::MaybePickle, Format::Zip],
        "joblib" => &[
            Format::Pickle,
            Format::MaybePickle,
            Format::Zlib,
            Format::Gzip,
            Format::OtherCompression("xz"),
            Format::OtherCompression("bzip2"),
            Format::OtherCompression("lz4"),
        ],
        "h5" | "hdf5" => &[Format::Hdf5],
        "tar" => &[Format::Tar],
        "gz" | "tgz" => &[Format::Gzip],
        "xz" => &[Format::OtherCompression("xz")],
        "bz2" => &[Format::OtherCompression("bzip2")],
        "7z" => &[Format::SevenZip],
        "onnx" => &[Format::Onnx],
        "mlmodel" => &[Format::CoreMl],
        "tflite" => &[Format::TfLite],
        "json" => &[Format::Json],
        _ => return,
    };
    if format != Format::Empty && !expected.contains(&format) {
        ctx.add(
            "extension-mismatch",
            Verdict::Suspicious,
            "",
            format!(
                "the file is named .{ext} but its content is {}",
                format.name()
            ),
            Some(format!(".{ext} vs {}", format.name())),
        );
    }
}

/// Runs the scanner for `format`; returns the (possibly refined) format name.
pub fn run(
    ctx: &mut Ctx,
    format: Format,
    blob: &mut dyn Blob,
    len: u64,
    path: &str,
) -> io::Result<&'static str> {
    Ok(match format {
        Format::Zip => archive::scan_zip(ctx, blob, len)?,
        Format::Tar => archive::scan_tar(ctx, blob, len)?,
        Format::Gzip => archive::scan_compressed(ctx, blob, len, path, archive::Wrapper::Gzip)?,
        Format::Zlib => archive::scan_compressed(ctx, blob, len, path, archive::Wrapper::Zlib)?,
        Format::Zstd => archive::scan_compressed(ctx, blob, len, path, archive::Wrapper::Zstd)?,
        Format::OtherCompression("lz4") => {
            archive::scan_compressed(ctx, blob, len, path, archive::Wrapper::Lz4)?
        }
        Format::OtherCompression("xz") => {
            archive::scan_compressed(ctx, blob, len, path, archive::Wrapper::Xz)?
        }
        Format::OtherCompression("bzip2") => {
            archive::scan_compressed(ctx, blob, len, path, archive::Wrapper::Bzip2)?
        }
        Format::SevenZip => archive::scan_sevenz(ctx, blob, len)?,
        Format::OtherCompression(name) => {
            ctx.add(
                "unsupported-compression",
                Verdict::Suspicious,
                "",
                format!("{name}-compressed content cannot be inspected: whatever it holds was not scanned"),
                Some(name.to_string()),
            );
            name
        }
        Format::Pickle => pickle::scan_file(ctx, blob, len)?,
        Format::MaybePickle => pickle::scan_maybe(ctx, blob, len)?,
        Format::Npy => numpy::scan_npy(ctx, blob, len)?,
        Format::Safetensors => {
            safetensors::scan(ctx, blob, len)?;
            "safetensors"
        }
        Format::Gguf => {
            gguf::scan(ctx, blob, len)?;
            "gguf"
        }
        Format::Hdf5 => keras::scan_hdf5(ctx, blob, len)?,
        Format::Onnx if extension(path) != "onnx" && protobuf::coreml_shape(blob, len)?.is_ok() => {
            "coreml"
        }
        Format::Onnx => {
            protobuf::scan_onnx(ctx, blob, len, path)?;
            "onnx"
        }
        Format::CoreMl => {
            protobuf::scan_coreml(ctx, blob, len)?;
            "coreml"
        }
        Format::TfLite => {
            protobuf::scan_tflite(ctx, blob, len)?;
            "tflite"
        }
        Format::TfSavedModel => {
            protobuf::scan_saved_model(ctx, blob, len)?;
            "tf-savedmodel"
        }
        Format::OpenVino => {
            openvino::scan(ctx, blob, len)?;
            "openvino-ir"
        }
        Format::Json => text::scan_json(ctx, blob, len, path)?,
        Format::PythonSource => {
            ctx.add(
                "executable-content",
                Verdict::Suspicious,
                "",
                "Python source: it runs if a loader trusts remote code; review it before use",
                None,
            );
            "python-source"
        }
        Format::NativeCode => {
            ctx.add("native-code", Verdict::Suspicious, "", "a native executable or shared library (e.g. a custom operator): it runs with full privileges if loaded", None);
            "native-code"
        }
        Format::Empty | Format::Unknown => format.name(),
    })
}
