//! The file viewer, `/{ns}/{name}/blob/{rev}/{path}` as on the Hugging Face Hub: a file shown in
//! the page behind the same gates as its download (`routes::files::decide`). Text, JSON and code
//! are shown as text; a safetensors file as the tensors its header names, with their dtypes,
//! shapes and the parameter count, read from the header alone; a GGUF file as its key/value
//! metadata and tensor list; an ONNX model as its IR version, producer, opsets, inputs and
//! outputs (streamed past its initializers). A GGUF or ONNX file that does not parse is shown
//! as a binary file.

use actix_web::web;
use futures_util::StreamExt;
use kaiyuan_storage::{BlobStore, Sha256Digest};
use serde_json::{Value, json};

use super::render::{WebError, WebResult, render};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::error_code as code;
use crate::routes::files::{Asked, Download, Lookup, decide};
use crate::state::AppState;

/// Text shown in the page at most; longer files are cut and say so.
const MAX_TEXT: u64 = 512 * 1024;
/// A safetensors header larger than this is not read for the page.
const MAX_HEADER: u64 = 16 * 1024 * 1024;
/// At most this much of a GGUF file is read for the page (metadata with its vocabulary and the
/// tensor infos; the weights that follow are not read).
const MAX_GGUF_HEADER: u64 = 64 * 1024 * 1024;
/// An ONNX model keeps its inputs and outputs after its initializers, so the whole protobuf is
/// streamed (nothing held); larger models are not read for the page.
const MAX_ONNX: u64 = 1024 * 1024 * 1024;
/// Metadata strings longer than this are cut in the page.
const MAX_SHOWN_VALUE: usize = 4096;

pub async fn blob_page(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String, String)>,
) -> WebResult {
    let segments = path.into_inner();
    let (_, _, revision, file_path) = &segments;
    let mut conn = state.db.acquire().await?;
    let asked = Asked::at(&segments, true);
    let Download {
        repo, commit, file, ..
    } = match decide(&mut conn, &state.store, &caller, &asked).await? {
        Lookup::Found(download) => *download,
        Lookup::Missing { repo, .. } => {
            return Err(WebError(ApiError::not_found(
                code::ENTRY_NOT_FOUND,
                format!(
                    "`{file_path}` does not exist at `{revision}` of `{}`",
                    repo.full_name()
                ),
            )));
        }
    };
    drop(conn);
    let digest = file.sha256;
    let size = file.size as u64;
    let view = view_of(&state.store, &digest, &file.path, size).await?;
    render(
        &caller,
        "blob.html",
        &format!("{} · {}", file.path, repo.full_name()),
        json!({
            "repo": {"namespace": repo.namespace, "name": repo.name, "full_name": repo.full_name()},
            "revision": revision,
            "commit": commit,
            "path": file.path,
            "size": file.size,
            "sha256": digest.to_hex(),
            "view": view,
        }),
    )
}

/// What the page shows of a file.
async fn view_of(
    store: &BlobStore,
    digest: &Sha256Digest,
    path: &str,
    size: u64,
) -> Result<Value, ApiError> {
    let lower = path.to_lowercase();
    if lower.ends_with(".safetensors")
        && let Some(view) = safetensors_view(store, digest, size).await?
    {
        return Ok(view);
    }
    if lower.ends_with(".gguf") {
        return gguf_view(store, digest, size).await;
    }
    if lower.ends_with(".onnx") {
        return onnx_view(store, digest, size).await;
    }
    let bytes = read(store, digest, 0..size.min(MAX_TEXT)).await?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(json!({"kind": "binary"}));
    };
    if text.contains('\0') {
        return Ok(json!({"kind": "binary"}));
    }
    let cut = size > MAX_TEXT;
    if path.to_lowercase().ends_with(".json")
        && !cut
        && let Ok(value) = serde_json::from_str::<Value>(text)
    {
        let pretty = serde_json::to_string_pretty(&value).unwrap_or_else(|_| text.to_string());
        return Ok(json!({"kind": "text", "text": pretty, "cut": false}));
    }
    Ok(json!({"kind": "text", "text": text, "cut": cut}))
}

/// The tensors a safetensors header names (`None` when the header is not one: the file is then
/// shown like any other).
async fn safetensors_view(
    store: &BlobStore,
    digest: &Sha256Digest,
    size: u64,
) -> Result<Option<Value>, ApiError> {
    if size < 8 {
        return Ok(None);
    }
    let prefix = read(store, digest, 0..8).await?;
    let len = u64::from_le_bytes(prefix.as_slice().try_into().expect("8 bytes"));
    // The length field is the file's word: trust it only within the file and a bound.
    if len > MAX_HEADER || len > size - 8 {
        return Ok(None);
    }
    let header = read(store, digest, 8..8 + len).await?;
    let Ok(Value::Object(entries)) = serde_json::from_slice::<Value>(&header) else {
        return Ok(None);
    };
    let mut tensors = vec![];
    let mut parameters: u128 = 0;
    let mut metadata = Value::Null;
    for (name, entry) in entries {
        if name == "__metadata__" {
            metadata = entry;
            continue;
        }
        let shape: Vec<u64> = entry["shape"]
            .as_array()
            .map(|dims| dims.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let count = shape.iter().map(|&d| d as u128).product::<u128>();
        parameters = parameters.saturating_add(count);
        tensors.push(json!({"name": name, "dtype": entry["dtype"], "shape": shape, "parameters": count.to_string()}));
    }
    Ok(Some(json!({
        "kind": "safetensors",
        "tensors": tensors,
        "parameters": parameters.to_string(),
        "metadata": metadata,
        "header_bytes": len,
    })))
}

/// Runs `parse` on the blob's bytes in a blocking task; `None` when the blob cannot be opened
/// or does not parse.
async fn parse_blob<T: Send + 'static>(
    store: &BlobStore,
    digest: &Sha256Digest,
    size: u64,
    parse: impl FnOnce(Box<dyn kaiyuan_storage::ReadSeek>) -> Option<T> + Send + 'static,
) -> Result<Option<T>, ApiError> {
    let store = store.clone();
    let digest = *digest;
    tokio::task::spawn_blocking(move || parse(store.open_blocking(&digest, size).ok()?))
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("viewer task: {e}")))
}

