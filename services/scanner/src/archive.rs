//! Archives: zip (own reader with PyTorch/miniz semantics: the central directory wins, and every
//! disagreement with the local headers is reported), tar, 7z (`sevenz` reads it) and gzip.
//! Members are checked for path traversal, links, devices and bomb ratios, then scanned
//! recursively within the limits.

use std::collections::HashSet;
use std::io::{self, Read, Seek, SeekFrom};

use flate2::read::{DeflateDecoder, GzDecoder, ZlibDecoder};

use crate::formats::Format;
use crate::sevenz::{self, Member as SevenZipMember};
use crate::{Blob, Ctx, Section, Verdict, pickle, read_at};

/// Reports a member whose Unix file type (`mode & 0o170000`, zip and 7z) is a device, FIFO or
/// socket; whether it was one.
fn report_special_mode(ctx: &mut Ctx, name: &str, file_type: u32) -> bool {
    let special = matches!(file_type, 0o020000 | 0o060000 | 0o010000 | 0o140000);
    if special {
        ctx.add(
            "archive-special-file",
            Verdict::Malicious,
            name,
            "member is a device, FIFO or socket",
            Some(name.to_string()),
        );
    }
    special
}

/// Reports a member whose path would land outside the extraction directory (zip, tar, 7z).
fn report_unsafe_path(ctx: &mut Ctx, name: &str) {
    if let Some(why) = unsafe_path(name) {
        ctx.add(
            "archive-path-traversal",
            Verdict::Malicious,
            name,
            format!("member path is {why}: extracting it writes outside the target directory"),
            Some(name.to_string()),
        );
    }
}

/// Why a member path is unsafe to extract, if it is.
fn unsafe_path(name: &str) -> Option<&'static str> {
    if name.starts_with('/') || name.starts_with('\\') {
        return Some("an absolute path");
    }
    if name.len() >= 2 && name.as_bytes()[1] == b':' && name.as_bytes()[0].is_ascii_alphabetic() {
        return Some("a drive-letter path");
    }
    if name.contains('\\') {
        return Some("a backslash path");
    }
    if name.split('/').any(|seg| seg == "..") {
        return Some("a `..` segment that escapes the extraction directory");
    }
    if name.contains('\0') {
        return Some("a NUL byte");
    }
    None
}

#[derive(Clone)]
struct ZipEntry {
    name: String,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
    local_offset: u64,
    mode: u32,
    made_by_unix: bool,
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64le(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

/// Locates and parses the central directory; `Err` is a malformed-archive message.
fn read_central_directory(
    ctx: &Ctx,
    blob: &mut dyn Blob,
    len: u64,
) -> io::Result<Result<Vec<ZipEntry>, String>> {
    let tail_len = len.min(65_557);
    let tail = read_at(blob, len - tail_len, tail_len, len, tail_len)?;
    let Some(eocd) = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
    else {
        return Ok(Err("no end-of-central-directory record".into()));
    };
    let mut count = u16le(&tail, eocd + 10) as u64;
    let mut cd_size = u32le(&tail, eocd + 12) as u64;
    let mut cd_offset = u32le(&tail, eocd + 16) as u64;
    if (count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff)
        && eocd >= 20
        && tail[eocd - 20..].starts_with(b"PK\x06\x07")
    {
        let record_at = u64le(&tail, eocd - 20 + 8);
        let record = match read_at(blob, record_at, 56, len, 56) {
            Ok(r) if r.starts_with(b"PK\x06\x06") => r,
            _ => return Ok(Err("bad zip64 end-of-central-directory record".into())),
        };
        count = u64le(&record, 32);
        cd_size = u64le(&record, 40);
        cd_offset = u64le(&record, 48);
    }
    if count as usize > ctx.limits.archive_max_members {
        return Ok(Err(format!(
            "{count} members exceed the limit of {}",
            ctx.limits.archive_max_members
        )));
    }
    if cd_offset.checked_add(cd_size).is_none_or(|end| end > len)
        || cd_size > ctx.limits.max_structure_bytes
    {
        return Ok(Err("the central directory lies outside the file".into()));
    }
    let cd = read_at(blob, cd_offset, cd_size, len, cd_size)?;
    let mut entries = Vec::with_capacity(count.min(4096) as usize);
    let mut at = 0usize;
    for _ in 0..count {
        if at + 46 > cd.len() || !cd[at..].starts_with(b"PK\x01\x02") {
            return Ok(Err("truncated or corrupt central directory".into()));
        }
        let made_by = u16le(&cd, at + 4);
        let (name_len, extra_len, comment_len) = (
            u16le(&cd, at + 28) as usize,
            u16le(&cd, at + 30) as usize,
            u16le(&cd, at + 32) as usize,
        );
        let end = at + 46 + name_len + extra_len + comment_len;
        if end > cd.len() {
            return Ok(Err("central directory entry runs past its end".into()));
        }
        let name = String::from_utf8_lossy(&cd[at + 46..at + 46 + name_len]).into_owned();
        let mut entry = ZipEntry {
            name,
            flags: u16le(&cd, at + 8),
            method: u16le(&cd, at + 10),
            crc: u32le(&cd, at + 16),
            compressed: u32le(&cd, at + 20) as u64,
            uncompressed: u32le(&cd, at + 24) as u64,
            local_offset: u32le(&cd, at + 42) as u64,
            mode: u32le(&cd, at + 38) >> 16,
            made_by_unix: made_by >> 8 == 3,
        };
        // zip64 extended information replaces the saturated fields, in order.
        let extra = &cd[at + 46 + name_len..at + 46 + name_len + extra_len];
        let mut e = 0usize;
        while e + 4 <= extra.len() {
            let (id, size) = (u16le(extra, e), u16le(extra, e + 2) as usize);
            let body = &extra[e + 4..(e + 4 + size).min(extra.len())];
            if id == 1 {
                let mut k = 0usize;
                for field in [
                    &mut entry.uncompressed,
                    &mut entry.compressed,
                    &mut entry.local_offset,
                ] {
                    if *field == 0xffff_ffff && k + 8 <= body.len() {
                        *field = u64le(body, k);
                        k += 8;
                    }
                }
            }
            e += 4 + size;
        }
        entries.push(entry);
        at = end;
    }
    Ok(Ok(entries))
}

/// What kind of zip this is, from its member names.
fn zip_kind(names: &[&str]) -> &'static str {
    let has = |suffix: &str| names.iter().any(|n| n.ends_with(suffix));
    if has("data.pkl") && (has("/version") || names.iter().any(|n| n.contains("/data/"))) {
        if names.iter().any(|n| n.contains("/code/")) {
            "torchscript"
        } else {
            "pytorch-zip"
        }
    } else if names.contains(&"config.json")
        && (names.contains(&"metadata.json") || has(".weights.h5"))
    {
        "keras"
    } else if !names.is_empty() && names.iter().all(|n| n.ends_with(".npy")) {
        "numpy-npz"
    } else {
        "zip"
    }
}

/// PyTorch tensor storages (`<archive>/data/<key>`): raw bytes, only checked for hidden pickles.
fn is_storage_member(name: &str) -> bool {
    name.rsplit_once("/data/")
        .is_some_and(|(_, key)| !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric()))
}

