// The conversation log: user and assistant messages, streaming text, tool-call lines, the
// thinking indicator, and the end markers (stopped, failed with Retry).

import { drawActions, setMeta } from "./actions.js";
import { $, el } from "./dom.js";
import { icon } from "./icons.js";
import { renderMarkdown } from "./markdown.js";
import { describeTool } from "./tools.js";

const RENDER_EVERY_MS = 60;

function log() {
  return $("log");
}

function nearBottom() {
  const box = log();
  return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
}

function scrollDown(force = false) {
  if (force || nearBottom()) log().scrollTop = log().scrollHeight;
}

export function clearLog() {
  log().replaceChildren();
}

export function showEmptyState(projectName) {
  clearLog();
  if (!projectName) return;
  log().append(
    el(
      "div",
      { class: "empty-state" },
      el("h2", {}, "Ask about ", el("strong", {}, projectName)),
      el(
        "p",
        {},
        "The assistant reads, lists and searches this project's files (it never changes them) " +
          "and cites paths and lines, like src/app.py:12-30, which open in a viewer.",
      ),
    ),
  );
}

function removeEmptyState() {
  for (const node of log().querySelectorAll(".empty-state")) node.remove();
}

/** Every message shown, in order (the greeting included). */
export function messageBoxes() {
  return [...log().querySelectorAll(":scope > .msg")];
}

/** Take `box` and everything after it off the log (a new version replaces that part). */
export function truncateFrom(box) {
  while (box.nextElementSibling) box.nextElementSibling.remove();
  box.remove();
}

/** meta: the REST detail's message (ids, versions), when it is a stored one. */
export function addUserMessage(text, meta = null) {
  removeEmptyState();
  const box = el(
    "article",
    { class: "msg user", "aria-label": "You said" },
    el("div", { class: "body" }, text),
  );
  log().append(box);
  if (meta) setMeta(box, meta);
  scrollDown(true);
  return box;
}

export class AssistantMessage {
  /** options: {text, toolCalls, streaming, atTop} */
  constructor({ text = "", toolCalls = [], streaming = false, atTop = false } = {}) {
    removeEmptyState();
    this.text = text;
    this.turnId = null;
    this.lastSeq = 0;
    this.finished = !streaming;
    this.tools = el("ul", { class: "tools", "aria-label": "Tool calls" });
    this.body = el("div", { class: "body markdown" });
    this.footer = el("div", { class: "msg-footer" });
    this.box = el("article", { class: "msg assistant", "aria-label": "Assistant" }, this.tools, this.body, this.footer);
    this.timer = null;
    for (const call of toolCalls) this.addTool(call.tool, call.input);
    if (streaming) this.setThinking(!text && !toolCalls.length);
    if (atTop) log().prepend(this.box);
    else log().append(this.box);
    this.render();
    scrollDown(true);
  }

  setThinking(on) {
    this.box.classList.toggle("streaming", !this.finished);
    this.box.setAttribute("aria-busy", this.finished ? "false" : "true");
    const thinking = this.box.querySelector(".thinking");
    if (on && !thinking) {
      this.box.insertBefore(
        el("p", { class: "thinking" }, el("span", { class: "dots", "aria-hidden": "true" }), "Thinking…"),
        this.footer,
      );
    } else if (!on && thinking) {
      thinking.remove();
    }
  }

  appendText(delta) {
    this.text += delta;
    this.setThinking(false);
    this.scheduleRender();
  }

  addTool(tool, input) {
    const [label, iconName] = describeTool(tool, input);
    this.tools.append(el("li", { class: "tool-call" }, icon(iconName), el("span", {}, label)));
    this.setThinking(false);
    scrollDown();
  }

  /** The turn was re-run from the start: drop what it had written (turn_restarted). */
  restart() {
    this.text = "";
    this.tools.replaceChildren();
    this.setThinking(true);
    this.render();
  }

  scheduleRender() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.render();
    }, RENDER_EVERY_MS);
  }

  render() {
    clearTimeout(this.timer);
    this.timer = null;
    const follow = nearBottom();
    this.body.replaceChildren(renderMarkdown(this.text));
    if (follow) scrollDown(true);
  }

  /** status: complete | cancelled | failed; retry: optional () => void */
  finish(status, errorText, retry) {
    this.finished = true;
    this.render();
    this.setThinking(false);
    this.box.classList.remove("streaming");
    this.box.setAttribute("aria-busy", "false");
    this.mark(status, errorText, retry);
  }

  mark(status, errorText, retry) {
    this.footer.replaceChildren();
    this.box.dataset.status = status;
    drawActions(this.box); // Regenerate and usage, once the reply has ended
    if (status === "cancelled") {
      this.footer.append(el("p", { class: "marker" }, icon("stop"), "Stopped"));
    } else if (status === "failed") {
      const p = el("p", { class: "marker error" }, icon("alert"), errorText || "The reply failed.");
      if (retry) p.append(el("button", { class: "btn small", type: "button", onclick: retry }, icon("refresh"), "Retry"));
      this.footer.append(p);
    }
  }

  remove() {
    this.box.remove();
  }
}
