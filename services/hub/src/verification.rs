//! The `verify-commit` job: every ONNX model of a commit (with its external data and test
//! vectors) is written to a private folder and verified in a limited child process
//! (`kaiyuan_verifier::sandbox`). Only files whose scan passed are run; a commit whose scans
//! are still pending waits for them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use kaiyuan_verifier::sandbox::{ChildCommand, ChildConfig, Limits, ModelRequest, Verifier};
use kaiyuan_verifier::{Ep, ModelReport, Status, VerifySettings, runtime, settings};
use tokio::io::AsyncWriteExt;

use crate::db;
use crate::db::commits::FileRow;
use crate::db::types::{ScanVerdict, VerificationStatus};
use crate::jobs::{JobContext, JobError};

/// The ONNX models of a commit, by path.
pub fn models(files: &[FileRow]) -> Vec<String> {
    files
        .iter()
        .filter(|f| f.path.to_ascii_lowercase().ends_with(".onnx"))
        .map(|f| f.path.clone())
        .collect()
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Test-vector files that belong to `model` (see `kaiyuan_verifier::vectors`).
fn vector_files<'a>(model: &str, files: &'a [FileRow]) -> Vec<&'a FileRow> {
    let dir = parent(model);
    let file_name = model.rsplit('/').next().unwrap_or(model);
    let stem = file_name.strip_suffix(".onnx").unwrap_or(file_name);
    let onnx_here = files
        .iter()
        .filter(|f| parent(&f.path) == dir && f.path.ends_with(".onnx"))
        .count();
    let owns_sets = stem == "model" || onnx_here == 1;
    let sets_prefix = join(dir, "test_data_set_");
    let safetensors_prefix = join(dir, &format!("{stem}.test_vectors"));
    files
        .iter()
        .filter(|f| {
            (owns_sets
                && f.path.starts_with(&sets_prefix)
                && f.path[sets_prefix.len()..].split('/').count() == 2
                && f.path.ends_with(".pb"))
                || (parent(&f.path) == dir
                    && f.path.starts_with(&safetensors_prefix)
                    && f.path.ends_with(".safetensors"))
        })
        .collect()
}

/// Why a file's scan keeps it from running, or `None` when it passed; `Err` while pending.
/// How long a verification waits for pending scans before it reports them instead.
const SCAN_PATIENCE: chrono::Duration = chrono::Duration::hours(1);

/// `waited_too_long`: the verification was queued more than [`SCAN_PATIENCE`] ago, so a scan
/// still pending (its job failed for good, say) is reported rather than waited for forever.
async fn scan_gate(
    conn: &mut sqlx::PgConnection,
    file: &FileRow,
    waited_too_long: bool,
) -> Result<Option<String>, JobError> {
    let state = db::scans::state(conn, &file.sha256)
        .await
        .context("scan state")?;
    match state {
        Some(s) if s.quarantined() => Ok(Some(format!(
            "not run: `{}` is quarantined (scan verdict {})",
            file.path,
            s.verdict.map_or("held", |v| v.as_str())
        ))),
        Some(s) => match s.verdict {
            Some(ScanVerdict::Clean) => Ok(None),
            Some(_) if s.released_at.is_some() => Ok(None),
            Some(other) => Ok(Some(format!(
                "not run: the scan of `{}` found it {other}; only files whose scan passed are run",
                file.path
            ))),
            None if waited_too_long => Ok(Some(format!(
                "not run: the scan of `{}` has not finished within {} minutes",
                file.path,
                SCAN_PATIENCE.num_minutes()
            ))),
            None => Err(JobError::Defer(
                Duration::from_secs(3),
                format!("waiting for the scan of {}", file.path),
            )),
        },
        None => Err(JobError::Permanent(anyhow::anyhow!(
            "blob of {} is not recorded",
            file.path
        ))),
    }
}

async fn write_blob(ctx: &JobContext, file: &FileRow, target: &Path) -> anyhow::Result<()> {
    let digest = file.sha256;
    if let Some(dir) = target.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut out = tokio::fs::File::create(target).await?;
    let mut stream = ctx.store.read(&digest, 0..file.size as u64).await?;
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?).await?;
    }
    out.flush().await?;
    Ok(())
}

