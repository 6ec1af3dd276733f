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

export async function api(path, { method = "GET" } = {}) {
  const headers = { Accept: "application/json" };
  const secret = token.get();
  if (secret) headers.Authorization = `Bearer ${secret}`;
  let res;
  try {
    res = await fetch(path, { method, headers });
  } catch {
    throw new ApiError(0, "The server cannot be reached. Check that it is running.");
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  if (res.status === 401) {
    throw new ApiError(401, "This server needs an API token: enter yours under “Access token”.");
  }
  if (!res.ok) {
    throw new ApiError(res.status, detailOf(body) || `Request failed (${res.status} ${res.statusText})`);
  }
  return body;
}

export const enc = encodeURIComponent;