pub(crate) fn scan_zip(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64) -> io::Result<&'static str> {
    let entries = match read_central_directory(ctx, blob, len)? {
        Ok(entries) => entries,
        Err(why) => {
            ctx.add(
                "zip-malformed",
                Verdict::Malformed,
                "",
                format!("invalid zip: {why}"),
                None,
            );
            return Ok("zip");
        }
    };
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let kind = zip_kind(&names);
    let refs_before = ctx.storage_refs.len();
    check_hidden_entries(ctx, blob, len, &entries)?;
    let mut seen = HashSet::new();
    for entry in &entries {
        if !seen.insert(entry.name.as_str()) {
            ctx.add(
                "archive-duplicate-member",
                Verdict::Suspicious,
                &entry.name,
                "two members have the same name; loaders disagree on which one wins",
                Some(entry.name.clone()),
            );
        }
        check_zip_entry(ctx, blob, len, entry, kind)?;
    }
    if kind == "pytorch-zip" {
        let refs = ctx.storage_refs.split_off(refs_before);
        // Bytes no tensor refers to are scanned by content, whatever their name.
        // Raw tensor bytes that merely fail to parse are not findings; anything found is.
        for entry in check_storages(ctx, &entries, &refs) {
            let before = ctx.findings_len();
            check_zip_entry(ctx, blob, len, &entry, "zip")?;
            if matches!(ctx.worst_since(before), Verdict::Malformed | Verdict::Error) {
                ctx.truncate_findings(before);
            }
        }
    }
    Ok(kind)
}

/// Operator namespaces that ship with PyTorch itself.
const TORCH_OP_NAMESPACES: &[&str] = &[
    "aten",
    "prim",
    "quantized",
    "_quantized",
    "prepacked",
    "quantized_decomposed",
    "_caffe2",
    "profiler",
    "cuda",
    "mkldnn",
    "mkldnn_prepacked",
    "sparse",
    "fbgemm",
    "xnnpack",
    "vulkan_prepack",
    "torchvision",
    "torchaudio",
];

/// TorchScript source (`code/*.py` of a TorchScript archive): `torch.jit.load` compiles it
/// with the TorchScript compiler, which knows only tensor operators and builtins, no Python
/// imports. What can reach outside the model is named: operators that read files, operators
/// from namespaces PyTorch does not ship (they need a native library), and Python-only
/// constructs the compiler would not accept (a file that is not what it claims).
fn check_torchscript_code(ctx: &mut Ctx, name: &str, code: &str) {
    for (n, line) in code.lines().enumerate().take(200_000) {
        let at = || format!("{name} line {}", n + 1);
        if ["from_file", "_load_for_mobile", "load_library", "_jit_pass"]
            .iter()
            .any(|f| line.contains(f))
        {
            ctx.add(
                "torchscript-file-access",
                Verdict::Malicious,
                at(),
                "TorchScript code calls an operator that reads files or loads native code",
                Some(line.trim().chars().take(120).collect()),
            );
        }
        if [
            "__import__",
            "exec(",
            "eval(",
            "compile(",
            "__builtins__",
            "__globals__",
            "__subclasses__",
        ]
        .iter()
        .any(|f| line.contains(f))
        {
            ctx.add("torchscript-python", Verdict::Suspicious, at(), "TorchScript code uses a Python-only construct that the TorchScript compiler rejects: the member is not what it claims", Some(line.trim().chars().take(120).collect()));
        }
        let mut rest = line;
        while let Some(i) = rest.find("ops.") {
            rest = &rest[i + 4..];
            let ns: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if rest[ns.len()..].starts_with('.') && !TORCH_OP_NAMESPACES.contains(&ns.as_str()) {
                ctx.add("torchscript-custom-op", Verdict::Suspicious, at(), format!("TorchScript code calls operators of namespace `{ns}`, which PyTorch does not ship: they run native code from a library loaded separately"), Some(ns));
            }
        }
    }
}

/// Bytes per element of PyTorch's typed storage classes.
fn storage_element_size(kind: &str) -> Option<u64> {
    Some(match kind {
        "UntypedStorage" | "ByteStorage" | "CharStorage" | "BoolStorage" | "QUInt8Storage"
        | "QInt8Storage" => 1,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "FloatStorage" | "IntStorage" | "QInt32Storage" => 4,
        "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => 8,
        "ComplexDoubleStorage" => 16,
        _ => return None,
    })
}