/// A GGUF file's metadata and tensors, from its header.
async fn gguf_view(store: &BlobStore, digest: &Sha256Digest, size: u64) -> Result<Value, ApiError> {
    let budget = size.min(MAX_GGUF_HEADER);
    let header = parse_blob(store, digest, size, move |reader| {
        kaiyuan_license::gguf::header(std::io::BufReader::new(reader), budget)
            .ok()
            .flatten()
    })
    .await?;
    let Some(header) = header else {
        return Ok(json!({"kind": "binary"}));
    };
    let get = |key: &str| header.get(key);
    let text = |key: &str| get(key).map(|v| shown(&v.to_string()));
    let architecture = get("general.architecture").and_then(|v| v.as_str());
    let context = architecture
        .and_then(|a| get(&format!("{a}.context_length")))
        .and_then(|v| v.as_u64());
    let quantization = get("general.file_type").and_then(|v| v.as_u64()).map(|t| {
        kaiyuan_license::gguf::file_type_name(t).map_or_else(|| format!("type {t}"), str::to_string)
    });
    let licence = match (text("general.license"), text("general.license.name")) {
        (Some(l), Some(n)) if l.eq_ignore_ascii_case("other") => Some(format!("other: {n}")),
        (l, _) => l,
    };
    let facts: Vec<Value> = [
        ("Name", text("general.name")),
        ("Architecture", architecture.map(str::to_string)),
        ("Licence", licence),
        ("Quantization", quantization),
        ("Context length", context.map(|c| c.to_string())),
        ("Size label", text("general.size_label")),
    ]
    .into_iter()
    .filter_map(|(label, value)| Some(json!({"label": label, "value": value?})))
    .collect();
    let metadata: Vec<Value> = header
        .metadata
        .iter()
        .map(|(key, value)| json!({"key": key, "value": shown(&value.to_string())}))
        .collect();
    let tensors: Vec<Value> = header
        .tensors
        .iter()
        .map(|t| {
            json!({"name": t.name, "dtype": t.type_name, "shape": t.shape,
                   "parameters": t.parameters().to_string()})
        })
        .collect();
    Ok(json!({
        "kind": "gguf",
        "version": header.version,
        "facts": facts,
        "metadata": metadata,
        "tensors": tensors,
        "parameters": header.parameters().to_string(),
        "header_bytes": header.header_bytes,
    }))
}

/// A metadata value as the page shows it: cut when long.
fn shown(value: &str) -> String {
    if value.len() <= MAX_SHOWN_VALUE {
        return value.to_string();
    }
    let mut end = MAX_SHOWN_VALUE;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &value[..end], value.len())
}

/// An ONNX model's header: IR version, producer, opsets, inputs, outputs, metadata.
async fn onnx_view(store: &BlobStore, digest: &Sha256Digest, size: u64) -> Result<Value, ApiError> {
    if size > MAX_ONNX {
        return Ok(json!({"kind": "binary", "note": "too large to be read for the page"}));
    }
    let header = parse_blob(store, digest, size, move |reader| {
        kaiyuan_verifier::model_info::read_header_from(reader, size).ok()
    })
    .await?;
    let Some(header) = header else {
        return Ok(json!({"kind": "binary"}));
    };
    let values = |list: &[kaiyuan_verifier::model_info::ValueInfo]| -> Vec<Value> {
        list.iter()
            .map(|v| json!({"name": v.name, "type": v.type_name, "shape": v.shape}))
            .collect()
    };
    let metadata: Vec<Value> = header
        .metadata
        .iter()
        .map(|(key, value)| json!({"key": key, "value": shown(value)}))
        .collect();
    Ok(json!({
        "kind": "onnx",
        "ir_version": header.ir_version,
        "producer_name": header.producer_name,
        "producer_version": header.producer_version,
        "domain": header.domain,
        "model_version": header.model_version,
        "opsets": header.opsets.iter().map(|o| json!({
            "domain": if o.domain.is_empty() { "ai.onnx" } else { &o.domain },
            "version": o.version,
        })).collect::<Vec<_>>(),
        "inputs": values(&header.inputs),
        "outputs": values(&header.outputs),
        "metadata": metadata,
        "initializers": header.initializers,
        "external_data": header.external_data,
    }))
}

async fn read(
    store: &BlobStore,
    digest: &Sha256Digest,
    range: std::ops::Range<u64>,
) -> Result<Vec<u8>, ApiError> {
    let mut stream = store.read(digest, range).await?;
    let mut bytes = vec![];
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
}
