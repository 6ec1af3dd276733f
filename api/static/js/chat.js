// The open conversation and its protocol: start / resume / message / cancel on the project's
// socket, and the server's chunks back into the log.
//
// Works with servers that answer a resuming `start` with `conversation_created` (older) and with
// servers that answer it with a lone `response_done` or the running reply's replay (newer): it
// never waits for either. The server handles one socket's frames in order, so `start` then
// `resume` then `message` can go out back to back. Every turn chunk carries `seq`: after a
// reconnect the page asks for `resume {turn_id, after_seq}` and drops what it already has, so
// text is neither lost nor repeated.

import { messageId, setMeta, setUsage } from "./actions.js";
import { announce, announceStream, flush, resetAnnouncer } from "./announce.js";
import { api, enc } from "./api.js";
import { uuid } from "./dom.js";
import {
  AssistantMessage,
  addUserMessage,
  clearLog,
  messageBoxes,
  showEmptyState,
} from "./messages.js";
import { showConversationUsage } from "./usage.js";

export const S = {
  project: null,
  conn: null,
  convId: null,
  title: null,
  titleSource: null, // "auto" until a model (or the user) named it; null from older servers
  turns: new Map(), // turn id -> AssistantMessage shown in the log
  active: null, // the AssistantMessage still streaming, if any
  pending: null, // {message, question, box, redo} sent but not yet accepted
  expectGreeting: false,
  greeting: null,
  loading: 0, // increases with every conversation opened: outdates slower loads
  shape: 0, // increases whenever messages are added or taken away: outdates metadata loads
  // What this socket's server-side session knows; reset for every new socket.
  sock: { conv: undefined, resumed: new Set(), sent: null },
};

// Set by main.js: UI hooks that live outside the log.
export const ui = {
  changed: () => {}, // controls and title need a refresh
  historyChanged: () => {}, // reload the History list
  turnEnded: () => {}, // a reply ended: its stored ids, versions and usage can be shown
  error: (_text, _retry) => {}, // show a banner (null text hides it)
};

const lastKey = (project) => `pa.last.${project}`;

export function rememberedConversation(project) {
  const id = Number(localStorage.getItem(lastKey(project)));
  return Number.isInteger(id) && id > 0 ? id : null;
}

export function rememberConversation(project, id) {
  if (id == null) localStorage.removeItem(lastKey(project));
  else localStorage.setItem(lastKey(project), String(id));
}

function resetConversation() {
  S.loading += 1;
  S.shape += 1;
  S.convId = null;
  S.title = null;
  S.titleSource = null;
  S.turns.clear();
  S.active = null;
  S.pending = null;
  S.expectGreeting = false;
  S.greeting = null;
  resetAnnouncer();
  clearLog();
  showConversationUsage(null);
}

export function newChat() {
  resetConversation();
  showEmptyState(S.project);
  ui.error(null);
  ui.changed();
}

export const conversationPath = (id) => `/api/assistant/conversations/${enc(S.project)}/${id}`;

/** Show conversation `id` from the REST detail, then attach the socket to it. */
export async function openConversation(id) {
  resetConversation();
  S.convId = id;
  const ticket = S.loading;
  ui.error(null);
  ui.changed();
  let detail;
  try {
    detail = await api(conversationPath(id));
  } catch (err) {
    if (ticket !== S.loading) return;
    if (err.status === 404) {
      rememberConversation(S.project, null);
      newChat();
      return;
    }
    ui.error(err.message, () => openConversation(id));
    return;
  }
  if (ticket !== S.loading) return;
  rememberConversation(S.project, id);
  showDetail(detail);
  sync();
  ui.changed();
}

