// The History list: title (or "Untitled conversation"), message count, relative time, the open
// conversation marked, rename, and delete behind a confirmation dialog.

import { $, el, relativeTime } from "./dom.js";
import { icon } from "./icons.js";

export const UNTITLED = "Untitled conversation";

/** handlers: onOpen(id), onRename(conversation), onDelete(conversation) */
export function renderHistory(conversations, currentId, handlers) {
  const list = $("history");
  list.replaceChildren(
    ...conversations.map((c) => {
      const title = c.title || UNTITLED;
      const count = `${c.message_count} message${c.message_count === 1 ? "" : "s"}`;
      const when = relativeTime(c.updated_at || c.created_at);
      const current = c.id === currentId;
      const open = el(
        "button",
        {
          class: "history-open",
          type: "button",
          "aria-current": current ? "true" : null,
          "data-id": c.id,
          onclick: () => handlers.onOpen(c.id),
        },
        el("span", { class: "history-title" }, title),
        el("span", { class: "history-meta" }, when ? `${count} · ${when}` : count),
      );
      const rename = el(
        "button",
        {
          class: "icon-btn history-rename",
          type: "button",
          "aria-label": `Rename “${title}”`,
          title: "Rename",
          onclick: () => handlers.onRename(c),
        },
        icon("edit"),
      );
      const remove = el(
        "button",
        {
          class: "icon-btn history-delete",
          type: "button",
          "aria-label": `Delete “${title}”`,
          onclick: () => handlers.onDelete(c),
        },
        icon("trash"),
      );
      return el("li", { class: current ? "current" : null }, open, rename, remove);
    }),
  );
  $("history-empty").hidden = conversations.length > 0;
}

/** Ask before deleting; resolves true when the user confirmed. */
export function confirmDelete(title) {
  const dialog = $("confirm-delete");
  $("confirm-name").textContent = title || UNTITLED;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "delete"), { once: true });
    dialog.showModal();
  });
}
