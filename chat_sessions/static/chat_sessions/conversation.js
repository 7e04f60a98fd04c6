/**
 * One session's conversation: its messages, the cursor to older pages, and the answer being
 * streamed. It talks to the session's message routes and reports changes to its owner through
 * callbacks; it never touches the page.
 *
 * - A send is a POST read as server-sent events. Until the turn is stored (`start`), a failed
 *   connection is retried with the same `client_message_id`, which the server answers with the
 *   turn it already has; after that, the answer is followed on its stream route.
 * - The stream route resumes after `Last-Event-ID`. An answer found `streaming` on load (a reload,
 *   another browser tab) is followed from the first event: its text is rebuilt from the replay,
 *   the saved text shown until the replay has caught up with it.
 */

import { ApiError, csrfToken, errorFrom, getJSON, samePath, sendJSON } from "./api.js";
import { readEvents } from "./sse.js";

const MESSAGE_PAGE_SIZE = 50;
// Waits between attempts to reach an answer's stream again; the last one repeats for as long as
// the page is open. Never given up: an answer outlives a server restart, and its session refuses
// another message until it ends, so the page must be there to show its end (or to stop it).
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 5000];
// Failed attempts in a row after which the answer says its connection is lost.
const LOST_AFTER_FAILURES = 2;
const SEND_RETRIES = 2;
const STOP_GRACE_MS = 5000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A page being left aborts its fetches; that is not an error to show.
let leavingPage = false;
window.addEventListener("pagehide", () => {
  leavingPage = true;
});
window.addEventListener("beforeunload", () => {
  leavingPage = true;
});

