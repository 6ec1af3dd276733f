// Model output -> safe DOM: markdown-it (CommonMark + GFM tables), then DOMPurify, then our own
// decorations built from DOM nodes (code block toolbar, file references). Raw HTML in a reply is
// shown as text (html: false); DOMPurify is the second wall should anything slip through, and
// the page's Content-Security-Policy the third.

import { el } from "./dom.js";
import { icon } from "./icons.js";

let md = null;

function renderer() {
  if (md) return md;
  md = window.markdownit({
    html: false,
    linkify: true,
    breaks: false,
    highlight: (code, lang) => {
      const language = (lang || "").trim().split(/\s+/)[0];
      if (!language || !window.hljs || !window.hljs.getLanguage(language)) return "";
      try {
        return window.hljs.highlight(code, { language, ignoreIllegals: true }).value;
      } catch {
        return ""; // markdown-it then escapes the code itself
      }
    },
  });
  // "app.py" and "main.rs" are not web addresses: link only what has a scheme or www.
  md.linkify.set({ fuzzyLink: false, fuzzyEmail: false });
  // Images would fetch remote content chosen by the model: show them as links instead.
  md.disable("image");
  // Table alignment arrives as style="text-align:…", which the CSP forbids: use classes.
  md.core.ruler.push("align_classes", (state) => {
    for (const token of state.tokens) {
      const style = token.attrGet && token.attrGet("style");
      if (!style) continue;
      token.attrs = token.attrs.filter(([name]) => name !== "style");
      const align = /text-align:\s*(left|right|center)/.exec(style);
      if (align) token.attrJoin("class", `align-${align[1]}`);
    }
  });
  window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName !== "A") return;
    const href = node.getAttribute("href") || "";
    if (/^(https?:|mailto:)/i.test(href)) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    } else {
      node.removeAttribute("href"); // relative or odd links: keep the text, drop the jump
    }
  });
  return md;
}

const PURIFY = {
  RETURN_DOM_FRAGMENT: true,
  FORBID_TAGS: ["style", "img", "svg", "math", "form", "input", "button", "textarea", "select"],
  FORBID_ATTR: ["style", "id", "name"],
  ALLOW_DATA_ATTR: false,
};

/** Markdown text -> a DocumentFragment, sanitised and decorated. */
export function renderMarkdown(text) {
  const html = renderer().render(text || "");
  const fragment = window.DOMPurify.sanitize(html, PURIFY);
  decorateCode(fragment);
  wrapTables(fragment);
  linkFileRefs(fragment);
  return fragment;
}

function decorateCode(root) {
  for (const pre of [...root.querySelectorAll("pre")]) {
    const code = pre.querySelector("code");
    const lang = code && /language-([\w+#.-]+)/.exec(code.className || "");
    if (code) code.classList.add("hljs");
    pre.setAttribute("tabindex", "0"); // long lines scroll: reachable by keyboard
    const copy = el(
      "button",
      { class: "copy-btn", type: "button", "aria-label": lang ? `Copy ${lang[1]} code` : "Copy code" },
      icon("copy"),
      el("span", { class: "copy-label" }, "Copy"),
    );
    const bar = el("div", { class: "code-bar" }, el("span", { class: "code-lang" }, lang ? lang[1] : "text"), copy);
    const box = el("div", { class: "code-block" });
    pre.replaceWith(box);
    box.append(bar, pre);
  }
}

function wrapTables(root) {
  for (const table of [...root.querySelectorAll("table")]) {
    const wrap = el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Table" });
    table.replaceWith(wrap);
    wrap.append(table);
  }
}

// src/app.py:12 or src/app.py:12-30 (also with an en dash). The path must look like a file:
// an extension starting with a letter, a dotfile (.env), or a directory part.
const FILE_REF =
  /(^|[^\w./-])((?:[\w.-]+\/)*(?:[\w-][\w.-]*\.[A-Za-z]\w*|\.[A-Za-z][\w.-]*)|(?:[\w.-]+\/)+[\w.-]+):(\d{1,7})(?:[-\u2013](\d{1,7}))?(?!\w)/g;

function linkFileRefs(root) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) =>
      node.parentElement && node.parentElement.closest("pre, a, button")
        ? NodeFilter.FILTER_REJECT
        : NodeFilter.FILTER_ACCEPT,
  });
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    const text = node.nodeValue;
    FILE_REF.lastIndex = 0;
    if (!FILE_REF.test(text)) continue;
    FILE_REF.lastIndex = 0;
    const parts = [];
    let last = 0;
    for (const m of text.matchAll(FILE_REF)) {
      const at = m.index + m[1].length;
      parts.push(text.slice(last, at));
      const start = Number(m[3]);
      const end = m[4] ? Math.max(start, Number(m[4])) : start;
      const label = text.slice(at, m.index + m[0].length);
      parts.push(
        el(
          "button",
          {
            class: "file-ref",
            type: "button",
            "data-path": m[2],
            "data-start": start,
            "data-end": end,
            title: `Open ${label} in the file viewer`,
          },
          label,
        ),
      );
      last = m.index + m[0].length;
    }
    parts.push(text.slice(last));
    node.replaceWith(...parts.filter((p) => p !== ""));
  }
}
