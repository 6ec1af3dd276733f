// The page: projects, History, search, the composer and the connection status, wired to
// chat.js.

import { lockActions, startEdit } from "./actions.js";
import { api, enc, token } from "./api.js";
import { editQuestion, openAt, refreshMeta, regenerate, renamed, switchVersion } from "./branches.js";
import {
  S,
  ask,
  busy,
  newChat,
  onChunk,
  onSocketOpen,
  openConversation,
  rememberConversation,
  rememberedConversation,
  stop,
  ui,
} from "./chat.js";
import { $ } from "./dom.js";
import { confirmDelete, renderHistory, UNTITLED } from "./history.js";
import { closeExportMenu, wireExport } from "./exporting.js";
import { fillIcons } from "./icons.js";
import { renameConversation } from "./rename.js";
import { wireSearch } from "./search.js";
import { Connection } from "./socket.js";
import { loadMonthUsage } from "./usage.js";
import { closeViewer, openViewer } from "./viewer.js";
import { announce } from "./announce.js";

let projects = [];
let history = [];
let historyTicket = 0;

/* ---- banner: errors said plainly, with Retry when there is something to retry ---- */
function showError(text, retry) {
  $("banner").hidden = !text;
  if (!text) return;
  $("banner-text").textContent = text;
  const button = $("banner-retry");
  button.hidden = !retry;
  button.onclick = retry
    ? () => {
        showError(null);
        retry();
      }
    : null;
}

/* ---- controls ---- */
const CONN_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  reconnecting: "Reconnecting…",
  open: "Connected",
};

function onConnState(state, detail) {
  const box = $("conn");
  box.dataset.state = state;
  let text = CONN_TEXT[state];
  if (state === "waiting") text = `Connection lost. Retrying in ${detail} s…`;
  if (state === "failed" || state === "stopped") text = "Disconnected";
  $("conn-text").textContent = text;
  $("reconnect").hidden = !(state === "waiting" || state === "stopped");
  if (state === "failed") showError(detail, null);
  if (state === "stopped") showError(detail, reconnect);
  if (state === "open") onSocketOpen();
  updateControls();
}

function reconnect() {
  if (!S.project) return;
  if (S.conn && S.conn.state === "stopped") connectProject();
  else if (S.conn) S.conn.reconnectNow();
}

function updateControls() {
  const connected = Boolean(S.conn && S.conn.open);
  const input = $("input");
  const hadFocus = document.activeElement === input;
  input.disabled = !connected;
  input.placeholder = connected
    ? `Ask about ${S.project}…`
    : S.project
      ? "Waiting for the connection…"
      : "Pick a project first";
  $("send").disabled = !connected || busy() || !input.value.trim();
  $("stop").hidden = !S.active;
  $("send").hidden = Boolean(S.active);
  $("new-chat").disabled = !S.project;
  lockActions(busy());
  // Rename and export need a stored conversation.
  $("rename-title").hidden = S.convId == null || !S.project;
  $("export").hidden = S.convId == null || !S.project;
  if ($("export").hidden) $("export").open = false;
  const current = history.find((c) => c.id === S.convId);
  const title = S.convId == null ? "New chat" : (current && current.title) || S.title || UNTITLED;
  $("title").textContent = S.project ? title : "Project assistant";
  document.title = S.project ? `${title} · ${S.project} · Project assistant` : "Project assistant";
  if (hadFocus && input.disabled) $("log").focus();
  drawHistory();
}

/* ---- History ---- */
let drawn = "";

function drawHistory(force = false) {
  // Redrawn only when something shown changed: keeps keyboard focus inside the list.
  const key = JSON.stringify([S.convId, history]);
  if (!force && key === drawn) return;
  drawn = key;
  const focused = document.activeElement;
  const refocus = focused && focused.closest && focused.closest("#history li") ? focused.className : null;
  const focusedId = refocus && focused.closest("li").querySelector(".history-open").dataset.id;
  renderHistory(history, S.convId, {
    onOpen: openFromHistory,
    onRename: rename,
    onDelete: deleteConversation,
  });
  if (refocus) {
    const again = $("history").querySelector(`.history-open[data-id="${focusedId}"]`);
    const target = again && again.closest("li").querySelector(`.${refocus.split(" ").join(".")}`);
    if (target) target.focus();
  }
}

