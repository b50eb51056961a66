// Evidence depository console: drag and drop with upload progress, and drop zones on /verify.
// No framework and no inline script (the pages' Content-Security-Policy forbids it).
"use strict";

function wireDropzone(zone, input, onChoose) {
  const chosen = zone.querySelector("[aria-live]");
  const show = () => {
    if (chosen) chosen.textContent = input.files.length ? "Chosen: " + input.files[0].name : "";
  };
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => {
    e.preventDefault(); zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    const dt = new DataTransfer();
    dt.items.add(e.dataTransfer.files[0]);
    input.files = dt.files;
    show();
    if (onChoose) onChoose();
  });
  input.addEventListener("change", show);
}

function problemText(xhr) {
  try {
    const p = JSON.parse(xhr.responseText);
    return p.detail || p.title || ("Error " + xhr.status);
  } catch (_) {
    return "The upload failed (" + xhr.status + ").";
  }
}

function wireUpload(form) {
  const input = form.querySelector("#file");
  const zone = form.querySelector("#dropzone");
  const row = form.querySelector("#progress-row");
  const bar = form.querySelector("#progress");
  const text = form.querySelector("#progress-text");
  const error = form.querySelector("#upload-error");
  const button = form.querySelector("#upload-button");
  const max = Number(form.dataset.maxBytes || 0);
  wireDropzone(zone, input);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    error.hidden = true;
    if (!input.files.length) { error.textContent = "Choose a file first."; error.hidden = false; return; }
    if (max && input.files[0].size > max) {
      error.textContent = "The file is larger than the limit of " + max + " bytes."; error.hidden = false; return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", form.querySelector("[name=csrf_token]").value);
    row.hidden = false; bar.value = 0; text.textContent = "0%"; button.disabled = true;
    xhr.upload.addEventListener("progress", (ev) => {
      if (ev.lengthComputable) {
        const pct = Math.round((ev.loaded / ev.total) * 100);
        bar.value = pct; bar.textContent = pct + "%"; text.textContent = pct + "%";
      }
    });
    xhr.addEventListener("load", () => {
      button.disabled = false;
      if (xhr.status === 201) {
        bar.value = 100; text.textContent = "Deposited";
        window.location.assign(JSON.parse(xhr.responseText).url);
      } else {
        row.hidden = true; error.textContent = problemText(xhr); error.hidden = false;
      }
    });
    xhr.addEventListener("error", () => {
      button.disabled = false; row.hidden = true;
      error.textContent = "The connection failed; nothing was deposited."; error.hidden = false;
    });
    xhr.send(new FormData(form));
  });
}

// /verify lookup: the SHA-256 of a chosen file, computed in the browser (the file never leaves it).
function wireHashFile(input) {
  const target = document.getElementById(input.dataset.sha256Into);
  const status = document.getElementById("hash-status");
  input.addEventListener("change", async () => {
    if (!input.files.length || !target) return;
    if (!window.crypto || !window.crypto.subtle) {
      if (status) status.textContent = "This browser cannot compute SHA-256 here; type the hash instead.";
      return;
    }
    if (status) status.textContent = "Computing the SHA-256 of " + input.files[0].name + "…";
    const digest = await window.crypto.subtle.digest("SHA-256", await input.files[0].arrayBuffer());
    target.value = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
    if (status) status.textContent = "SHA-256 computed; press “Look it up”.";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-sha256-into]").forEach(wireHashFile);
  const upload = document.getElementById("upload-form");
  if (upload) wireUpload(upload);
  document.querySelectorAll("[data-drop-for]").forEach((zone) => {
    const input = document.getElementById(zone.dataset.dropFor);
    if (input) wireDropzone(zone, input);
  });
});
