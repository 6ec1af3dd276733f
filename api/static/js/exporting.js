// Export in the top bar: a small menu (Markdown or JSON) whose choice downloads the open
// conversation from /api/assistant/conversations/{project}/{id}/export.

import { announce } from "./announce.js";
import { download, enc } from "./api.js";
import { $ } from "./dom.js";

const EXTENSION = { markdown: "md", json: "json" };

/** Close the menu if it is open (Escape); true when it was. */
export function closeExportMenu() {
  const menu = $("export");
  if (!menu.open) return false;
  menu.open = false;
  menu.querySelector("summary").focus();
  return true;
}

/** current(): {project, convId} shown; showError(text, retry): the page's banner. */
export function wireExport(current, showError) {
  const menu = $("export");
  const run = async (format) => {
    menu.open = false;
    const { project, convId } = current();
    if (convId == null) return;
    const path = `/api/assistant/conversations/${enc(project)}/${convId}/export?format=${format}`;
    try {
      const name = await download(path, `conversation-${convId}.${EXTENSION[format]}`);
      announce(`Exported as ${name}.`);
    } catch (err) {
      showError(err.message, () => run(format));
    }
  };
  for (const item of menu.querySelectorAll("[data-format]")) {
    item.addEventListener("click", () => run(item.dataset.format));
  }
  // The menu closes when the click or the keyboard focus goes elsewhere.
  document.addEventListener("click", (e) => {
    if (menu.open && !menu.contains(e.target)) menu.open = false;
  });
  menu.addEventListener("focusout", (e) => {
    if (e.relatedTarget && !menu.contains(e.relatedTarget)) menu.open = false;
  });
}