async function loadHistory() {
  if (!S.project) return;
  const ticket = ++historyTicket;
  const project = S.project;
  try {
    const list = await api(`/api/assistant/conversations/${enc(project)}`);
    if (ticket !== historyTicket || project !== S.project) return;
    history = list;
    drawHistory();
    updateControls();
  } catch (err) {
    if (ticket === historyTicket) showError(err.message, loadHistory);
  }
}

function openFromHistory(id) {
  closeNav();
  if (id !== S.convId || !S.active) openConversation(id);
  $("input").focus();
}

async function rename(conv) {
  const saved = await renameConversation(S.project, conv);
  if (!saved) return;
  announce("Conversation renamed.");
  history = history.map((c) => (c.id === saved.id ? { ...c, title: saved.title } : c));
  renamed(saved.id, saved.title);
  drawHistory();
  loadHistory();
}

function renameOpen() {
  if (S.convId == null) return;
  const current = history.find((c) => c.id === S.convId);
  rename({ id: S.convId, title: (current && current.title) || S.title });
}

/** A search result: its project, its conversation, the message itself. */
function openHit(hit) {
  closeNav();
  const target = hit.message_id ?? null;
  if (hit.project_name !== S.project) {
    if (!projects.some((p) => p.name === hit.project_name)) return;
    rememberConversation(hit.project_name, hit.conversation_id);
    selectProject(hit.project_name, target);
    return;
  }
  openAt(hit.conversation_id, target);
}

async function deleteConversation(conv) {
  if (!(await confirmDelete(conv.title))) return;
  try {
    await api(`/api/assistant/conversations/${enc(S.project)}/${conv.id}`, { method: "DELETE" });
  } catch (err) {
    showError(err.message, () => deleteConversation(conv));
    return;
  }
  if (rememberedConversation(S.project) === conv.id) rememberConversation(S.project, null);
  if (conv.id === S.convId) newChat();
  announce("Conversation deleted.");
  history = history.filter((c) => c.id !== conv.id);
  drawHistory();
  loadHistory();
}

/* ---- projects ---- */
async function loadProjects() {
  const select = $("project");
  try {
    projects = await api("/api/projects");
  } catch (err) {
    projects = [];
    select.replaceChildren(new Option("No projects available", ""));
    select.disabled = true;
    showError(err.message, loadProjects);
    if (err.status === 401) {
      $("access").open = true;
      $("token").focus();
    }
    return;
  }
  select.replaceChildren(...projects.map((p) => new Option(p.name, p.name)));
  if (!projects.length) select.append(new Option("No projects registered", ""));
  select.disabled = !projects.length;
  const saved = localStorage.getItem("pa.project");
  const pick = projects.find((p) => p.name === saved) || projects[0];
  if (pick) selectProject(pick.name);
}

function connectProject() {
  if (S.conn) S.conn.close();
  S.conn = new Connection(S.project, token.get(), { onOpen: () => {}, onChunk, onState: onConnState });
  S.conn.connect();
}

/** target: the message to show, when a search result led here. */
function selectProject(name, target = null) {
  const project = projects.find((p) => p.name === name);
  if (!project) return;
  // Picking the project already open (the list reloaded, or the same option chosen again)
  // keeps its connection and conversation.
  const live = S.conn && S.conn.token === token.get() && !["failed", "stopped"].includes(S.conn.state);
  if (name === S.project && live) return;
  S.project = name;
  localStorage.setItem("pa.project", name);
  $("project").value = name;
  // Only administrators are shown where a project lives on the server.
  $("project-path").hidden = !project.path;
  $("project-path").textContent = project.path || "";
  history = [];
  showError(null);
  closeViewer();
  connectProject();
  const last = rememberedConversation(name);
  if (last != null) openAt(last, target);
  else newChat();
  loadHistory();
}