/// Every persistent id of `data.pkl` must name an existing `data/<key>` member of the right
/// size, and every storage member must be referenced: anything else is a parser disagreement
/// or a place to hide bytes.
fn check_storages(
    ctx: &mut Ctx,
    entries: &[ZipEntry],
    refs: &[(String, String, u64)],
) -> Vec<ZipEntry> {
    let mut unreferenced = Vec::new();
    let Some(prefix) = entries.iter().find_map(|e| e.name.strip_suffix("data.pkl")) else {
        return unreferenced;
    };
    let prefix = prefix.to_string();
    let mut referenced = HashSet::new();
    for (key, kind, numel) in refs {
        let name = format!("{prefix}data/{key}");
        referenced.insert(name.clone());
        let Some(entry) = entries.iter().find(|e| e.name == name) else {
            ctx.add(
                "pytorch-missing-storage",
                Verdict::Malformed,
                &name,
                format!("data.pkl refers to storage `{key}` but the archive has no such member"),
                Some(key.clone()),
            );
            continue;
        };
        if let Some(size) = storage_element_size(kind) {
            let needed = numel.checked_mul(size);
            if needed != Some(entry.uncompressed) {
                ctx.add(
                    "pytorch-storage-size",
                    Verdict::Malformed,
                    &name,
                    format!(
                        "storage `{key}` holds {} bytes but {numel} × {kind} needs {}",
                        entry.uncompressed,
                        needed.map_or("overflowing".into(), |n| n.to_string())
                    ),
                    None,
                );
            }
        }
    }
    for entry in entries
        .iter()
        .filter(|e| is_storage_member(&e.name) && e.name.starts_with(&prefix))
    {
        if !referenced.contains(&entry.name) {
            ctx.add(
                "pytorch-unreferenced-member",
                Verdict::Suspicious,
                &entry.name,
                "a storage member that no tensor refers to: bytes hidden in a checkpoint (scanned by content)",
                Some(entry.name.clone()),
            );
            unreferenced.push(entry.clone());
        }
    }
    unreferenced
}

/// Local file headers that no central-directory entry accounts for: a member that some readers
/// (those walking local headers) see and others do not.
fn check_hidden_entries(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    len: u64,
    entries: &[ZipEntry],
) -> io::Result<()> {
    let mut spans: Vec<(u64, u64)> = Vec::with_capacity(entries.len());
    for entry in entries {
        if let Some(start) = data_start(blob, len, entry)? {
            let descriptor = if entry.flags & 0x8 != 0 { 24 } else { 0 };
            spans.push((
                entry.local_offset,
                start
                    .saturating_add(entry.compressed)
                    .saturating_add(descriptor),
            ));
        }
    }
    spans.sort_unstable();
    let mut covered = 0u64;
    let mut gaps = Vec::new();
    for (start, end) in spans {
        if start > covered {
            gaps.push((covered, start));
        }
        covered = covered.max(end);
    }
    for (start, end) in gaps.into_iter().take(16) {
        let size = (end - start).min(1 << 20);
        let bytes = read_at(blob, start, size, len, 1 << 20)?;
        if let Some(at) = bytes.windows(4).position(|w| w == b"PK\x03\x04") {
            let offset = start + at as u64;
            ctx.add("zip-hidden-entry", Verdict::Suspicious, format!("offset {offset}"), "a local file header that the central directory does not list: readers disagree on the archive's members", None);
            if let Ok(header) = read_at(blob, offset, 30, len, 30) {
                let (method, csize) = (u16le(&header, 8), u32le(&header, 18) as u64);
                let (name_len, extra_len) = (u16le(&header, 26) as u64, u16le(&header, 28) as u64);
                let name = read_at(blob, offset + 30, name_len, len, 65_535)
                    .map(|n| String::from_utf8_lossy(&n).into_owned())
                    .unwrap_or_default();
                let data = offset + 30 + name_len + extra_len;
                if method == 0 && data.checked_add(csize).is_some_and(|e| e <= len) {
                    let mut section = Section::new(blob, data, csize);
                    ctx.scan_member(&mut section, csize, &format!("<hidden {name}>"));
                }
            }
        }
    }
    Ok(())
}

/// The decompressed bytes of a small member (configs), or `None` when it cannot be read.
fn member_bytes(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    len: u64,
    entry: &ZipEntry,
) -> io::Result<Option<Vec<u8>>> {
    let Some(start) = data_start(blob, len, entry)? else {
        return Ok(None);
    };
    if entry.uncompressed > ctx.limits.max_structure_bytes
        || start.checked_add(entry.compressed).is_none_or(|e| e > len)
    {
        return Ok(None);
    }
    let section = Section::new(blob, start, entry.compressed);
    let mut out = Vec::new();
    let read = match entry.method {
        0 => section.take(entry.uncompressed).read_to_end(&mut out),
        8 => DeflateDecoder::new(section)
            .take(entry.uncompressed)
            .read_to_end(&mut out),
        _ => return Ok(None),
    };
    Ok(read.ok().map(|_| out))
}

/// Where a member's data begins: after its local header, whose name must match the central one.
fn data_start(blob: &mut dyn Blob, len: u64, entry: &ZipEntry) -> io::Result<Option<u64>> {
    let Ok(local) = read_at(blob, entry.local_offset, 30, len, 30) else {
        return Ok(None);
    };
    if !local.starts_with(b"PK\x03\x04") {
        return Ok(None);
    }
    let (name_len, extra_len) = (u16le(&local, 26) as u64, u16le(&local, 28) as u64);
    Ok(Some(entry.local_offset + 30 + name_len + extra_len))
}