/// `verify-commit` `{repository_id, commit_id, ep}`.
pub async fn verify_commit(
    ctx: JobContext,
    payload: crate::domain::task::VerifyCommit,
    worker: &str,
) -> Result<(), JobError> {
    let Some((repo, mut conn)) = crate::jobs::repository_of(&ctx, payload.repository_id).await?
    else {
        return Ok(());
    };
    let files = db::commits::files(&mut conn, repo.id, &payload.commit_id)
        .await
        .context("commit files")?;
    let settings = &ctx.settings.verification;
    let ep = match payload.ep.as_deref() {
        Some("cpu") => Ep::Cpu,
        Some("cuda") => Ep::Cuda,
        _ => settings.ep,
    };

    // Every file a model needs must have passed its scan; wait while scans are pending.
    let waited_too_long = db::verifications::get(&mut conn, repo.id, &payload.commit_id)
        .await
        .context("verification row")?
        .is_some_and(|row| chrono::Utc::now() - row.queued_at > SCAN_PATIENCE);
    let models = models(&files);
    let mut plan = Vec::new();
    for model in &models {
        let Some(row) = files.iter().find(|f| &f.path == model) else {
            continue;
        };
        let mut needed = vec![row];
        needed.extend(vector_files(model, &files));
        let mut blocked = None;
        for f in &needed {
            if let Some(reason) = scan_gate(&mut conn, f, waited_too_long).await? {
                blocked.get_or_insert(reason);
            }
        }
        plan.push((model.clone(), needed, blocked));
    }
    let card = match files
        .iter()
        .find(|f| f.path == "README.md" && f.size < 1 << 20)
    {
        Some(readme) => crate::licensing::read_text(&ctx.store, &readme.sha256, readme.size)
            .await
            .unwrap_or_default(),
        None => String::new(),
    };
    db::verifications::mark_running(&mut conn, repo.id, &payload.commit_id, worker)
        .await
        .context("marking the run")?;
    drop(conn);

    let card_settings = settings::from_card(&card);
    let root = settings.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    tokio::fs::create_dir_all(&root)
        .await
        .context("work folder")?;
    let work = tempfile::Builder::new()
        .prefix("kaiyuan-verify-")
        .tempdir_in(&root)
        .context("work folder")?;
    // One child process verifies every model of the commit, loading ONNX Runtime once.
    let settings = &ctx.settings.verification;
    let command = match &settings.program {
        Some(program) => ChildCommand {
            program: program.clone(),
            args: vec![crate::verify_cli::CHILD_SUBCOMMAND.into()],
        },
        None => ChildCommand::current_exe(crate::verify_cli::CHILD_SUBCOMMAND)
            .context("locating this program")?,
    };
    let config = ChildConfig {
        ep,
        library: runtime::library_path(settings.onnxruntime_library.as_deref(), ep),
        limits: Limits {
            memory_bytes: settings.memory_mib << 20,
            cpu_seconds: settings.timeout_secs,
            wall_seconds: settings.timeout_secs,
        },
        models: plan.len() as u64,
    };
    let mut verifier = Some(Verifier::new(command, config));
    let mut results = Vec::new();
    for (model, needed, blocked) in plan {
        let report = match (&card_settings, blocked) {
            (_, Some(reason)) => {
                ModelReport::new(&model, ep.as_str(), 0).fail(Status::Error, reason)
            }
            (Err(e), None) => {
                ModelReport::new(&model, ep.as_str(), 0).fail(Status::Error, e.clone())
            }
            (Ok(card), None) => {
                let mut s = card.clone().unwrap_or_default();
                for (name, value) in &settings.dims {
                    s.dims.entry(name.clone()).or_insert(*value);
                }
                if let Err(e) = s.validate() {
                    results.push(
                        ModelReport::new(&model, ep.as_str(), 0)
                            .fail(Status::Error, format!("hub configuration: {e}")),
                    );
                    continue;
                }
                let run = Run {
                    ctx: &ctx,
                    work: work.path(),
                    files: &files,
                    ep,
                    waited_too_long,
                };
                run_model(&run, &model, &needed, s, &mut verifier).await?
            }
        };
        results.push(report);
    }
    let status = overall(&results);
    let json: Vec<serde_json::Value> = results
        .iter()
        .map(|r| serde_json::json!({"path": r.path, "status": r.status.as_str(), "report": r}))
        .collect();
    let mut tx = ctx.db.begin().await.context("database")?;
    db::verifications::finish(
        &mut tx,
        repo.id,
        &payload.commit_id,
        status,
        &serde_json::Value::Array(json),
    )
    .await
    .context("storing the verification")?;
    let entry = crate::domain::log_entry::LogEntry::Verification {
        commit: payload.commit_id.clone(),
        status: status.to_string(),
        providers: results.iter().filter_map(|r| r.provider.clone()).collect(),
        onnxruntime: results.iter().find_map(|r| r.onnxruntime_version.clone()),
    };
    crate::tlog::append_about(&mut tx, &repo, &entry)
        .await
        .context("logging the verification")?;
    tx.commit().await.context("committing the verification")?;
    tracing::info!(commit = %payload.commit_id, status = %status, models = results.len(), "verified commit");
    Ok(())
}

