// Renaming a conversation (from History or the title): a small dialog, saved with
// PATCH /api/assistant/conversations/{project}/{id}; the server's refusal is shown in it.

import { api, enc } from "./api.js";
import { $ } from "./dom.js";

const MAX_TITLE = 100;

/** Ask for a new title for `conv` ({id, title}) of `project`; resolves with the saved
 * conversation summary, or null when cancelled. */
export function renameConversation(project, conv) {
  const dialog = $("rename-dialog");
  const form = $("rename-form");
  const input = $("rename-input");
  const error = $("rename-error");
  input.value = conv.title || "";
  input.maxLength = MAX_TITLE;
  error.hidden = true;
  error.textContent = "";
  return new Promise((resolve) => {
    let saved = null;
    const fail = (text) => {
      error.textContent = text;
      error.hidden = false;
      input.focus();
    };
    const submit = async (e) => {
      e.preventDefault();
      const title = input.value.trim();
      if (!title) return fail("A title needs at least one character.");
      if (title.length > MAX_TITLE) return fail(`A title has at most ${MAX_TITLE} characters.`);
      try {
        saved = await api(`/api/assistant/conversations/${enc(project)}/${conv.id}`, {
          method: "PATCH",
          body: { title },
        });
      } catch (err) {
        return fail(err.message);
      }
      dialog.close();
    };
    const cancel = () => dialog.close();
    form.addEventListener("submit", submit);
    $("rename-cancel").addEventListener("click", cancel);
    dialog.addEventListener(
      "close",
      () => {
        form.removeEventListener("submit", submit);
        $("rename-cancel").removeEventListener("click", cancel);
        resolve(saved);
      },
      { once: true },
    );
    dialog.showModal();
    input.select();
  });
}
