// What changes the path a conversation shows: editing a question, regenerating a reply,
// switching between versions ("< 2/3 >"), and jumping to a message a search found (on its
// branch). After each reply the stored ids, versions and usage of the shown path are filled
// in, and a model-written title is picked up shortly after the first reply.

import { messageId, parentId, setMeta, siblingsOf } from "./actions.js";
import { announce } from "./announce.js";
import { api } from "./api.js";
import {
  S,
  ask,
  busy,
  canSend,
  conversationPath,
  findMessage,
  openConversation,
  showDetail,
  sync,
  ui,
} from "./chat.js";
import { uuid } from "./dom.js";
import { messageBoxes, truncateFrom } from "./messages.js";
import { showConversationUsage } from "./usage.js";

/** Open conversation `id` and, for a search result, scroll to message `target`. */
export async function openAt(id, target = null) {
  await openConversation(id);
  if (target != null && S.convId === id) await reveal(target, S.loading);
}

/** Scroll to a message and mark it; one on another branch is brought onto the path first. */
async function reveal(id, ticket) {
  let box = findMessage(id);
  if (!box && !S.active && !S.pending) {
    try {
      const detail = await api(`${conversationPath(S.convId)}/active_leaf`, {
        method: "PUT",
        body: { message_id: id },
      });
      if (ticket !== S.loading || busy()) return;
      showDetail(detail);
      ui.changed();
    } catch (err) {
      if (ticket === S.loading) ui.error(err.message, null);
      return;
    }
    box = findMessage(id);
  }
  if (!box || ticket !== S.loading) return;
  for (const other of document.querySelectorAll("#log .msg.found")) other.classList.remove("found");
  box.classList.add("found");
  box.tabIndex = -1;
  box.scrollIntoView({ block: "center" });
  box.focus({ preventScroll: true });
}

/** Ask an edited question as a new version of `box`: what came after it is replaced by the
 * new branch (the old one stays, a switcher away). */
export function editQuestion(box, text) {
  const id = messageId(box);
  const parent = parentId(box);
  if (!canSend() || id == null || parent === undefined) return false;
  truncateFrom(box);
  announce("Asking the edited question.");
  return ask(text, {
    parentId: parent,
    redo: () => {
      const again = findMessage(id);
      if (again) editQuestion(again, text);
    },
  });
}

/** Answer the question before reply `box` again: a new version of that reply. */
export function regenerate(box) {
  const id = messageId(box);
  if (!canSend() || id == null) return false;
  let before = box.previousElementSibling;
  while (before && !before.matches(".msg.user")) before = before.previousElementSibling;
  const question = before ? before.querySelector(".body").textContent : null;
  S.shape += 1;
  truncateFrom(box);
  S.pending = {
    message: { type: "regenerate", message_id: id, client_message_id: uuid() },
    question,
    box: null,
    redo: () => {
      const again = findMessage(id);
      if (again) regenerate(again);
    },
  };
  announce("Regenerating the reply.");
  ui.error(null);
  sync();
  ui.changed();
  return true;
}

/** Show the previous (step -1) or next (+1) version of a message, and the path below it. */
export async function switchVersion(box, step) {
  if (busy() || S.convId == null) return;
  const ids = siblingsOf(box);
  const at = ids.indexOf(messageId(box));
  const target = ids[at + step];
  if (at < 0 || target == null) return;
  const index = messageBoxes().indexOf(box);
  const ticket = S.loading;
  let detail;
  try {
    detail = await api(`${conversationPath(S.convId)}/active_leaf`, {
      method: "PUT",
      body: { message_id: target },
    });
  } catch (err) {
    if (ticket === S.loading) ui.error(err.message, null);
    return;
  }
  if (ticket !== S.loading || busy()) return;
  showDetail(detail);
  ui.changed();
  announce(`Version ${at + step + 1} of ${ids.length}.`);
  // Keyboard users stay on the switcher they pressed (or its other arrow at an end).
  const again = messageBoxes()[index];
  if (!again) return;
  const same = again.querySelector(`[data-action="${step < 0 ? "prev" : "next"}"]:not(:disabled)`);
  const other = again.querySelector('[data-action="prev"]:not(:disabled), [data-action="next"]:not(:disabled)');
  if (same || other) (same || other).focus();
}

/** After a reply: the stored ids, versions and usage of what is shown (and the
 * conversation's totals), without redrawing it. When the log no longer matches the stored
 * path (a message was refused, another tab branched), it is left as it is. */
export async function refreshMeta() {
  const id = S.convId;
  const shape = S.shape;
  if (id == null) return;
  let detail;
  try {
    detail = await api(conversationPath(id));
  } catch {
    return; // only decoration is missing
  }
  if (id !== S.convId || shape !== S.shape || busy()) return;
  showConversationUsage(detail.usage || null);
  const boxes = messageBoxes();
  const stored = detail.messages;
  const same =
    boxes.length === stored.length &&
    boxes.every((box, i) => {
      const known = messageId(box);
      return box.classList.contains(stored[i].role) && (known == null || known === stored[i].id);
    });
  if (same) boxes.forEach((box, i) => setMeta(box, stored[i]));
  noteTitle(detail);
}

const TITLE_CHECKS_MS = [1000, 2000, 4000, 8000];

/** A model names the conversation shortly after its first reply: look again a few times. */
function noteTitle(detail, tries = 0) {
  const id = detail.id;
  if (id !== S.convId) return;
  if (detail.title !== S.title || (detail.title_source || null) !== S.titleSource) {
    S.title = detail.title;
    S.titleSource = detail.title_source || null;
    ui.historyChanged();
    ui.changed();
  }
  // Only after the first reply (the server titles no later one), and only so long.
  const replies = detail.messages.filter((m) => m.role === "assistant" && m.turn_id != null);
  if (detail.title_source !== "auto" || replies.length !== 1 || tries >= TITLE_CHECKS_MS.length) {
    return;
  }
  setTimeout(async () => {
    if (id !== S.convId || S.titleSource !== "auto") return;
    try {
      noteTitle(await api(conversationPath(id)), tries + 1);
    } catch {
      /* the title stays as it is */
    }
  }, TITLE_CHECKS_MS[tries]);
}

/** The user renamed the conversation (History or the title). */
export function renamed(id, title) {
  if (id !== S.convId) return;
  S.title = title;
  S.titleSource = "user";
  ui.changed();
}

