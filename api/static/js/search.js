// Search over the user's own conversations (titles and messages, all projects): results with
// the server's snippet, its matches marked. The snippet arrives as segments ({text, match}) and
// is built from text nodes and <mark> elements: server text is never parsed as HTML.

import { api, enc } from "./api.js";
import { $, el, relativeTime } from "./dom.js";
import { UNTITLED } from "./history.js";

const WAIT_MS = 250;
const LIMIT = 20;
let timer = null;
let ticket = 0;
let onOpen = () => {};

const ROLE = { user: "Question", assistant: "Reply" };

function snippet(segments) {
  const parts = (Array.isArray(segments) ? segments : []).map((s) =>
    s && s.match ? el("mark", {}, String(s.text ?? "")) : document.createTextNode(String((s && s.text) ?? "")),
  );
  return el("span", { class: "hit-snippet" }, ...parts);
}

function hitItem(hit, project) {
  const where = hit.message_id == null ? "Title" : ROLE[hit.role] || "Message";
  const meta = [where];
  if (hit.project_name !== project) meta.push(hit.project_name);
  const when = relativeTime(hit.created_at);
  if (when) meta.push(when);
  const open = el(
    "button",
    {
      class: "history-open search-hit",
      type: "button",
      "data-conversation-id": hit.conversation_id,
      "data-message-id": hit.message_id,
      onclick: () => onOpen(hit),
    },
    el("span", { class: "history-title" }, hit.conversation_title || UNTITLED),
    snippet(hit.snippet),
    el("span", { class: "history-meta" }, meta.join(" · ")),
  );
  return el("li", {}, open);
}

function show(active) {
  $("search-results").hidden = !active;
  $("history-section").hidden = active;
}

/** Run the query now (Enter) or after a short pause in typing. */
async function run(query, project) {
  const mine = ++ticket;
  clearTimeout(timer);
  if (!query) {
    show(false);
    $("search-list").replaceChildren();
    $("search-status").textContent = "";
    return;
  }
  show(true);
  $("search-status").textContent = "Searching…";
  let found;
  try {
    found = await api(`/api/assistant/search?q=${enc(query)}&limit=${LIMIT}`);
  } catch (err) {
    if (mine === ticket) {
      $("search-list").replaceChildren();
      $("search-status").textContent = err.message;
    }
    return;
  }
  if (mine !== ticket) return;
  const results = (found && found.results) || [];
  $("search-list").replaceChildren(...results.map((hit) => hitItem(hit, project())));
  $("search-status").textContent = results.length
    ? `${results.length} result${results.length === 1 ? "" : "s"}`
    : "Nothing found.";
}

/** project(): the project shown; open(hit): show the conversation and the message. */
export function wireSearch(project, open) {
  onOpen = open;
  const input = $("search");
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    run(input.value.trim(), project);
  });
  input.addEventListener("input", () => {
    clearTimeout(timer);
    const query = input.value.trim();
    if (!query) return run("", project);
    timer = setTimeout(() => run(query, project), WAIT_MS);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && input.value) {
      e.preventDefault();
      e.stopPropagation();
      input.value = "";
      run("", project);
    }
  });
}