/// Checks one central-directory entry, then scans its content.
fn check_zip_entry(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    len: u64,
    entry: &ZipEntry,
    kind: &str,
) -> io::Result<()> {
    if !check_entry_type(ctx, blob, len, entry)? {
        return Ok(());
    }
    let Some(start) = check_local_header(ctx, blob, len, entry) else {
        return Ok(());
    };
    if is_bomb(ctx, entry) {
        return Ok(());
    }
    let name = entry.name.as_str();
    if kind == "torchscript"
        && name.contains("/code/")
        && name.ends_with(".py")
        && let Some(code) = member_bytes(ctx, blob, len, entry)?
    {
        check_torchscript_code(ctx, name, &String::from_utf8_lossy(&code));
        return Ok(());
    }
    let storage = kind != "zip" && is_storage_member(name);
    match entry.method {
        0 => scan_stored(ctx, blob, start, entry, storage)?,
        8 => scan_deflated(ctx, blob, start, entry, storage)?,
        other => {
            ctx.add(
                "zip-unsupported-method",
                Verdict::Suspicious,
                name,
                format!("compression method {other} cannot be inspected"),
                Some(other.to_string()),
            );
        }
    }
    Ok(())
}

/// The member's path, type and flags; whether its content is to be read at all (not for links,
/// devices, directories and encrypted members).
fn check_entry_type(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    len: u64,
    entry: &ZipEntry,
) -> io::Result<bool> {
    let name = entry.name.as_str();
    report_unsafe_path(ctx, name);
    let file_type = entry.mode & 0o170000;
    if entry.made_by_unix && file_type == 0o120000 {
        let target = member_bytes(ctx, blob, len, entry)?
            .map(|t| String::from_utf8_lossy(&t[..t.len().min(256)]).into_owned());
        ctx.add("archive-link", Verdict::Malicious, name, "member is a symbolic link: extracting it can expose or overwrite files outside the archive", target.or(Some(name.to_string())));
        return Ok(false);
    }
    if entry.made_by_unix && report_special_mode(ctx, name, file_type) {
        return Ok(false);
    }
    if name.ends_with('/') {
        return Ok(false);
    }
    if entry.flags & 0x1 != 0 {
        // PyTorch's reader (miniz) ignores the flag and reads stored data as it is: the
        // content is scanned like any other member, so what the loader sees is seen here too.
        ctx.add(
            "zip-encrypted",
            Verdict::Suspicious,
            name,
            "member carries the encrypted flag: Python's zipfile asks for a password while PyTorch reads the bytes as they are (scanned as such)",
            None,
        );
    }
    if entry.flags & 0x60 != 0 {
        ctx.add("zip-flag-bits", Verdict::Suspicious, name, format!("unusual general-purpose flag bits 0x{:04x}: Python's zipfile refuses the member while PyTorch loads it (CVE-2025-1945 class)", entry.flags), Some(format!("0x{:04x}", entry.flags)));
    }
    Ok(true)
}

/// The member's local header, checked against the central directory; where its data begins,
/// when the data lies within the file.
fn check_local_header(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    len: u64,
    entry: &ZipEntry,
) -> Option<u64> {
    let name = entry.name.as_str();
    let Ok(local) = read_at(blob, entry.local_offset, 30, len, 30) else {
        ctx.add(
            "zip-malformed",
            Verdict::Malformed,
            name,
            "local header outside the file",
            None,
        );
        return None;
    };
    if !local.starts_with(b"PK\x03\x04") {
        ctx.add(
            "zip-malformed",
            Verdict::Malformed,
            name,
            "no local header where the central directory points",
            None,
        );
        return None;
    }
    let (name_len, extra_len) = (u16le(&local, 26) as u64, u16le(&local, 28) as u64);
    if let Ok(local_name) = read_at(blob, entry.local_offset + 30, name_len, len, 65_535)
        && local_name != name.as_bytes()
    {
        ctx.add(
                "zip-name-mismatch",
                Verdict::Suspicious,
                name,
                "the local header names the member differently from the central directory (CVE-2025-1944 class): tools disagree on what it is",
                Some(String::from_utf8_lossy(&local_name).into_owned()),
            );
    }
    let start = entry.local_offset + 30 + name_len + extra_len;
    if start
        .checked_add(entry.compressed)
        .is_none_or(|end| end > len)
    {
        ctx.add(
            "zip-malformed",
            Verdict::Malformed,
            name,
            "member data runs past the end of the file",
            None,
        );
        return None;
    }
    Some(start)
}

/// Whether the member's declared sizes make it a decompression bomb (recorded).
fn is_bomb(ctx: &mut Ctx, entry: &ZipEntry) -> bool {
    if entry.uncompressed > 1024 * 1024
        && entry.uncompressed / entry.compressed.max(1) > ctx.limits.max_compression_ratio
    {
        ctx.add(
            "archive-bomb",
            Verdict::Malicious,
            &entry.name,
            format!(
                "compression ratio {}:1 ({} bytes from {}): a decompression bomb",
                entry.uncompressed / entry.compressed.max(1),
                entry.uncompressed,
                entry.compressed
            ),
            None,
        );
        return true;
    }
    false
}

/// Scans a stored (uncompressed) member in place.
fn scan_stored(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    start: u64,
    entry: &ZipEntry,
    storage: bool,
) -> io::Result<()> {
    let name = entry.name.as_str();
    if entry.compressed != entry.uncompressed {
        ctx.add(
            "zip-malformed",
            Verdict::Malformed,
            name,
            "stored member with different compressed and uncompressed sizes",
            None,
        );
    }
    let mut section = Section::new(blob, start, entry.compressed);
    if storage {
        scan_storage(ctx, &mut section, entry.compressed, name)?;
    } else {
        let format = ctx.scan_member(&mut section, entry.compressed, name);
        if format == "pickle" || format == "joblib" {
            check_crc(ctx, &mut Section::new(blob, start, entry.compressed), entry)?;
        }
    }
    Ok(())
}

