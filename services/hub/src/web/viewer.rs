//! The file viewer, `/{ns}/{name}/blob/{rev}/{path}` as on the Hugging Face Hub: a file shown in
//! the page behind the same gates as its download (`routes::files::decide`). Text, JSON and code
//! are shown as text; a safetensors file as the tensors its header names, with their dtypes,
//! shapes and the parameter count, read from the header alone.

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

pub async fn blob_page(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String, String)>,
) -> WebResult {
    let (namespace, name, revision, file_path) = path.into_inner();
    let mut conn = state.db.acquire().await?;
    let asked = Asked {
        namespace: &namespace,
        name: &name,
        revision: &revision,
        path: &file_path,
        bytes: true,
    };
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
    let digest = Sha256Digest::from_bytes(
        file.sha256
            .as_slice()
            .try_into()
            .map_err(|_| ApiError::internal(anyhow::anyhow!("bad digest")))?,
    );
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
    if path.to_lowercase().ends_with(".safetensors")
        && let Some(view) = safetensors_view(store, digest, size).await?
    {
        return Ok(view);
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
