// The read-only file viewer: a reference such as src/app.py:12-30 in an answer opens the file
// around those lines, read by the server through the same sandbox as the assistant's tools.

import { api, enc } from "./api.js";
import { $, el } from "./dom.js";

const CONTEXT_LINES = 200;
let returnFocus = null;
let request = 0;

export function closeViewer() {
  if ($("viewer").hidden) return;
  $("viewer").hidden = true;
  document.body.classList.remove("viewer-open");
  if (returnFocus && returnFocus.isConnected) returnFocus.focus();
  returnFocus = null;
}

export async function openViewer(project, path, start, end, opener) {
  const ticket = ++request;
  returnFocus = opener || document.activeElement;
  const viewer = $("viewer");
  viewer.hidden = false;
  document.body.classList.add("viewer-open");
  $("viewer-title").textContent = `${path}:${start === end ? start : `${start}-${end}`}`;
  $("viewer-meta").textContent = "Loading…";
  $("viewer-body").replaceChildren();
  $("viewer-title").focus();
  const from = Math.max(1, start - CONTEXT_LINES);
  const query = `path=${enc(path)}&start=${from}&end=${end + CONTEXT_LINES}`;
  try {
    const file = await api(`/api/assistant/files/${enc(project)}?${query}`);
    if (ticket !== request) return;
    showLines(file, start, end);
  } catch (err) {
    if (ticket !== request) return;
    $("viewer-meta").textContent = "";
    $("viewer-body").replaceChildren(el("p", { class: "viewer-error", role: "alert" }, err.message));
  }
}

function showLines(file, start, end) {
  const total = file.total == null ? "a large file" : `${file.total} lines`;
  $("viewer-meta").textContent = `${file.path} · ${total} · read-only`;
  const width = String(file.end).length;
  const rows = file.lines.map(({ n, text }) => {
    const cited = n >= start && n <= end;
    return el(
      "div",
      { class: cited ? "line cited" : "line", "data-line": n },
      el("span", { class: "ln", "aria-hidden": "true" }, String(n).padStart(width, " ")),
      el("code", {}, text || " "),
    );
  });
  if (!rows.length) rows.push(el("p", { class: "hint" }, `Line ${start} is past the end of the file.`));
  const pre = el("pre", { class: "viewer-lines" }, ...rows);
  $("viewer-body").replaceChildren(pre);
  const first = pre.querySelector(".cited");
  if (first) first.scrollIntoView({ block: "center" });
}