function clientMessageId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return `c-${Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

const stored = (message) => ({ ...message, key: String(message.id) });

export class Conversation {
  /**
   * `sessionUrl`: the session's API URL. `on`: callbacks, each optional:
   * `changed({scroll})` messages changed; `finished(message)` an answer ended (done or error);
   * `rejected(question, error)` a message was not sent; `titled(title)` a `title` event.
   */
  constructor(sessionUrl, on = {}) {
    this.sessionUrl = sessionUrl;
    this.on = on;
    this.messages = []; // oldest first; each has a stable `key` for its DOM node
    this.dirty = new Set(); // messages changed since the owner last drew them
    this.olderUrl = null;
    this.loaded = false;
    this.loading = null;
    this.loadingOlder = false;
    this.stream = null;
    this.sending = false;
    this.draft = "";
  }

  get running() {
    return Boolean(this.stream || this.sending);
  }

  get messagesUrl() {
    return `${this.sessionUrl}messages/`;
  }

  changed(message, options = {}) {
    if (message) this.dirty.add(message);
    this.on.changed?.(options);
  }

  /** Stop listening (the tab was closed); a running answer carries on on the server. */
  close() {
    this.stream?.controller.abort();
  }

  // History -----------------------------------------------------------------------------------

  /** Fetch the newest page and merge it in; then follow an answer that is still streaming. */
  load() {
    if (!this.loading) {
      this.loading = this.loadNewest().finally(() => {
        this.loading = null;
      });
    }
    return this.loading;
  }

  async loadNewest() {
    const first = !this.loaded;
    const body = await getJSON(`${this.messagesUrl}?page_size=${MESSAGE_PAGE_SIZE}`);
    this.merge(body, { first });
    this.loaded = true;
    this.changed(null, { scroll: first ? "bottom" : "auto" });
    this.followRunningAnswer();
  }

  merge(body, { first }) {
    if (this.sending) return; // our own send brings this turn's messages
    const incoming = body.messages;
    const newest = Math.max(0, ...this.messages.map((message) => message.message_order || 0));
    if (first || (incoming.length && newest && incoming[0].message_order > newest + 1)) {
      // The first load, or more new messages than a page: start again from this page.
      this.messages = this.messages.filter((message) => message.id == null);
      this.olderUrl = body.older ? samePath(body.older) : null;
    }
    const streamingId = this.stream?.target.id;
    const known = new Map(this.messages.filter((message) => message.id != null).map((message) => [message.id, message]));
    for (const message of incoming) {
      const existing = known.get(message.id);
      if (!existing) {
        this.messages.push(stored(message));
      } else if (existing.id !== streamingId) {
        Object.assign(existing, message);
        this.dirty.add(existing);
      }
    }
    const order = (message) => message.message_order ?? Number.MAX_SAFE_INTEGER;
    this.messages.sort((a, b) => order(a) - order(b));
  }

  /** Prepend the next older page; the number of messages added. */
  async loadOlder() {
    if (!this.olderUrl || this.loadingOlder) return 0;
    this.loadingOlder = true;
    try {
      const body = await getJSON(this.olderUrl);
      const have = new Set(this.messages.map((message) => message.id));
      const older = body.messages.filter((message) => !have.has(message.id)).map(stored);
      this.messages = [...older, ...this.messages];
      this.olderUrl = body.older ? samePath(body.older) : null;
      return older.length;
    } finally {
      this.loadingOlder = false;
    }
  }

  // Sending and streaming ---------------------------------------------------------------------

  attach(target) {
    this.stream = { controller: new AbortController(), target, lastEventId: 0, text: "", reasoning: "", baseline: "" };
    return this.stream;
  }

  detach(stream) {
    if (this.stream === stream) this.stream = null;
    this.changed(null);
  }

  async send(text) {
    if (this.running) return;
    const clientId = clientMessageId();
    const now = new Date().toISOString();
    const base = { id: null, timestamp: now, metadata: {} };
    const question = { ...base, key: `u-${clientId}`, sender: "user", message: text, status: "complete", client_message_id: clientId };
    const answer = { ...base, key: `a-${clientId}`, sender: "assistant", message: "", status: "streaming" };
    this.messages.push(question, answer);
    this.sending = true;
    const stream = this.attach(answer);
    this.changed(null, { scroll: "bottom" });
    try {
      for (let attempt = 0; ; attempt += 1) {
        try {
          const response = await fetch(this.messagesUrl, {
            method: "POST",
            credentials: "same-origin",
            headers: { Accept: "text/event-stream", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
            body: JSON.stringify({ message: text, client_message_id: clientId }),
            signal: stream.controller.signal,
          });
          if (!response.ok) {
            this.rejected(question, answer, await errorFrom(response));
            return;
          }
          if (await this.consume(stream, response)) return;
        } catch {
          if (leavingPage || stream.controller.signal.aborted) return;
        }
        if (answer.id != null) break; // the turn is stored: follow its stream
        if (attempt >= SEND_RETRIES) {
          const error = new ApiError("The server could not be reached. Check your connection and send again.");
          this.rejected(question, answer, error);
          return;
        }
        await sleep(1000 * (attempt + 1));
      }
      await this.follow(stream);
    } finally {
      this.sending = false;
      this.detach(stream);
    }
  }

  rejected(question, answer, error) {
    this.messages = this.messages.filter((message) => message !== answer);
    question.status = "failed";
    question.failedHere = true;
    question.metadata = { error: { message: error.message, code: error.code } };
    this.changed(question);
    this.on.rejected?.(question, error);
  }

  /** Read one SSE response into the answer; true once it ended with `done` or `error`. */
  async consume(stream, response) {
    for await (const event of readEvents(response)) {
      if (event.id != null) stream.lastEventId = event.id;
      this.apply(stream, event.data);
      if (event.data.type === "done" || event.data.type === "error") return true;
    }
    return false;
  }

  /** Follow an answer on its stream route, reconnecting after the last event received. */
  async follow(stream) {
    let failures = 0;
    while (!stream.controller.signal.aborted && !leavingPage) {
      const before = stream.lastEventId;
      try {
        const response = await fetch(`${this.messagesUrl}${stream.target.id}/stream/`, {
          credentials: "same-origin",
          headers: { Accept: "text/event-stream", "Last-Event-ID": String(stream.lastEventId) },
          signal: stream.controller.signal,
        });
        // A 5xx is a server restarting, or a proxy in front of one that is down: tried again.
        if (!response.ok && response.status < 500) {
          this.failed(stream.target, (await errorFrom(response)).message);
          return;
        }
        if (response.ok) {
          if (stream.target.connectionLost) {
            stream.target.connectionLost = false;
            this.changed(stream.target);
          }
          if (await this.consume(stream, response)) return;
        }
      } catch {
        if (leavingPage || stream.controller.signal.aborted) return;
      }
      failures = stream.lastEventId > before ? 0 : failures + 1;
      if (failures >= LOST_AFTER_FAILURES && !stream.target.connectionLost) {
        stream.target.connectionLost = true;
        this.changed(stream.target);
      }
      await sleep(RECONNECT_DELAYS_MS[Math.min(failures, RECONNECT_DELAYS_MS.length - 1)]);
    }
  }

  followRunningAnswer() {
    if (this.running) return;
    const last = this.messages.findLast((message) => message.sender === "assistant");
    if (!last || last.status !== "streaming" || last.id == null) return;
    const stream = this.attach(last);
    stream.baseline = last.message;
    this.changed(null);
    this.follow(stream).finally(() => this.detach(stream));
  }

  apply(stream, event) {
    const target = stream.target;
    switch (event.type) {
      case "start": {
        const question = event.user_message;
        const pending = this.messages.find((message) => message.id == null && message.client_message_id === question.client_message_id);
        if (pending) {
          Object.assign(pending, question);
          this.dirty.add(pending);
        } else if (!this.messages.some((message) => message.id === question.id)) {
          this.messages.splice(this.messages.indexOf(target), 0, stored(question));
        }
        const baseline = stream.baseline || target.message;
        Object.assign(target, event.assistant_message);
        Object.assign(stream, { baseline, text: "", reasoning: "" });
        target.message = shown(stream);
        this.sending = false;
        break;
      }
      case "token":
        stream.text += event.text;
        target.message = shown(stream);
        break;
      case "reasoning":
        stream.reasoning += event.text;
        target.metadata = { ...target.metadata, reasoning: stream.reasoning };
        break;
      case "reference":
        target.metadata = { ...target.metadata, sources: event.sources || [] };
        break;
      case "title":
        if (event.title) this.on.titled?.(event.title);
        return;
      case "done":
        Object.assign(target, event.message);
        this.changed(target);
        this.on.finished?.(target);
        return;
      case "error":
        if (event.assistant_message) Object.assign(target, event.assistant_message);
        this.failed(target, event.message, event.code);
        this.on.finished?.(target);
        return;
      default:
        return;
    }
    this.changed(target);
  }

  failed(target, message, code = "") {
    target.status = "error";
    target.failedHere = true;
    target.metadata = { ...target.metadata, error: { message, code } };
    this.changed(target);
  }

  /** Ask the server to stop the answer; what was written so far is kept. */
  async stop() {
    const stream = this.stream;
    if (!stream) return;
    try {
      const body = await sendJSON(`${this.sessionUrl}stop/`, "POST");
      if (body?.message && body.message.id === stream.target.id) {
        Object.assign(stream.target, body.message);
        this.changed(stream.target);
      }
    } catch (error) {
      if (error.status !== 409) throw error; // 409: it had just finished
    }
    // The stream ends by itself with `done`; if it does not soon, stop listening to it.
    setTimeout(() => {
      if (this.stream === stream) stream.controller.abort();
    }, STOP_GRACE_MS);
  }
}

/** The replayed text, or the saved text until the replay has caught up with it. */
function shown(stream) {
  return stream.text.length >= stream.baseline.length ? stream.text : stream.baseline;
}
