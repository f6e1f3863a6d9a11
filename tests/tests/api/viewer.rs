//! The file viewer on model formats the hub parses: a GGUF file's metadata and tensors and an
//! ONNX model's opsets, inputs and outputs, from real files written by the libraries that
//! produce them; a truncated or lying file is shown as a binary file, never an error page.

use reqwest::StatusCode;
use sqlx::PgPool;

use kaiyuan_tests::{TestApp, run_python, spawn_app};

async fn page(app: &TestApp, path: &str) -> String {
    let res = app.get(path, None).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.text().await.unwrap()
}

fn assert_shows(page: &str, expected: &[&str]) {
    for e in expected {
        assert!(page.contains(e), "{e} not shown: {page}");
    }
}

#[sqlx::test(migrator = "kaiyuan_hub::db::MIGRATOR")]
async fn the_viewer_shows_gguf_metadata_and_onnx_signatures(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    run_python("make_viewer_models.py", &[dir.path().as_os_str()]);
    let gguf = std::fs::read(dir.path().join("model.gguf")).unwrap();
    let onnx = std::fs::read(dir.path().join("model.onnx")).unwrap();
    // Cut inside the metadata (the vocabulary), and a field whose length runs past the file.
    let truncated = gguf[..gguf.len().min(4096)].to_vec();
    let mut lying = onnx.clone();
    lying.extend([0x72, 0xff, 0xff, 0xff, 0x0f, b'x']);

    let app = spawn_app(pool).await;
    let alice = app.create_user("alice").await;
    app.create_repo(&alice, "alice", "m", "public").await;
    app.commit_files(
        &alice,
        "alice/m",
        &[
            ("model.gguf", &gguf),
            ("model.onnx", &onnx),
            ("broken.gguf", &truncated),
            ("lying.onnx", &lying),
        ],
    )
    .await;
    app.run_jobs().await;

    let html = page(&app, "/alice/m/blob/main/model.gguf").await;
    assert_shows(
        &html,
        &[
            "GGUF version 3",
            "viewer-tiny",
            "<dt>Architecture</dt><dd>llama</dd>",
            "<dt>Licence</dt><dd>apache-2.0</dd>",
            "<dt>Quantization</dt><dd>F16</dd>",
            "<dt>Context length</dt><dd>4096</dd>",
            "tokenizer.ggml.tokens",
            "3000 items (string)",
            "token_embd.weight",
            "output_norm.weight",
            "[16, 3000]",
            "2 tensors",
            "48016 parameters",
        ],
    );
    assert!(!html.contains("tok2999"), "the vocabulary is summarised");

    let html = page(&app, "/alice/m/blob/main/model.onnx").await;
    assert_shows(
        &html,
        &[
            "<dt>IR version</dt>",
            "kaiyuan-viewer-test 1.2",
            "<code>ai.onnx 17</code>",
            "<code>ai.onnx.ml 3</code>",
            "<code>features</code>",
            "tensor(float32)",
            "[batch, 8]",
            "<code>scores</code>",
            "[batch, 4]",
            "<code>history</code>",
            "sequence(tensor(float32))",
            "<dt>author</dt><dd class=\"wrap\">kaiyuan tests</dd>",
            "<dt>Initializers</dt><dd>2</dd>",
        ],
    );
    // `W` is an initializer that IR 3 style also lists as an input: not a real input.
    let inputs = html.split("id=\"onnx-inputs\"").nth(1).unwrap();
    let inputs = inputs.split("</table>").next().unwrap();
    assert!(!inputs.contains("<code>W</code>"), "{inputs}");

    for broken in ["broken.gguf", "lying.onnx"] {
        let html = page(&app, &format!("/alice/m/blob/main/{broken}")).await;
        assert!(html.contains("A binary file"), "{broken}: {html}");
    }
}