/* ---- composer, copy, references ---- */
function submit() {
  const input = $("input");
  const text = input.value.trim();
  if (!text || busy()) return;
  if (ask(text)) input.value = "";
  updateControls();
}

async function copyCode(button) {
  const code = button.closest(".code-block").querySelector("pre").innerText.replace(/\n$/, "");
  try {
    await navigator.clipboard.writeText(code);
  } catch {
    // Not a secure context (plain http on a LAN address): the older way still works.
    const area = Object.assign(document.createElement("textarea"), { value: code });
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const label = button.querySelector(".copy-label");
  label.textContent = "Copied";
  announce("Code copied to the clipboard.");
  setTimeout(() => (label.textContent = "Copy"), 1500);
}

/* ---- narrow screens: the sidebar is a drawer ---- */
function openNav() {
  document.body.classList.add("nav-open");
  $("open-nav").setAttribute("aria-expanded", "true");
  $("scrim").hidden = false;
  $("project").focus();
}

function closeNav() {
  if (!document.body.classList.contains("nav-open")) return;
  document.body.classList.remove("nav-open");
  $("open-nav").setAttribute("aria-expanded", "false");
  $("scrim").hidden = true;
}

/** Previous/next version, Edit, Regenerate under a message. */
function onMessageAction(button) {
  const box = button.closest(".msg");
  if (!box) return;
  const action = button.dataset.action;
  if (action === "prev" || action === "next") switchVersion(box, action === "prev" ? -1 : 1);
  else if (action === "edit") startEdit(box, (text) => editQuestion(box, text));
  else if (action === "regenerate") regenerate(box);
  updateControls();
}

function wire() {
  fillIcons();
  ui.changed = updateControls;
  ui.historyChanged = loadHistory;
  ui.turnEnded = () => {
    refreshMeta();
    loadMonthUsage();
  };
  ui.error = showError;
  wireSearch(() => S.project, openHit);
  wireExport(() => ({ project: S.project, convId: S.convId }), showError);

  $("token").value = token.get();
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    $("token").dispatchEvent(new Event("change"));
  });
  $("token").addEventListener("change", () => {
    // Enter submits, and leaving the field fires `change` again: only a new token (or a
    // retry after a failed load) reloads, else the second load would reset the open chat.
    const value = $("token").value.trim();
    if (value === token.get() && projects.length) return;
    token.set(value);
    showError(null);
    loadProjects();
    loadMonthUsage();
  });
  $("project").addEventListener("change", (e) => selectProject(e.target.value));
  $("new-chat").addEventListener("click", () => {
    closeNav();
    newChat();
    $("input").focus();
  });
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    submit();
  });
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  $("input").addEventListener("input", updateControls);
  $("stop").addEventListener("click", stop);
  $("reconnect").addEventListener("click", reconnect);
  $("banner-close").addEventListener("click", () => showError(null));
  $("log").addEventListener("click", (e) => {
    const ref = e.target.closest(".file-ref");
    if (ref) {
      const { path, start, end } = ref.dataset;
      openViewer(S.project, path, Number(start), Number(end), ref);
      return;
    }
    const copy = e.target.closest(".copy-btn");
    if (copy) copyCode(copy);
    const action = e.target.closest("button[data-action]");
    if (action && !action.disabled) onMessageAction(action);
  });
  $("rename-title").addEventListener("click", renameOpen);
  $("viewer-close").addEventListener("click", closeViewer);
  $("open-nav").addEventListener("click", openNav);
  $("close-nav").addEventListener("click", closeNav);
  $("scrim").addEventListener("click", closeNav);
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || document.querySelector("dialog[open]")) return;
    if (closeExportMenu()) return;
    if (!$("viewer").hidden) closeViewer();
    else closeNav();
  });
  // Back online, or back to the tab: do not wait for the backoff.
  window.addEventListener("online", reconnect);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && S.conn && S.conn.state === "waiting") reconnect();
  });
  // Relative times ("2 minutes ago") age.
  setInterval(() => drawHistory(true), 60000);
}

wire();
updateControls();
loadProjects();
loadMonthUsage();