/** Draw the conversation's active path (the REST detail), re-attaching to a running reply. */
export function showDetail(detail) {
  S.shape += 1;
  S.title = detail.title;
  S.titleSource = detail.title_source || null;
  S.turns.clear();
  S.active = null;
  clearLog();
  const active = detail.active_turn_id;
  let question = null;
  let running = null;
  for (const msg of detail.messages) {
    if (msg.role === "user") {
      addUserMessage(msg.content, msg);
      question = msg.content;
      continue;
    }
    // The running reply is streamed again from its first chunk: skip its stored partial.
    if (active != null && msg.turn_id === active) {
      running = msg;
      continue;
    }
    const m = new AssistantMessage({ text: msg.content, toolCalls: msg.tool_calls || [] });
    setMeta(m.box, msg);
    const asked = question;
    m.mark(msg.status, "The reply failed.", asked ? () => ask(asked) : null);
  }
  if (active != null) {
    const m = follow(active, question);
    if (running) setMeta(m.box, { ...running, usage: null });
  }
  if (!detail.messages.length) showEmptyState(S.project);
  showConversationUsage(detail.usage || null);
}

export function findMessage(id) {
  return messageBoxes().find((box) => messageId(box) === id) || null;
}

function follow(turnId, question) {
  S.shape += 1;
  const m = new AssistantMessage({ streaming: true });
  m.turnId = turnId;
  m.box.dataset.turnId = String(turnId);
  m.question = question;
  S.turns.set(turnId, m);
  S.active = m;
  return m;
}

/** Bring this socket's session up to date: conversation, running reply, unsent message. */
export function sync() {
  const conn = S.conn;
  if (!conn || !conn.open) return;
  const sock = S.sock;
  if (S.convId != null && sock.conv !== S.convId) {
    conn.send({ type: "start", conversation_id: S.convId });
    sock.conv = S.convId;
    sock.resumed.clear(); // re-attach explicitly: never rely on what `start` replays
  } else if (S.convId == null && S.pending && sock.conv !== "new") {
    conn.send({ type: "start", conversation_id: null });
    sock.conv = "new";
    S.expectGreeting = true;
  }
  const m = S.active;
  if (m && m.turnId != null && sock.conv === S.convId && !sock.resumed.has(m.turnId)) {
    conn.send({ type: "resume", turn_id: m.turnId, after_seq: m.lastSeq });
    sock.resumed.add(m.turnId);
    m.resumed = true;
  }
  if (S.pending && sock.sent !== S.pending.message.client_message_id) {
    // The same client_message_id again after a reconnect: the server runs it once.
    conn.send(S.pending.message);
    sock.sent = S.pending.message.client_message_id;
  }
}

export function onSocketOpen() {
  S.sock = { conv: undefined, resumed: new Set(), sent: null };
  sync();
  ui.changed();
}

export function canSend() {
  return Boolean(S.conn && S.conn.open && !S.active && !S.pending);
}

/** Send a question (the composer, Retry, or an edit). `parentId`: the message it follows
 * (null: the root), only for an edit; without it the server puts it after the active path.
 * `redo`: asks again after a refusal, once the conversation is shown as stored again. */
export function ask(question, { parentId: parent, redo = null } = {}) {
  if (!canSend()) return false;
  S.shape += 1;
  const box = addUserMessage(question);
  const message = { type: "message", content: question, client_message_id: uuid() };
  if (parent !== undefined) message.parent_id = parent;
  S.pending = { message, question, box, redo };
  ui.error(null);
  sync();
  ui.changed();
  return true;
}

export async function stop() {
  const m = S.active;
  if (!m) return;
  announce("Stopping the reply.");
  if (S.conn && S.conn.send({ type: "cancel", turn_id: m.turnId })) return;
  try {
    await api(`/api/assistant/conversations/${enc(S.project)}/${S.convId}/cancel`, { method: "POST" });
  } catch (err) {
    ui.error(err.message, stop);
  }
}

export function onChunk(c) {
  switch (c.type) {
    case "conversation_created":
      return onCreated(c);
    case "message_accepted":
      return onAccepted(c);
    default:
      if (c.turn_id != null) return onTurnChunk(c);
      return onSessionChunk(c);
  }
}

function onCreated(c) {
  // Older servers also answer a resuming start with this: only a new conversation matters.
  if (S.sock.conv !== "new" || S.convId != null) return;
  S.convId = c.conversation_id;
  S.sock.conv = c.conversation_id;
  rememberConversation(S.project, S.convId);
  ui.historyChanged();
  ui.changed();
}

