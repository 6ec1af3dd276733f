// REST calls with the stored token; every failure becomes an ApiError with a message a person
// can act on (the server's own `detail` when it sent one).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const TOKEN_KEY = "pa.token";

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY) || "",
  set: (value) => (value ? localStorage.setItem(TOKEN_KEY, value) : localStorage.removeItem(TOKEN_KEY)),
};

function detailOf(body) {
  if (!body || body.detail == null) return null;
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg || String(d)).join("; ");
  return JSON.stringify(body.detail);
}

async function request(path, { method = "GET", body, accept = "application/json" } = {}) {
  const headers = { Accept: accept };
  const secret = token.get();
  if (secret) headers.Authorization = `Bearer ${secret}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    return await fetch(path, init);
  } catch {
    throw new ApiError(0, "The server cannot be reached. Check that it is running.");
  }
}

async function failure(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  if (res.status === 401) {
    return new ApiError(401, "This server needs an API token: enter yours under “Access token”.");
  }
  return new ApiError(res.status, detailOf(body) || `Request failed (${res.status} ${res.statusText})`);
}

/** A JSON request; `body` (any JSON value) is sent as JSON. */
export async function api(path, { method = "GET", body } = {}) {
  const res = await request(path, { method, body });
  if (!res.ok) throw await failure(res);
  try {
    return await res.json();
  } catch {
    return null;
  }
}

/** Download what `path` answers as a file: fetched with the token (a plain link could not
 * carry it), then saved under the server's file name, or `fallbackName`. */
export async function download(path, fallbackName) {
  const res = await request(path, { accept: "*/*" });
  if (!res.ok) throw await failure(res);
  const disposition = res.headers.get("Content-Disposition") || "";
  const named = /filename\*=UTF-8''([^;]+)|filename="?([^";]+)"?/i.exec(disposition);
  let name = fallbackName;
  if (named) {
    try {
      name = decodeURIComponent(named[1] || named[2]);
    } catch {
      name = named[1] || named[2];
    }
  }
  const url = URL.createObjectURL(await res.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return name;
}

export const enc = encodeURIComponent;
