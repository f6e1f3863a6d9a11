// kaiyuan's small enhancements. Pages read fine without it; this adds upload progress, filters
// that apply on change, report sending and live status updates.
"use strict";

function csrfToken() {
  const main = document.getElementById("main");
  return main ? main.dataset.csrf : "";
}

// Filters and revision pickers apply as soon as they change.
document.addEventListener("change", (event) => {
  const form = event.target.closest("form[data-autosubmit]") ||
    (event.target.matches("[data-autosubmit]") ? event.target.form : null);
  if (form && event.target.tagName === "SELECT") form.submit();
});

// Folded filters open by themselves where there is room for them (wider than a phone).
if (window.matchMedia("(min-width: 40rem)").matches) {
  for (const details of document.querySelectorAll("details[data-open-wide]")) details.open = true;
}

// Uploads: every file streams to /uploads with its progress, then one commit records them.
function sendFile(repo, file, bar) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/repos/${repo}/uploads`);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) { bar.max = e.total; bar.value = e.loaded; } };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) { bar.value = bar.max; resolve(body); }
      else reject(new Error(`${file.name}: ${(body.error && body.error.message) || xhr.status}`));
    };
    xhr.onerror = () => reject(new Error(`${file.name}: the connection failed`));
    xhr.send(file);
  });
}

async function upload(form) {
  const repo = form.dataset.repo;
  const status = document.getElementById("upload-status");
  const list = document.getElementById("progress");
  const files = [...form.files.files, ...form.folder.files];
  if (files.length === 0) { status.textContent = "Choose files or a folder first."; return; }
  // One upload at a time: a second click would send every file again, in parallel.
  const button = form.querySelector("button[type=submit]");
  if (form.dataset.busy) return;
  form.dataset.busy = "1";
  button.disabled = true;
  list.textContent = "";
  const operations = [];
  status.textContent = `Uploading ${files.length} file(s)…`;
  try {
    for (const file of files) {
      const path = file.webkitRelativePath ? file.webkitRelativePath.split("/").slice(1).join("/") : file.name;
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = path;
      const bar = document.createElement("progress");
      bar.max = file.size || 1; bar.value = 0;
      bar.setAttribute("aria-label", `upload of ${path}`);
      item.append(label, bar);
      list.append(item);
      const stored = await sendFile(repo, file, bar);
      operations.push({ op: "put", path, sha256: stored.sha256, size: stored.size });
    }
    const license = form.license.value.trim();
    if (license && !operations.some((o) => o.path === "README.md")) {
      const card = `---\nlicense: ${license}\n---\n`;
      operations.push({ op: "put", path: "README.md", content_base64: btoa(card) });
    }
    const response = await fetch(`/api/v1/repos/${repo}/commits/main`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify({ message: form.message.value, operations }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error((body.error && body.error.message) || response.status);
    status.textContent = `Committed ${body.id.slice(0, 12)}. Checks are running.`;
    window.location.assign(`/${repo}`);
  } catch (error) {
    status.textContent = `Upload failed: ${error.message}`;
    delete form.dataset.busy;
    button.disabled = false;
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.id === "upload") { event.preventDefault(); upload(form); }
  if (form.dataset.report || form.dataset.api) {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    for (const key of Object.keys(data)) if (data[key] === "") delete data[key];
    // The form's own fields for its no-script post: the API takes the token as a header and
    // the revision from the URL.
    delete data.csrf;
    if (form.dataset.api && form.dataset.api.includes("/publish")) delete data.report;
    if (form.dataset.api && form.dataset.api.includes("/verification")) delete data.revision;
    const status = form.querySelector(".status");
    fetch(form.dataset.report || form.dataset.api, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(data),
    }).then(async (r) => {
      const body = await r.json().catch(() => ({}));
      if (!r.ok) { status.textContent = `Not sent: ${(body.error && body.error.message) || r.status}`; return; }
      if (form.dataset.report) {
        status.textContent = "";
        const link = document.createElement("a");
        link.href = `/reports/${body.id}`;
        link.textContent = `Report #${body.id}`;
        status.append(link, " sent; reviewers will look at it.");
      }
      else window.location.reload();
    });
  }
});

// While checks are pending, reload the page now and then so results appear by themselves,
// but never under someone typing, and not forever.
if (document.querySelector("[data-live]")) {
  let typed = false;
  document.addEventListener("input", () => { typed = true; });
  const reloads = Number(sessionStorage.getItem("kaiyuan-reloads") || 0);
  if (reloads < 100) {
    setTimeout(() => {
      const busy = typed || (document.activeElement && document.activeElement.matches("input, textarea, select"));
      if (!busy) {
        sessionStorage.setItem("kaiyuan-reloads", String(reloads + 1));
        window.location.reload();
      }
    }, 3000);
  }
} else {
  sessionStorage.removeItem("kaiyuan-reloads");
}

// Copy buttons: the text of the element the button names.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const target = document.querySelector(button.dataset.copy);
  if (target && navigator.clipboard) {
    navigator.clipboard.writeText(target.textContent.trim()).then(() => { button.textContent = "copied"; });
  }
});