function onAccepted(c) {
  const p = S.pending;
  if (!p || (c.client_message_id && c.client_message_id !== p.message.client_message_id)) return;
  S.pending = null;
  S.sock.resumed.add(c.turn_id); // the server follows an accepted turn from its start
  const m = S.turns.get(c.turn_id) || follow(c.turn_id, p.question);
  S.active = m;
  if (c.user_message_id != null) {
    // Newer servers name the question (and where it hangs): it can be edited once answered.
    if (p.box) setMeta(p.box, { id: c.user_message_id, parent_id: c.parent_id ?? null });
    setMeta(m.box, { parent_id: c.user_message_id });
  }
  announce("The assistant is replying.");
  ui.historyChanged();
  ui.changed();
}

function onTurnChunk(c) {
  const m = S.turns.get(c.turn_id);
  if (!m || m.finished) return; // a turn this page does not show
  if (c.seq != null) {
    if (c.seq <= m.lastSeq) return; // already shown (replayed after a resume)
    m.lastSeq = c.seq;
  }
  if (c.type === "text") {
    m.appendText(c.content || "");
    if (m === S.active) announceStream(c.content || "");
  } else if (c.type === "tool_call") {
    m.addTool(c.tool, c.input);
  } else if (c.type === "turn_restarted") {
    m.restart();
    resetAnnouncer();
  } else if (c.type === "response_done") {
    if (c.message_id != null) setMeta(m.box, { id: c.message_id });
    if (c.usage) setUsage(m.box, c.usage);
    endTurn(m, c.status === "cancelled" ? "cancelled" : "complete");
  } else if (c.type === "error") {
    endTurn(m, "failed", c.content);
  }
}

function endTurn(m, status, errorText) {
  // A reply that broke while re-attaching is best re-read from the database; a failed reply is
  // best asked again.
  const retry = m.resumed ? () => openConversation(S.convId) : m.question ? () => ask(m.question) : null;
  m.finish(status, errorText, retry);
  if (m !== S.active) return;
  S.active = null;
  flush();
  if (status === "cancelled") announce("Reply stopped.");
  else if (status === "failed") announce(`The reply failed: ${errorText || ""}`);
  ui.historyChanged();
  ui.changed();
  ui.turnEnded();
}

function onSessionChunk(c) {
  if (c.type === "text" && S.expectGreeting) {
    if (!S.greeting) S.greeting = new AssistantMessage({ streaming: true, atTop: true });
    S.greeting.appendText(c.content || "");
  } else if (c.type === "response_done" && S.expectGreeting) {
    if (S.greeting) S.greeting.finish("complete");
    S.greeting = null;
    S.expectGreeting = false;
  } else if (c.type === "error") {
    const failed = S.pending;
    if (failed && failed.redo && S.convId != null) {
      // An edit or a regeneration was refused (over budget, ...): show the conversation as
      // stored again, with Retry doing the same once more.
      S.pending = null;
      const text = c.content || "The message was not accepted.";
      const opened = openConversation(S.convId);
      const ticket = S.loading; // taken by that load: a later one outdates the Retry
      opened.then(() => {
        if (S.loading === ticket) ui.error(text, failed.redo);
      });
      ui.error(text, null);
    } else if (failed) {
      // The message was refused (too long, rate limited, ...): offer to send it again.
      S.pending = null;
      ui.error(c.content || "The message was not accepted.", () => resend(failed));
    } else {
      const id = S.convId;
      ui.error(c.content || "Something went wrong.", id != null ? () => openConversation(id) : null);
    }
    ui.changed();
  }
  // Anything else without a turn (a newer server's `response_done` answering a resuming
  // start) needs nothing.
}

function resend(failed) {
  if (!S.conn || !S.conn.open || S.active || S.pending) return;
  S.pending = { ...failed, message: { ...failed.message, client_message_id: uuid() } };
  ui.error(null);
  sync();
  ui.changed();
}

export function busy() {
  return Boolean(S.active || S.pending);
}
