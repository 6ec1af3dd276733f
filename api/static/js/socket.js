// One WebSocket per project, kept open: reconnects by itself with a capped backoff, pings to
// keep proxies from idling it out, and tells the page its state. It knows nothing about
// conversations: the page decides what to (re)send when it opens (`onOpen`).

const FATAL = {
  4000: "Invalid project name.",
  4001: "The server refused the credentials: enter a valid API token under “Access token”.",
  4003: "The server does not accept WebSocket connections from this page's address (Origin).",
  4004: "This project is not registered on the server (any more).",
};
const PING_MS = 25000;
const MAX_DELAY_MS = 8000;

export class Connection {
  /** handlers: onOpen(), onChunk(chunk), onState(state, detail) */
  constructor(project, token, handlers) {
    this.project = project;
    this.token = token;
    this.h = handlers;
    this.ws = null;
    this.tries = 0;
    this.timer = null;
    this.pinger = null;
    this.closed = false;
    this.state = "idle";
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    clearTimeout(this.timer);
    if (this.closed || this.ws) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/api/assistant/ws/${encodeURIComponent(this.project)}`;
    // Browsers cannot set headers on a WebSocket: the token travels as a subprotocol.
    const ws = this.token ? new WebSocket(url, ["assistant", `bearer.${this.token}`]) : new WebSocket(url);
    this.ws = ws;
    this.setState(this.tries ? "reconnecting" : "connecting");
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.tries = 0;
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.send({ type: "ping" }), PING_MS);
      this.setState("open");
      this.h.onOpen();
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      let chunk;
      try {
        chunk = JSON.parse(event.data);
      } catch {
        return; // not ours to interpret
      }
      if (chunk && chunk.type !== "pong") this.h.onChunk(chunk);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      clearInterval(this.pinger);
      if (FATAL[event.code]) {
        this.closed = true;
        this.setState("failed", FATAL[event.code]);
      } else if (event.code === 1000 && event.reason === "Session closed") {
        this.setState("stopped", "The server closed this session.");
      } else {
        this.retryLater();
      }
    };
  }

  retryLater() {
    const delay = Math.min(MAX_DELAY_MS, 500 * 2 ** this.tries) * (0.8 + Math.random() * 0.4);
    this.tries += 1;
    this.setState("waiting", Math.ceil(delay / 1000));
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Try at once (the user asked, or the browser came back online). */
  reconnectNow() {
    if (this.closed || this.ws) return;
    this.connect();
  }

  send(message) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Close for good (another project or token was chosen). */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
  }

  setState(state, detail) {
    this.state = state;
    this.h.onState(state, detail);
  }
}
