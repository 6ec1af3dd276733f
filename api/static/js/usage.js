// Tokens and cost, shown discreetly: per reply (a disclosure under it), per conversation (beside
// the composer hint) and for the month against the budget (in the sidebar, from /api/usage).

import { api } from "./api.js";
import { $, el } from "./dom.js";

export const USAGE_FIELDS = [
  ["input_tokens", "Input"],
  ["output_tokens", "Output"],
  ["cache_read_tokens", "Cache read"],
  ["cache_write_tokens", "Cache write"],
];

const count = new Intl.NumberFormat(undefined);

/** Every token a reply was charged for (what the budget counts), or null without usage. */
export function totalTokens(usage) {
  if (!usage) return null;
  let sum = 0;
  let seen = false;
  for (const [field] of USAGE_FIELDS) {
    if (typeof usage[field] === "number") {
      sum += usage[field];
      seen = true;
    }
  }
  return seen && (sum > 0 || usage.cost_usd > 0) ? sum : null;
}

export function formatTokens(n) {
  return `${count.format(n)} token${n === 1 ? "" : "s"}`;
}

export function formatCost(usd) {
  if (typeof usd !== "number" || Number.isNaN(usd)) return null;
  if (usd === 0) return "$0";
  if (usd < 0.0001) return "<$0.0001";
  return `$${usd < 1 ? usd.toFixed(4) : usd.toFixed(2)}`;
}

/** "1,234 tokens · $0.0042", or null when there is nothing to show. */
export function usageLine(usage) {
  const tokens = totalTokens(usage);
  if (tokens == null) return null;
  const cost = formatCost(usage.cost_usd);
  return cost ? `${formatTokens(tokens)} · ${cost}` : formatTokens(tokens);
}

/** A reply's usage as a disclosure: the total in the summary, the breakdown inside. */
export function usageDetails(usage, model) {
  const line = usageLine(usage);
  if (!line) return null;
  const rows = USAGE_FIELDS.filter(([field]) => typeof usage[field] === "number").map(([field, label]) =>
    el("div", {}, el("dt", {}, label), el("dd", {}, count.format(usage[field]))),
  );
  const cost = formatCost(usage.cost_usd);
  if (cost) rows.push(el("div", {}, el("dt", {}, "Cost"), el("dd", {}, cost)));
  if (model) rows.push(el("div", {}, el("dt", {}, "Model"), el("dd", {}, model)));
  const breakdown = USAGE_FIELDS.filter(([field]) => typeof usage[field] === "number")
    .map(([field, label]) => `${label} ${count.format(usage[field])}`)
    .join(" · ");
  return el(
    "details",
    { class: "usage" },
    el("summary", { "aria-label": `Usage of this reply: ${line}`, title: breakdown }, line),
    el("dl", { class: "usage-list" }, ...rows),
  );
}

/** The open conversation's totals (all branches), beside the composer hint. */
export function showConversationUsage(usage) {
  const line = usageLine(usage);
  const box = $("conv-usage");
  box.hidden = !line;
  box.textContent = line ? `This conversation: ${line}` : "";
}

let monthTicket = 0;

/** The month's tokens against the budget; hidden when the server does not report usage. */
export async function loadMonthUsage() {
  const ticket = ++monthTicket;
  const box = $("usage-month");
  let usage;
  try {
    usage = await api("/api/usage");
  } catch {
    if (ticket === monthTicket) box.hidden = true;
    return;
  }
  if (ticket !== monthTicket || !usage || typeof usage.tokens !== "number") return;
  const renews = new Date(`${usage.renews_on}T00:00:00Z`);
  const when = Number.isNaN(renews.getTime())
    ? ""
    : renews.toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
  const cost = formatCost(usage.cost_usd);
  const text = $("usage-text");
  const meter = $("usage-meter");
  if (usage.budget) {
    const share = Math.min(100, Math.round((100 * usage.tokens) / usage.budget));
    text.textContent =
      `${count.format(usage.tokens)} of ${formatTokens(usage.budget)} (${share}%)` +
      (cost ? ` · ${cost}` : "") +
      (when ? ` · renews ${when}` : "");
    meter.max = usage.budget;
    meter.value = Math.min(usage.tokens, usage.budget);
    meter.low = usage.budget * 0.75;
    meter.high = usage.budget * 0.9;
    meter.optimum = 0;
    meter.hidden = false;
    box.dataset.over = usage.tokens >= usage.budget ? "true" : "false";
  } else {
    text.textContent = `${formatTokens(usage.tokens)}${cost ? ` · ${cost}` : ""} · no monthly limit`;
    meter.hidden = true;
    box.dataset.over = "false";
  }
  box.hidden = false;
}