/// Scans a deflated member: inflated into memory within the limits, else streamed.
fn scan_deflated(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    start: u64,
    entry: &ZipEntry,
    storage: bool,
) -> io::Result<()> {
    let name = entry.name.as_str();
    ctx.inflated = ctx.inflated.saturating_add(entry.uncompressed);
    if entry.uncompressed > ctx.limits.max_member_in_memory
        || ctx.inflated > ctx.limits.max_inflated_total
    {
        // Too large to hold: stream what can be streamed (pickles, .npy payloads).
        let decoder = DeflateDecoder::new(Section::new(blob, start, entry.compressed));
        return stream_large_member(
            ctx,
            decoder.take(entry.uncompressed),
            entry.uncompressed,
            name,
            storage,
        );
    }
    let mut data = Vec::with_capacity(entry.uncompressed.min(1 << 20) as usize);
    let decoder = DeflateDecoder::new(Section::new(blob, start, entry.compressed));
    if decoder
        .take(entry.uncompressed + 1)
        .read_to_end(&mut data)
        .is_err()
        || data.len() as u64 != entry.uncompressed
    {
        ctx.add(
            "zip-malformed",
            Verdict::Malformed,
            name,
            "compressed data does not inflate to the declared size",
            None,
        );
        return Ok(());
    }
    if crc32fast::hash(&data) != entry.crc {
        ctx.add("zip-bad-crc", Verdict::Suspicious, name, "CRC-32 mismatch (CVE-2025-10156 class): strict readers refuse the member while PyTorch loads it", None);
    }
    let mut cursor = io::Cursor::new(&data[..]);
    if storage {
        scan_storage(ctx, &mut cursor, data.len() as u64, name)?;
    } else {
        ctx.scan_member(&mut cursor, data.len() as u64, name);
    }
    Ok(())
}

/// Scans a member too large to inflate into memory, from its decompressed stream.
fn stream_large_member(
    ctx: &mut Ctx,
    mut stream: impl Read,
    len: u64,
    name: &str,
    storage: bool,
) -> io::Result<()> {
    let mut head = Vec::with_capacity(512);
    (&mut stream).take(512).read_to_end(&mut head)?;
    let rest = io::Cursor::new(head.clone()).chain(stream);
    match crate::formats::detect(&head, len, name) {
        Format::Pickle => {
            pickle::scan_stream(ctx, rest, len, true)?;
        }
        Format::MaybePickle => {
            pickle::scan_stream(ctx, rest, len, false)?;
        }
        Format::Npy => {
            let mut rest = rest;
            match crate::numpy::parse_header(&mut rest, len) {
                Ok(header) if header.descr.contains('O') => {
                    pickle::scan_stream(ctx, rest, len - header.data_offset, true)?;
                }
                Ok(_) => {}
                Err(why) => ctx.add(
                    "npy-malformed",
                    Verdict::Malformed,
                    name,
                    format!("invalid .npy header: {why}"),
                    None,
                ),
            }
        }
        Format::Unknown | Format::Empty | Format::Safetensors | Format::Gguf | Format::Onnx => {
            // Tensor data (raw, or formats whose size needs no inflating to be harmless here).
        }
        _ if storage => {}
        other => ctx.add(
            "archive-member-too-large",
            Verdict::Suspicious,
            name,
            format!(
                "a compressed {} member of {len} bytes is too large to inspect",
                other.name()
            ),
            None,
        ),
    }
    Ok(())
}

fn check_crc(ctx: &mut Ctx, section: &mut Section, entry: &ZipEntry) -> io::Result<()> {
    if entry.compressed > 512 * 1024 * 1024 {
        return Ok(());
    }
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    section.seek(SeekFrom::Start(0))?;
    loop {
        let n = section.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    if hasher.finalize() != entry.crc {
        ctx.add("zip-bad-crc", Verdict::Suspicious, &entry.name, "CRC-32 mismatch (CVE-2025-10156 class): strict readers refuse the member while PyTorch loads it", None);
    }
    Ok(())
}

/// Tensor storage: raw bytes that no loader unpickles; only a pickle hidden there is reported.
fn scan_storage(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64, name: &str) -> io::Result<()> {
    let mut head = [0u8; 2];
    blob.seek(SeekFrom::Start(0))?;
    if len >= 2 && blob.read_exact(&mut head).is_ok() && head[0] == 0x80 && head[1] <= 5 {
        blob.seek(SeekFrom::Start(0))?;
        let saved = ctx.findings_len();
        let mut section = Section::new(blob, 0, len);
        let format = pickle::scan_stream(ctx, &mut section, len, false)?;
        if format.is_none() {
            ctx.truncate_findings(saved);
        } else {
            ctx.add(
                "pytorch-hidden-pickle",
                Verdict::Suspicious,
                name,
                "a tensor storage member holds a pickle",
                None,
            );
        }
    }
    Ok(())
}

/// Parses an octal (or GNU base-256) tar number field.
fn tar_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = 0;
        for (i, b) in field.iter().enumerate() {
            let b = if i == 0 { b & 0x7f } else { *b };
            v = v.checked_mul(256)?.checked_add(b as u64)?;
        }
        return Some(v);
    }
    let text: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        Some(0)
    } else {
        u64::from_str_radix(text, 8).ok()
    }
}