/// A commit's status: its worst model's, where `inconclusive` (nothing realistic ran) is
/// better than `error` or `failed` and worse than `passed`.
fn overall(results: &[ModelReport]) -> VerificationStatus {
    let worst = [Status::Failed, Status::Error, Status::Inconclusive]
        .into_iter()
        .find(|worst| results.iter().any(|r| r.status == *worst));
    match worst {
        Some(Status::Failed) => VerificationStatus::Failed,
        Some(Status::Error) => VerificationStatus::Error,
        Some(_) => VerificationStatus::Inconclusive,
        None => VerificationStatus::Passed,
    }
}

/// Writes the model and its files under `work`, resolves its external data within the commit,
/// and runs the child.
/// What every model of one commit's run shares.
struct Run<'a> {
    ctx: &'a JobContext,
    work: &'a Path,
    files: &'a [FileRow],
    ep: Ep,
    waited_too_long: bool,
}

async fn run_model(
    run: &Run<'_>,
    model: &str,
    needed: &[&FileRow],
    card: VerifySettings,
    verifier: &mut Option<Verifier>,
) -> Result<ModelReport, JobError> {
    let Run {
        ctx,
        work,
        files,
        ep,
        ..
    } = *run;
    let folder = tempfile::tempdir_in(work).context("model folder")?;
    let target = |path: &str| -> PathBuf { folder.path().join(path) };
    for f in needed {
        write_blob(ctx, f, &target(&f.path))
            .await
            .map_err(JobError::Retry)?;
    }
    // External data named by the model must be files of this commit.
    let model_path = target(model);
    let header = {
        let p = model_path.clone();
        tokio::task::spawn_blocking(move || kaiyuan_verifier::model_info::read_header(&p))
            .await
            .map_err(|e| JobError::Retry(anyhow::anyhow!("header task: {e}")))?
    };
    if let Ok(header) = &header {
        let mut conn = ctx.db.acquire().await.context("database")?;
        for location in &header.external_data {
            if let Some(problem) = kaiyuan_verifier::model_info::location_problem(location) {
                return Ok(ModelReport::new(model, ep.as_str(), card.seed()).fail(
                    Status::Failed,
                    format!("external data location `{location}` {problem}"),
                ));
            }
            let wanted = normalise(&join(parent(model), location));
            let Some(file) = files.iter().find(|f| Some(&f.path) == wanted.as_ref()) else {
                return Ok(ModelReport::new(model, ep.as_str(), card.seed()).fail(
                    Status::Failed,
                    format!("external data file `{location}` is not in this commit"),
                ));
            };
            if let Some(reason) = scan_gate(&mut conn, file, run.waited_too_long).await? {
                return Ok(
                    ModelReport::new(model, ep.as_str(), card.seed()).fail(Status::Error, reason)
                );
            }
            write_blob(ctx, file, &target(&file.path))
                .await
                .map_err(JobError::Retry)?;
        }
    }
    let request = ModelRequest {
        model: model_path,
        display: model.to_string(),
        settings: card,
    };
    let mut taken = verifier
        .take()
        .expect("the verifier is returned after each model");
    let (back, report) = tokio::task::spawn_blocking(move || {
        let report = taken.verify(&request);
        (taken, report)
    })
    .await
    .map_err(|e| JobError::Retry(anyhow::anyhow!("verification task: {e}")))?;
    *verifier = Some(back);
    drop(folder);
    Ok(report)
}

/// `a/./b/../c` to `a/c`; `None` when it climbs above the root.
fn normalise(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}
