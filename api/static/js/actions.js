// The line under a message: "< 2/3 >" between its versions (edits of a question,
// regenerations of a reply), Edit on a question, Regenerate on a reply, and a reply's usage.
// Buttons carry `data-action`; main.js handles their clicks for the whole log.
//
// What a message is lives on its box: data-message-id, data-parent-id ("" for the root; absent
// when the server knows no branches, and then there is nothing to edit or regenerate),
// data-siblings (ids of its versions, ascending) and, for replies, data-turn-id.

import { el } from "./dom.js";
import { icon } from "./icons.js";
import { usageDetails } from "./usage.js";

const usageOf = new WeakMap(); // box -> {usage, model}
let locked = false; // a reply is running or a message is on its way: no branching now

/** Record what the server says about a message (a REST detail message, or the ids a live
 * turn announced) and redraw its action line. */
export function setMeta(box, meta) {
  if (meta.id != null) box.dataset.messageId = String(meta.id);
  if ("parent_id" in meta) box.dataset.parentId = meta.parent_id == null ? "" : String(meta.parent_id);
  if (Array.isArray(meta.sibling_ids)) box.dataset.siblings = meta.sibling_ids.join(",");
  if (meta.turn_id != null && box.classList.contains("assistant")) box.dataset.turnId = String(meta.turn_id);
  const usage = {};
  let any = false;
  for (const field of ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd"]) {
    if (typeof meta[field] === "number") {
      usage[field] = meta[field];
      any = true;
    }
  }
  if (meta.usage) return setUsage(box, meta.usage, meta.model);
  if (any) return setUsage(box, usage, meta.model);
  drawActions(box);
}

export function setUsage(box, usage, model) {
  const before = usageOf.get(box) || {};
  usageOf.set(box, { usage, model: model || before.model || null });
  drawActions(box);
}

export function messageId(box) {
  const id = Number(box.dataset.messageId);
  return Number.isInteger(id) && id > 0 ? id : null;
}

/** The parent's id, null for the root, undefined when unknown. */
export function parentId(box) {
  const value = box.dataset.parentId;
  if (value === undefined) return undefined;
  return value === "" ? null : Number(value);
}

export function siblingsOf(box) {
  const ids = (box.dataset.siblings || "").split(",").filter(Boolean).map(Number);
  return ids.length ? ids : [messageId(box)].filter((id) => id != null);
}

function button(action, label, iconName, disabled = false) {
  return el(
    "button",
    { class: "icon-btn small", type: "button", "data-action": action, "aria-label": label, title: label, disabled },
    icon(iconName),
  );
}

function switcher(box, isUser) {
  const ids = siblingsOf(box);
  const at = ids.indexOf(messageId(box));
  if (ids.length < 2 || at < 0) return null;
  const what = isUser ? "question" : "reply";
  return el(
    "div",
    { class: "switcher", role: "group", "aria-label": `Versions of this ${what}: ${at + 1} of ${ids.length}` },
    button("prev", `Previous version of this ${what}`, "prev", locked || at === 0),
    el("span", { class: "switch-pos" }, `${at + 1}/${ids.length}`),
    button("next", `Next version of this ${what}`, "next", locked || at === ids.length - 1),
  );
}

export function drawActions(box) {
  let bar = box.querySelector(":scope > .msg-actions");
  if (!bar) {
    bar = el("div", { class: "msg-actions" });
    box.append(bar);
  }
  const isUser = box.classList.contains("user");
  const known = messageId(box) != null && box.dataset.parentId !== undefined;
  const parts = [];
  if (known) parts.push(switcher(box, isUser));
  if (isUser && known) {
    parts.push(button("edit", "Edit this question", "edit", locked));
  } else if (!isUser && known && box.dataset.turnId && box.dataset.status) {
    parts.push(button("regenerate", "Regenerate this reply", "refresh", locked));
  }
  const usage = usageOf.get(box);
  if (!isUser && usage && box.dataset.status) {
    const open = bar.querySelector("details.usage[open]") != null;
    const details = usageDetails(usage.usage, usage.model);
    if (details && open) details.open = true;
    parts.push(details);
  }
  // Redrawn when a reply starts or ends: the keyboard focus stays on the same control.
  const focused = bar.contains(document.activeElement) ? focusKey(document.activeElement) : null;
  bar.replaceChildren(...parts.filter(Boolean));
  bar.hidden = bar.childElementCount === 0 || box.classList.contains("editing");
  if (focused) {
    const again = bar.querySelector(focused);
    if (again && !again.disabled) again.focus();
  }
}

function focusKey(node) {
  if (node.dataset && node.dataset.action) return `[data-action="${node.dataset.action}"]`;
  return node.closest("details.usage") ? "details.usage > summary" : null;
}

/** While a reply runs (or a message awaits acceptance) versions cannot change. */
export function lockActions(on) {
  if (on === locked) return;
  locked = on;
  for (const box of document.querySelectorAll("#log .msg")) drawActions(box);
}

/** Edit a question in place: its text in a box, Enter (or Send) asks it as a new version,
 * Escape (or Cancel) puts it back. `send(text)` returns whether the question went out. */
export function startEdit(box, send) {
  if (box.classList.contains("editing")) return;
  const body = box.querySelector(":scope > .body");
  const bar = box.querySelector(":scope > .msg-actions");
  const area = el("textarea", { class: "edit-input", rows: "3", "aria-label": "Edit your question" });
  area.value = body.textContent;
  const cancel = el("button", { class: "btn small", type: "button" }, "Cancel");
  const submit = el("button", { class: "btn small primary", type: "submit" }, icon("send"), "Send");
  const form = el("form", { class: "edit-form", "aria-label": "Edit your question" }, area,
    el("div", { class: "edit-actions" }, cancel, submit));
  const close = () => {
    form.remove();
    body.hidden = false;
    box.classList.remove("editing");
    drawActions(box);
    const again = box.querySelector('[data-action="edit"]');
    if (again) again.focus();
  };
  const go = () => {
    const text = area.value.trim();
    if (!text) return;
    if (send(text)) form.remove();
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    go();
  });
  cancel.addEventListener("click", close);
  area.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      close();
    } else if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      go();
    }
  });
  body.hidden = true;
  if (bar) bar.hidden = true;
  box.classList.add("editing");
  box.insertBefore(form, bar);
  area.focus();
  area.setSelectionRange(area.value.length, area.value.length);
}