fn cstr(field: &[u8]) -> String {
    String::from_utf8_lossy(&field[..field.iter().position(|b| *b == 0).unwrap_or(field.len())])
        .into_owned()
}

pub(crate) fn scan_tar(ctx: &mut Ctx, blob: &mut dyn Blob, len: u64) -> io::Result<&'static str> {
    let mut offset = 0u64;
    let mut members = 0usize;
    let mut long_name: Option<String> = None;
    let mut names = Vec::new();
    let mut pending = Vec::new();
    while offset + 512 <= len {
        let header = read_at(blob, offset, 512, len, 512)?;
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let stored: u64 = header[148..156]
            .iter()
            .filter(|b| **b != 0 && **b != b' ')
            .fold(0, |acc, b| acc * 8 + b.saturating_sub(b'0') as u64);
        let computed: u64 = header
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    b' ' as u64
                } else {
                    *b as u64
                }
            })
            .sum();
        if stored != computed {
            ctx.add(
                "tar-malformed",
                Verdict::Malformed,
                format!("offset {offset}"),
                "tar header checksum mismatch",
                None,
            );
            break;
        }
        let Some(size) = tar_number(&header[124..136]) else {
            ctx.add(
                "tar-malformed",
                Verdict::Malformed,
                format!("offset {offset}"),
                "tar size field is not a number",
                None,
            );
            break;
        };
        let data = offset + 512;
        if data.checked_add(size).is_none_or(|end| end > len) {
            ctx.add(
                "tar-malformed",
                Verdict::Malformed,
                format!("offset {offset}"),
                "member data runs past the end of the archive",
                None,
            );
            break;
        }
        let kind = header[156];
        let mut name = cstr(&header[..100]);
        let prefix = cstr(&header[345..500]);
        if &header[257..262] == b"ustar" && !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
        if let Some(long) = long_name.take() {
            name = long;
        }
        members += 1;
        if members > ctx.limits.archive_max_members {
            ctx.add(
                "archive-too-many-members",
                Verdict::Suspicious,
                "",
                format!(
                    "more than {} members; the rest were not inspected",
                    ctx.limits.archive_max_members
                ),
                None,
            );
            break;
        }
        match kind {
            b'L' => {
                let bytes = read_at(blob, data, size, len, 65_536).unwrap_or_default();
                long_name = Some(cstr(&bytes));
            }
            b'x' => {
                let bytes = read_at(blob, data, size, len, 1 << 20).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes);
                for record in text.lines() {
                    if let Some((_, path)) = record.split_once(" path=") {
                        long_name = Some(path.to_string());
                    }
                }
            }
            b'g' => {}
            b'1' | b'2' => {
                let target = cstr(&header[157..257]);
                ctx.add("archive-link", Verdict::Malicious, &name, format!("member is a {} link: extracting it can expose or overwrite files outside the archive", if kind == b'1' { "hard" } else { "symbolic" }), Some(format!("{name} -> {target}")));
            }
            b'3' | b'4' | b'6' => {
                ctx.add(
                    "archive-special-file",
                    Verdict::Malicious,
                    &name,
                    "member is a device or FIFO",
                    Some(name.clone()),
                );
            }
            b'5' => {}
            _ => {
                report_unsafe_path(ctx, &name);
                names.push(name.clone());
                pending.push((name, data, size));
            }
        }
        offset = data + size.div_ceil(512) * 512;
    }
    let legacy = ["sys_info", "pickle", "storages"]
        .iter()
        .all(|m| names.iter().any(|n| n == m));
    for (name, data, size) in pending {
        let mut section = Section::new(blob, data, size);
        if legacy && name == "storages" {
            // A count pickle, then per storage a pickle and raw bytes: only pickles are parsed.
            pickle::scan_stream(ctx, &mut section, size, true)?;
            continue;
        }
        if legacy && name == "tensors" {
            pickle::scan_stream(ctx, &mut section, size, false)?;
            continue;
        }
        ctx.scan_member(&mut section, size, &name);
    }
    Ok(if legacy { "pytorch-legacy-tar" } else { "tar" })
}

/// 7z: members' names and types are checked like zip and tar members; then each folder (a
/// block of members compressed together) is checked for its coders and bomb ratio, decoded
/// once within the limits (or read in place when stored), and its members scanned by content.
pub(crate) fn scan_sevenz(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    len: u64,
) -> io::Result<&'static str> {
    let archive = match sevenz::open(blob, len, ctx.limits) {
        Ok(archive) => archive,
        Err(e) => {
            sevenz_problem(ctx, "", e)?;
            return Ok("7z");
        }
    };
    let mut seen = HashSet::new();
    let mut by_folder: Vec<Vec<&SevenZipMember>> = vec![Vec::new(); archive.folders()];
    for member in &archive.members {
        let name = member.name.as_str();
        report_unsafe_path(ctx, name);
        if !seen.insert(name) {
            ctx.add(
                "archive-duplicate-member",
                Verdict::Suspicious,
                name,
                "two members have the same name; extractors disagree on which one wins",
                Some(name.to_string()),
            );
        }
        if member
            .unix_type()
            .is_some_and(|t| report_special_mode(ctx, name, t))
        {
            continue;
        }
        match &member.data {
            Some(span) => by_folder[span.folder].push(member),
            None if member.is_link() => report_link(ctx, name, None),
            None => {}
        }
    }
    for (folder, members) in by_folder.iter().enumerate() {
        if !members.is_empty() {
            scan_sevenz_folder(ctx, blob, len, &archive, folder, members)?;
        }
    }
    Ok("7z")
}

