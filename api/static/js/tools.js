// Friendly lines for tool calls, as autocoder's panel showed them ("Reading file: app.py"),
// for today's tool names (Read, Glob, Grep), the names older conversations stored (read_file,
// list_files, search_files), and autocoder's feature tools (with or without the MCP prefix).

const str = (value, fallback) => (typeof value === "string" && value ? value : fallback);
const featureId = (v) => (typeof v === "number" || typeof v === "string" ? String(v) : "unknown");

function lineRange(first, last) {
  if (!Number.isInteger(first) && !Number.isInteger(last)) return "";
  if (Number.isInteger(first) && Number.isInteger(last)) return ` (lines ${first}-${last})`;
  return Number.isInteger(first) ? ` (from line ${first})` : ` (to line ${last})`;
}

function readLabel(input) {
  const path = str(input.file_path, str(input.path, "file"));
  // Read: offset (first line) and limit (line count); read_file: start_line / end_line.
  const first = Number.isInteger(input.offset) ? input.offset : input.start_line;
  let last = input.end_line;
  if (Number.isInteger(input.offset) && Number.isInteger(input.limit)) {
    last = input.offset + input.limit - 1;
  }
  return `Reading file: ${path}${lineRange(first, last)}`;
}

function withinPath(input) {
  const path = str(input.path, ".");
  return path === "." ? "" : ` in ${path}`;
}

const FEATURES = {
  feature_get_stats: () => "Getting feature statistics",
  feature_get_next: () => "Getting the next feature",
  feature_get_for_regression: () => "Getting features for regression testing",
  feature_get_by_id: (i) => `Getting feature #${featureId(i.feature_id)}`,
  feature_get_ready: () => "Getting features ready to build",
  feature_get_blocked: () => "Getting blocked features",
  feature_create: (i) => `Creating feature: ${str(i.name, "new feature")}`,
  feature_create_bulk: (i) =>
    `Creating ${Array.isArray(i.features) ? i.features.length : "several"} features`,
  feature_skip: (i) => `Skipping feature #${featureId(i.feature_id)}`,
  feature_update: (i) => `Updating feature #${featureId(i.feature_id)}`,
  feature_delete: (i) => `Deleting feature #${featureId(i.feature_id)}`,
  feature_mark_passing: (i) => `Marking feature #${featureId(i.feature_id)} as passing`,
  feature_mark_in_progress: (i) => `Marking feature #${featureId(i.feature_id)} in progress`,
};

/** [label, icon name] for one tool call. */
export function describeTool(tool, input) {
  const name = String(tool || "tool").replace(/^mcp__features__/, "");
  const args = input && typeof input === "object" ? input : {};
  switch (name) {
    case "Read":
    case "read_file":
      return [readLabel(args), "file"];
    case "Glob":
    case "list_files":
      return [`Searching files: ${str(args.pattern, "**/*")}${withinPath(args)}`, "folder"];
    case "Grep":
    case "search_files":
      return [`Searching content: ${str(args.pattern, "")}${withinPath(args)}`, "search"];
    default:
      if (FEATURES[name]) return [FEATURES[name](args), "list"];
      if (name.startsWith("feature_")) return [`Using feature tool: ${name}`, "list"];
      return [`Using tool: ${String(tool)}`, "tool"];
  }
}
