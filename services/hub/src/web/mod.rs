//! The web UI: server-rendered pages over the same data and permissions as the API. Reading
//! works without JavaScript; `web/static/app.js` adds upload progress, filter auto-submit and
//! live status updates. Routes sit after the API's, so `/api/...`, the Hugging Face routes and
//! `/{namespace}/{name}/resolve/...` keep their meaning.

mod forms;
pub mod markdown;
mod model;
mod orgs;
mod pages;
mod policy_form;
pub mod render;
pub mod session;
mod viewer;

use actix_web::{HttpResponse, web};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pages::home))
        .route("/static/{file}", web::get().to(asset))
        // Browsers ask for it whatever the page says.
        .route(
            "/favicon.ico",
            web::get().to(|| async { session::redirect("/static/favicon.svg") }),
        )
        .route("/sign-in", web::get().to(pages::sign_in_form))
        .route("/sign-in", web::post().to(pages::sign_in))
        .route("/sign-out", web::post().to(pages::sign_out))
        .route("/new", web::get().to(pages::new_repo_form))
        .route("/new", web::post().to(pages::new_repo))
        .route("/settings/tokens", web::get().to(pages::tokens))
        .route("/settings/tokens", web::post().to(pages::create_token))
        .route(
            "/settings/tokens/{id}/revoke",
            web::post().to(pages::revoke_token),
        )
        .route("/reviews", web::get().to(pages::review_queue))
        .route("/reports/{id}", web::get().to(pages::report_page))
        .route("/reports/{id}/comment", web::post().to(forms::comment))
        .route("/reports/{id}/triage", web::post().to(forms::triage))
        .route(
            "/reports/{id}/advisory",
            web::post().to(forms::draft_advisory),
        )
        .route(
            "/advisories/{id}/publish",
            web::post().to(forms::publish_advisory),
        )
        .route("/orgs/new", web::get().to(orgs::new_org_form))
        .route("/orgs/new", web::post().to(orgs::create_org))
        .route(
            "/orgs/{namespace}/members",
            web::post().to(orgs::set_member),
        )
        .route(
            "/orgs/{namespace}/members/{user}/remove",
            web::post().to(orgs::remove_member),
        )
        .route(
            "/orgs/{namespace}/policy",
            web::get().to(pages::policy_page),
        )
        .route(
            "/orgs/{namespace}/policy",
            web::post().to(pages::save_policy),
        )
        .route("/{namespace}", web::get().to(pages::namespace))
        .route("/{namespace}/{name}", web::get().to(model::model_page))
        .route("/{namespace}/{name}/report", web::post().to(forms::report))
        .route("/{namespace}/{name}/accept", web::post().to(forms::accept))
        .route(
            "/{namespace}/{name}/access-request",
            web::post().to(forms::access_request),
        )
        .route("/{namespace}/{name}/verify", web::post().to(forms::verify))
        .route(
            "/{namespace}/{name}/upload",
            web::get().to(model::upload_page),
        )
        .route(
            "/{namespace}/{name}/commits",
            web::get().to(model::commits_page),
        )
        .route(
            "/{namespace}/{name}/commit/{id}",
            web::get().to(model::commit_page),
        )
        // Hugging Face Hub page links carry over.
        .route("/{namespace}/{name}/tree/{rev}", web::get().to(tree_link))
        .route(
            "/{namespace}/{name}/blob/{rev}/{path:.*}",
            web::get().to(viewer::blob_page),
        );
}

/// `/{ns}/{name}/tree/{rev}` on the Hugging Face Hub: the model page at that revision.
async fn tree_link(path: web::Path<(String, String, String)>) -> HttpResponse {
    let (namespace, name, rev) = path.into_inner();
    let rev: String = url::form_urlencoded::byte_serialize(rev.as_bytes()).collect();
    session::redirect(&format!("/{namespace}/{name}?rev={rev}#files"))
}

/// CSS and JavaScript, embedded in the binary.
async fn asset(path: web::Path<String>) -> HttpResponse {
    let (body, kind): (&'static str, &str) = match path.as_str() {
        "style.css" => (
            include_str!("../../../../web/static/style.css"),
            "text/css; charset=utf-8",
        ),
        "app.js" => (
            include_str!("../../../../web/static/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "favicon.svg" => (
            include_str!("../../../../web/static/favicon.svg"),
            "image/svg+xml",
        ),
        _ => {
            return HttpResponse::NotFound()
                .content_type("text/plain")
                .body("no such asset");
        }
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header(("cache-control", "public, max-age=300"))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(body)
}