/// Reports what kept a 7z archive (or one of its folders) from being read.
fn sevenz_problem(ctx: &mut Ctx, location: &str, e: sevenz::Error) -> io::Result<()> {
    match e {
        sevenz::Error::Corrupt(why) => ctx.add(
            "sevenz-malformed",
            Verdict::Malformed,
            location,
            format!("invalid 7z archive: {why}"),
            None,
        ),
        sevenz::Error::Unsupported(why) => {
            ctx.add(
                "sevenz-unsupported",
                Verdict::Suspicious,
                location,
                why,
                None,
            );
        }
        sevenz::Error::Encrypted(why) => {
            ctx.add("sevenz-encrypted", Verdict::Suspicious, location, why, None);
        }
        sevenz::Error::TooLarge(why) => ctx.add(
            "archive-member-too-large",
            Verdict::Suspicious,
            location,
            why,
            None,
        ),
        sevenz::Error::TooMany(what) => ctx.add(
            "archive-too-many-members",
            Verdict::Suspicious,
            location,
            format!(
                "the archive declares {what}, beyond the limit of {} members: none were inspected",
                ctx.limits.archive_max_members
            ),
            None,
        ),
        sevenz::Error::Io(e) => return Err(e),
    }
    Ok(())
}

fn report_link(ctx: &mut Ctx, name: &str, target: Option<&[u8]>) {
    let evidence = match target {
        Some(t) => format!(
            "{name} -> {}",
            String::from_utf8_lossy(&t[..t.len().min(256)])
        ),
        None => name.to_string(),
    };
    ctx.add("archive-link", Verdict::Malicious, name, "member is a symbolic link: extracting it can expose or overwrite files outside the archive", Some(evidence));
}

/// One 7z folder: its members are scanned only if its coders can be decoded here.
fn scan_sevenz_folder(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    len: u64,
    archive: &sevenz::Archive,
    folder: usize,
    members: &[&SevenZipMember],
) -> io::Result<()> {
    let first = members[0].name.as_str();
    let which = match members.len() {
        1 => "the member is".to_string(),
        n => format!("{n} members (compressed together) are"),
    };
    let refused = match archive.check(folder) {
        Ok(()) => None,
        Err(sevenz::Error::Encrypted(coder)) => Some((
            "sevenz-encrypted",
            format!(
                "{which} encrypted with {coder}: the content cannot be inspected without the password"
            ),
            coder,
        )),
        Err(sevenz::Error::Unsupported(coder)) => Some((
            "sevenz-unsupported-coder",
            format!(
                "{which} compressed with {coder}, which this scanner does not decode: the content was not inspected"
            ),
            coder,
        )),
        Err(e) => return sevenz_problem(ctx, first, e),
    };
    if let Some((rule, message, coder)) = refused {
        ctx.add(rule, Verdict::Suspicious, first, message, Some(coder));
        for member in members.iter().filter(|m| m.is_link()) {
            report_link(ctx, &member.name, None);
        }
        return Ok(());
    }
    let (packed, unpacked) = archive.sizes(folder);
    if unpacked > 1024 * 1024 && unpacked / packed.max(1) > ctx.limits.max_compression_ratio {
        ctx.add(
            "archive-bomb",
            Verdict::Malicious,
            first,
            format!(
                "compression ratio {}:1 ({unpacked} bytes from {packed}): a decompression bomb",
                unpacked / packed.max(1)
            ),
            None,
        );
        return Ok(());
    }
    if let Some(start) = archive.stored_at(folder) {
        for member in members {
            scan_stored_sevenz_member(ctx, blob, len, start, member)?;
        }
        return Ok(());
    }
    ctx.inflated = ctx.inflated.saturating_add(unpacked);
    if unpacked > ctx.limits.max_member_in_memory || ctx.inflated > ctx.limits.max_inflated_total {
        ctx.add(
            "archive-member-too-large",
            Verdict::Suspicious,
            first,
            format!("{which} in a compressed block of {unpacked} bytes, too large to inspect"),
            None,
        );
        return Ok(());
    }
    let data = match archive.decode(blob, len, folder, ctx.limits.max_member_in_memory) {
        Ok(data) => data,
        Err(e) => return sevenz_problem(ctx, first, e),
    };
    for member in members {
        let Some(span) = &member.data else { continue };
        // The spans were checked to add up to the folder's size, which `decode` checked.
        let Some(bytes) = usize::try_from(span.offset)
            .ok()
            .zip(usize::try_from(span.size).ok())
            .and_then(|(at, n)| data.get(at..at.checked_add(n)?))
        else {
            continue;
        };
        if span.crc.is_some_and(|crc| crc != crc32fast::hash(bytes)) {
            report_sevenz_crc(ctx, &member.name);
        }
        if member.is_link() {
            report_link(ctx, &member.name, Some(bytes));
        } else {
            ctx.scan_member(
                &mut io::Cursor::new(bytes),
                bytes.len() as u64,
                &member.name,
            );
        }
    }
    Ok(())
}

/// A member of a folder stored with the Copy coder, read in place whatever its size.
fn scan_stored_sevenz_member(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    len: u64,
    folder_start: u64,
    member: &SevenZipMember,
) -> io::Result<()> {
    let Some(span) = &member.data else {
        return Ok(());
    };
    let start = folder_start + span.offset;
    if member.is_link() {
        let target = read_at(blob, start, span.size.min(256), len, 256).ok();
        report_link(ctx, &member.name, target.as_deref());
        return Ok(());
    }
    if let Some(crc) = span.crc
        && span.size <= ctx.limits.max_member_in_memory
    {
        let mut hasher = crc32fast::Hasher::new();
        let mut section = Section::new(blob, start, span.size);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = section.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        if hasher.finalize() != crc {
            report_sevenz_crc(ctx, &member.name);
        }
    }
    let mut section = Section::new(blob, start, span.size);
    ctx.scan_member(&mut section, span.size, &member.name);
    Ok(())
}

