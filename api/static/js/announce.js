// Screen-reader announcements at a polite rate: streamed text is read out a few sentences at a
// time (not token by token), status changes at once.

import { $ } from "./dom.js";

const EVERY_MS = 2500;
const LONG_RUN = 240;
let buffer = "";
let timer = null;

function say(text) {
  const plain = text.replace(/```[\w+#.-]*/g, " ").replace(/[*_`#>|]+/g, "").replace(/\s+/g, " ").trim();
  if (plain) $("announcer").textContent = plain;
}

export function announce(text) {
  say(text);
}

export function announceStream(delta) {
  buffer += delta;
  if (!timer) timer = setTimeout(() => flush(false), EVERY_MS);
}

/** Read out what is buffered: up to the last finished sentence, or everything when `all`. */
export function flush(all = true) {
  clearTimeout(timer);
  timer = null;
  let cut = buffer.length;
  if (!all) {
    const ends = [...buffer.matchAll(/[.!?:](\s|$)|\n/g)];
    cut = ends.length ? ends[ends.length - 1].index + 1 : 0;
    // A long stretch without a sentence end (a list of names, code): read it by words.
    if (!cut && buffer.length > LONG_RUN) cut = Math.max(0, buffer.lastIndexOf(" "));
  }
  const text = buffer.slice(0, cut);
  buffer = buffer.slice(cut);
  say(text);
  if (buffer && !all) timer = setTimeout(() => flush(false), EVERY_MS);
}

export function resetAnnouncer() {
  clearTimeout(timer);
  timer = null;
  buffer = "";
}