fn report_sevenz_crc(ctx: &mut Ctx, name: &str) {
    ctx.add(
        "sevenz-bad-crc",
        Verdict::Malformed,
        name,
        "the member's CRC-32 does not match its content: 7-Zip reports a data error (scanned anyway)",
        None,
    );
}

/// A single-stream compression wrapper that is inflated and scanned as its content.
#[derive(Clone, Copy)]
pub(crate) enum Wrapper {
    Gzip,
    /// Raw zlib streams, as joblib writes with `compress=N`.
    Zlib,
    /// zstd frames (`.zst`, `.tar.zst`); the decoder caps its window at 100 MiB.
    Zstd,
    /// LZ4 frames, as joblib writes with `compress="lz4"` (mtcnn's weights).
    Lz4,
    /// xz streams (`compress="xz"`): the declared sizes are summed before decoding.
    Xz,
    /// bzip2 streams (`compress="bz2"`); the decoder holds one 900 KB block at a time.
    Bzip2,
}

pub(crate) fn scan_compressed(
    ctx: &mut Ctx,
    blob: &mut dyn Blob,
    len: u64,
    path: &str,
    wrapper: Wrapper,
) -> io::Result<&'static str> {
    let name = match wrapper {
        Wrapper::Gzip => "gzip",
        Wrapper::Zlib => "zlib",
        Wrapper::Zstd => "zstd",
        Wrapper::Lz4 => "lz4",
        Wrapper::Xz => "xz",
        Wrapper::Bzip2 => "bzip2",
    };
    blob.seek(SeekFrom::Start(0))?;
    let limit = ctx.limits.max_member_in_memory.min(
        len.saturating_mul(ctx.limits.max_compression_ratio)
            .max(1 << 20),
    );
    let mut data = Vec::new();
    let section = Section::new(blob, 0, len);
    let read = match wrapper {
        Wrapper::Gzip => GzDecoder::new(section)
            .take(limit + 1)
            .read_to_end(&mut data),
        Wrapper::Zlib => ZlibDecoder::new(section)
            .take(limit + 1)
            .read_to_end(&mut data),
        Wrapper::Zstd => match ruzstd::decoding::StreamingDecoder::new(section) {
            Ok(decoder) => decoder.take(limit + 1).read_to_end(&mut data),
            Err(e) => Err(io::Error::other(e.to_string())),
        },
        Wrapper::Lz4 => read_lz4(section, len, limit, &mut data),
        Wrapper::Xz => read_xz(section, len, limit, &mut data),
        Wrapper::Bzip2 => read_bzip2(section, limit, &mut data),
    };
    if read.is_err() {
        ctx.add(
            "compression-malformed",
            Verdict::Malformed,
            "",
            format!("the {name} stream is corrupt"),
            None,
        );
        return Ok(name);
    }
    if data.len() as u64 > limit {
        if limit < ctx.limits.max_member_in_memory {
            ctx.add(
                "archive-bomb",
                Verdict::Malicious,
                "",
                format!(
                    "inflates beyond {}:1: a decompression bomb",
                    ctx.limits.max_compression_ratio
                ),
                None,
            );
        } else {
            ctx.add(
                "archive-member-too-large",
                Verdict::Suspicious,
                "",
                "the decompressed content is too large to inspect",
                None,
            );
        }
        return Ok(name);
    }
    ctx.inflated = ctx.inflated.saturating_add(data.len() as u64);
    let inner = path
        .trim_end_matches(".gz")
        .trim_end_matches(".tgz")
        .trim_end_matches(".zst")
        .trim_end_matches(".lz4")
        .trim_end_matches(".xz")
        .trim_end_matches(".bz2")
        .trim_end_matches(".z");
    let inner = if inner.is_empty() { "content" } else { inner };
    ctx.scan_member(
        &mut io::Cursor::new(&data[..]),
        data.len() as u64,
        &format!("{inner} (decompressed)"),
    );
    Ok(name)
}

/// Reads a whole LZ4 frame (bounded by the in-memory limit) and decodes it into `out`.
fn read_lz4(mut section: Section, len: u64, limit: u64, out: &mut Vec<u8>) -> io::Result<usize> {
    if len > limit {
        return Err(io::Error::other("LZ4 input too large"));
    }
    let mut raw = Vec::with_capacity(len as usize);
    section.read_to_end(&mut raw)?;
    *out = crate::lz4::decode_frame(&raw, limit).map_err(io::Error::other)?;
    Ok(out.len())
}

/// Reads a whole xz file (bounded by the in-memory limit) and decodes it into `out`; output
/// beyond `limit` is refused from the declared chunk sizes, before anything is inflated.
fn read_xz(mut section: Section, len: u64, limit: u64, out: &mut Vec<u8>) -> io::Result<usize> {
    if len > limit {
        return Err(io::Error::other("xz input too large"));
    }
    let mut raw = Vec::with_capacity(len as usize);
    section.read_to_end(&mut raw)?;
    match crate::xz::decode(&raw, limit) {
        Ok(data) => *out = data,
        // Reported by the caller as a bomb or as too large, like the other wrappers.
        Err(crate::xz::Error::TooLarge) => out.resize(limit as usize + 1, 0),
        Err(e) => return Err(io::Error::other(e.to_string())),
    }
    Ok(out.len())
}

/// Decodes the first bzip2 stream into `out`, stopping one byte past `limit`. (Python's `bz2`
/// also reads streams concatenated after it; their start is not known without decoding to the
/// end of the first, which this decoder does not report.)
fn read_bzip2(section: Section, limit: u64, out: &mut Vec<u8>) -> io::Result<usize> {
    bzip2_rs::DecoderReader::new(section)
        .take(limit + 1)
        .read_to_end(out)
}
