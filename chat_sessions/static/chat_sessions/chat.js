/**
 * The chat panel: a container's chat sessions as tabs, the active session's conversation, and a
 * composer whose answers stream in token by token.
 *
 * It drives the markup of `chat_sessions/chat_panel.html` (any element with `data-chat` and
 * `data-chat-sessions-url`) and talks only to the chat API:
 * - sessions: list (active, or `?status=closed`), create, rename / pin / reopen (PATCH), close (DELETE);
 * - messages: the newest page, older pages on scroll (cursor links), send (POST, read as SSE);
 * - a streaming answer found on load (a reload, another browser tab) is followed through its stream
 *   route from the first event, and a cut connection resumes with `Last-Event-ID`;
 * - a light poll while the page is visible keeps two browser tabs on the same session consistent.
 */

import { ApiError, csrfToken, errorFrom, getJSON, request, samePath, sendJSON } from "./api.js";
import { formatTime, h } from "./dom.js";
import { fillMessage } from "./messages.js";
import { readEvents } from "./sse.js";
import { tabNode, updateTab } from "./tabs.js";

const POLL_INTERVAL_MS = 4000;
const TITLE_RECHECK_MS = 3000;
const MESSAGE_PAGE_SIZE = 50;
const SESSION_PAGE_SIZE = 100;
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000];
const SEND_RETRIES = 2;

let panelCount = 0;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function clientMessageId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return `c-${Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

function pinnedFirst(sessions) {
  return [...sessions.filter((session) => session.pinned), ...sessions.filter((session) => !session.pinned)];
}

class ChatPanel {
  constructor(root) {
    this.root = root;
    this.sessionsUrl = root.dataset.chatSessionsUrl;
    this.prefix = `chat${++panelCount}`;
    this.sessions = [];
    this.states = new Map();
    this.activeId = null;
    this.loaded = false;
    this.renaming = null;
    this.unloading = false;
    this.polling = false;
    this.closedOpen = false;
    // Bumped by every local change to the session list, so an older list response cannot undo it.
    this.version = 0;
    this.dirty = new Set();
    this.frame = 0;
    this.renderedId = null;
    this.messageNodes = new Map();
    this.tabNodes = new Map();
    this.storageKey = `chat-active:${this.sessionsUrl}`;
    const $ = (selector) => root.querySelector(selector);
    this.ui = {
      tablist: $(".chat-tabs"),
      newButton: $(".chat-new"),
      closedToggle: $(".chat-closed-toggle"),
      closedPopover: $(".chat-closed-popover"),
      closedList: $(".chat-closed-list"),
      closedEmpty: $(".chat-closed-empty"),
      alert: $(".chat-alert"),
      welcome: $(".chat-welcome"),
      startButton: $(".chat-start"),
      panel: $(".chat-panel"),
      title: $(".chat-title"),
      renameButton: $(".chat-rename"),
      pinButton: $(".chat-pin"),
      scroll: $(".chat-scroll"),
      older: $(".chat-older"),
      messages: $(".chat-messages"),
      empty: $(".chat-empty"),
      composer: $(".chat-composer"),
      input: $(".chat-input"),
      inputLabel: $(".chat-input-label"),
      inputHelp: $(".chat-input-help"),
      send: $(".chat-send"),
      stop: $(".chat-stop"),
      announcer: $(".chat-announcer"),
    };
    const ui = this.ui;
    ui.panel.id = `${this.prefix}-panel`;
    ui.input.id = `${this.prefix}-input`;
    ui.inputLabel.htmlFor = ui.input.id;
    ui.inputHelp.id = `${this.prefix}-input-help`;
    ui.input.setAttribute("aria-describedby", ui.inputHelp.id);
    ui.closedPopover.id = `${this.prefix}-closed`;
    ui.closedToggle.setAttribute("aria-controls", ui.closedPopover.id);
  }

  // URLs of the chat API --------------------------------------------------------------------

  sessionUrl(id) {
    return `${this.sessionsUrl}${id}/`;
  }

  messagesUrl(id) {
    return `${this.sessionUrl(id)}messages/`;
  }

  streamUrl(id, messageId) {
    return `${this.messagesUrl(id)}${messageId}/stream/`;
  }

  tabId(id) {
    return `${this.prefix}-tab-${id}`;
  }

  // Start-up and events ---------------------------------------------------------------------

  async start() {
    this.bind();
    try {
      await this.refreshSessions({ initial: true });
    } catch (error) {
      this.showAlert(error.message);
    }
    this.loaded = true;
    this.root.setAttribute("aria-busy", "false");
    this.ui.newButton.hidden = false;
    let remembered = null;
    try {
      remembered = sessionStorage.getItem(this.storageKey);
    } catch {
      remembered = null;
    }
    const first = this.sessions.find((session) => session.id === remembered) || this.sessions[0];
    if (first) await this.activate(first.id);
    else this.render();
    setInterval(() => this.poll(), POLL_INTERVAL_MS);
  }

  bind() {
    const ui = this.ui;
    ui.newButton.addEventListener("click", () => this.createSession());
    ui.startButton.addEventListener("click", () => this.createSession());
    ui.tablist.addEventListener("click", (event) => {
      const close = event.target.closest(".chat-tab-close");
      const tab = event.target.closest('[role="tab"]');
      if (close) this.closeSession(close.closest("[data-session-id]").dataset.sessionId);
      else if (tab) this.activate(tab.closest("[data-session-id]").dataset.sessionId);
    });
    ui.tablist.addEventListener("dblclick", (event) => {
      const tab = event.target.closest('[role="tab"]');
      if (tab) this.startRename(tab.closest("[data-session-id]").dataset.sessionId);
    });
    ui.tablist.addEventListener("keydown", (event) => this.onTabKey(event));
    ui.renameButton.addEventListener("click", () => this.activeId && this.startRename(this.activeId));
    ui.pinButton.addEventListener("click", () => this.activeId && this.togglePin(this.activeId));
    ui.closedToggle.addEventListener("click", () => this.toggleClosed());
    ui.closedList.addEventListener("click", (event) => {
      const button = event.target.closest("[data-reopen]");
      if (button) this.reopen(button.dataset.reopen);
    });
    this.root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.closedOpen) {
        this.toggleClosed(false);
        ui.closedToggle.focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (this.closedOpen && !event.target.closest(".chat-closed")) this.toggleClosed(false);
    });
    ui.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    ui.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        this.send();
      }
    });
    ui.input.addEventListener("input", () => {
      this.autosize();
      this.renderComposer();
    });
    ui.stop.addEventListener("click", () => this.stop());
    ui.older.addEventListener("click", () => this.loadOlder());
    if ("IntersectionObserver" in window) {
      const observer = new IntersectionObserver(
        (entries) => {
          if (entries.some((entry) => entry.isIntersecting)) this.loadOlder();
        },
        { root: ui.scroll, rootMargin: "150px 0px 0px 0px" },
      );
      observer.observe(ui.older);
    }
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.poll();
    });
    window.addEventListener("focus", () => this.poll());
    const leaving = () => {
      this.unloading = true;
    };
    window.addEventListener("pagehide", leaving);
    window.addEventListener("beforeunload", leaving);
  }

  onTabKey(event) {
    const tab = event.target.closest('[role="tab"]');
    if (!tab) return;
    const id = tab.closest("[data-session-id]").dataset.sessionId;
    const index = this.sessions.findIndex((session) => session.id === id);
    const count = this.sessions.length;
    let target = null;
    if (event.key === "ArrowRight") target = (index + 1) % count;
    else if (event.key === "ArrowLeft") target = (index - 1 + count) % count;
    else if (event.key === "Home") target = 0;
    else if (event.key === "End") target = count - 1;
    else if (event.key === "Delete") {
      event.preventDefault();
      this.closeSession(id);
      return;
    } else if (event.key === "F2") {
      event.preventDefault();
      this.startRename(id);
      return;
    } else return;
    event.preventDefault();
    this.activate(this.sessions[target].id, { focusTab: true });
  }

  // Sessions (the tabs) ---------------------------------------------------------------------

  async fetchSessions(status = "") {
    let url = `${this.sessionsUrl}?page_size=${SESSION_PAGE_SIZE}${status ? `&status=${status}` : ""}`;
    const sessions = [];
    for (let page = 0; url && page < 20; page += 1) {
      const body = await getJSON(url);
      sessions.push(...body.sessions);
      url = body.next ? samePath(body.next) : null;
    }
    return sessions;
  }

  /**
   * Reload the tab list. The first time, tabs follow the server (most recent first, pinned
   * ahead); after that, known tabs keep their place and new ones (opened elsewhere) come first.
   */
  async refreshSessions({ initial = false } = {}) {
    const version = this.version;
    const list = await this.fetchSessions();
    if (version !== this.version) return;
    const byId = new Map(list.map((session) => [session.id, session]));
    let ordered = list;
    if (!initial) {
      const known = new Set(this.sessions.map((session) => session.id));
      const fresh = list.filter((session) => !known.has(session.id));
      const kept = this.sessions.filter((session) => byId.has(session.id)).map((session) => byId.get(session.id));
      ordered = [...fresh, ...kept];
    }
    const removedIndex = this.sessions.findIndex((session) => session.id === this.activeId);
    this.sessions = pinnedFirst(ordered);
    for (const id of [...this.states.keys()]) {
      if (!byId.has(id)) this.forget(id);
    }
    if (this.activeId && !byId.has(this.activeId)) {
      // Closed in another browser tab: the next tab becomes active, as if closed here.
      this.activeId = null;
      const next = this.sessions[removedIndex] || this.sessions[removedIndex - 1] || this.sessions[0];
      if (next) {
        this.activate(next.id);
        return;
      }
    }
    this.render();
  }

  refreshSessionsSoon() {
    const refresh = () => this.refreshSessions().catch(() => {});
    refresh();
    setTimeout(refresh, TITLE_RECHECK_MS);
  }

  session(id) {
    return this.sessions.find((session) => session.id === id) || null;
  }

  state(id) {
    let state = this.states.get(id);
    if (!state) {
      state = { messages: [], olderUrl: null, loaded: false, loading: null, loadingOlder: false, stream: null, sending: false, draft: "" };
      this.states.set(id, state);
    }
    return state;
  }

  forget(id) {
    const state = this.states.get(id);
    if (state?.stream) state.stream.controller.abort();
    this.states.delete(id);
  }

  async activate(id, { focusTab = false } = {}) {
    if (!this.session(id)) return;
    if (this.activeId && this.activeId !== id) this.state(this.activeId).draft = this.ui.input.value;
    const switching = this.activeId !== id;
    this.activeId = id;
    try {
      sessionStorage.setItem(this.storageKey, id);
    } catch {
      /* private mode: the active tab is simply not remembered */
    }
    const state = this.state(id);
    if (switching) {
      this.ui.input.value = state.draft;
      this.autosize();
    }
    this.render({ scroll: switching ? "bottom" : "auto" });
    if (focusTab) this.focusTab(id);
    await this.loadMessages(id);
  }

  async createSession() {
    this.version += 1;
    this.ui.newButton.disabled = true;
    this.ui.startButton.disabled = true;
    // Whatever is typed now belongs to the new chat, not to the tab still shown.
    this.ui.input.disabled = true;
    try {
      const { session } = await sendJSON(this.sessionsUrl, "POST", {});
      this.sessions = pinnedFirst([session, ...this.sessions.filter((known) => known.id !== session.id)]);
      this.state(session.id).loaded = true; // a new session has no messages to fetch
      await this.activate(session.id);
      this.ui.input.disabled = false;
      this.ui.input.focus();
      this.announce(`New chat “${session.title}” opened.`);
    } catch (error) {
      this.showAlert(error.message);
    } finally {
      this.ui.newButton.disabled = false;
      this.ui.startButton.disabled = false;
      this.ui.input.disabled = false;
    }
  }

  async closeSession(id) {
    const session = this.session(id);
    if (!session) return;
    const hadFocus = this.ui.tablist.contains(document.activeElement);
    this.version += 1;
    try {
      await request(this.sessionUrl(id), { method: "DELETE" });
    } catch (error) {
      if (error.status !== 404) {
        this.showAlert(error.message);
        return;
      }
    }
    const index = this.sessions.indexOf(session);
    this.sessions = this.sessions.filter((known) => known.id !== id);
    this.forget(id);
    this.announce(`Chat “${session.title}” closed. You can reopen it from Closed chats.`);
    if (this.closedOpen) this.loadClosed();
    if (this.activeId !== id) {
      this.render();
      if (hadFocus && this.activeId) this.focusTab(this.activeId);
      return;
    }
    this.activeId = null;
    const next = this.sessions[index] || this.sessions[index - 1];
    if (next) {
      await this.activate(next.id, { focusTab: hadFocus });
    } else {
      this.ui.input.value = "";
      this.render();
      if (hadFocus) this.ui.startButton.focus();
    }
  }

  async reopen(id) {
    this.version += 1;
    try {
      const { session } = await sendJSON(this.sessionUrl(id), "PATCH", { status: "active" });
      this.forget(id);
      this.sessions = pinnedFirst([session, ...this.sessions.filter((known) => known.id !== id)]);
      this.toggleClosed(false);
      await this.activate(id, { focusTab: true });
      this.announce(`Chat “${session.title}” reopened.`);
    } catch (error) {
      this.showAlert(error.message);
    }
  }

  async rename(id, title) {
    const session = this.session(id);
    const clean = title.trim();
    if (!session || !clean || clean === session.title) return;
    this.version += 1;
    const previous = session.title;
    session.title = clean;
    this.render();
    try {
      const { session: saved } = await sendJSON(this.sessionUrl(id), "PATCH", { title: clean });
      Object.assign(session, saved);
      this.announce(`Chat renamed to “${saved.title}”.`);
    } catch (error) {
      session.title = previous;
      this.showAlert(error.message);
    }
    this.render();
  }

  async togglePin(id) {
    const session = this.session(id);
    if (!session) return;
    this.version += 1;
    try {
      const { session: saved } = await sendJSON(this.sessionUrl(id), "PATCH", { pinned: !session.pinned });
      Object.assign(session, saved);
      this.sessions = pinnedFirst(this.sessions);
      this.render();
      this.announce(saved.pinned ? "Chat pinned." : "Chat unpinned.");
    } catch (error) {
      this.showAlert(error.message);
    }
  }

  startRename(id) {
    if (this.renaming || !this.session(id)) return;
    if (this.activeId !== id) this.activate(id);
    const tab = document.getElementById(this.tabId(id));
    if (!tab) return;
    const input = h("input", {
      className: "chat-tab-input",
      type: "text",
      maxlength: "200",
      "aria-label": "Chat title",
    });
    input.value = this.session(id).title;
    tab.hidden = true;
    tab.parentElement.insertBefore(input, tab);
    this.renaming = { id, input };
    input.focus();
    input.select();
    const finish = (save) => {
      if (this.renaming?.input !== input) return;
      this.renaming = null;
      const value = input.value;
      input.remove();
      tab.hidden = false;
      this.render();
      this.focusTab(id);
      if (save) this.rename(id, value);
    };
    input.addEventListener("keydown", (event) => {
      event.stopPropagation();
      if (event.key === "Enter") {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }

  toggleClosed(open = !this.closedOpen) {
    this.closedOpen = open;
    this.ui.closedToggle.setAttribute("aria-expanded", String(open));
    this.ui.closedPopover.hidden = !open;
    if (open) this.loadClosed();
  }

  async loadClosed() {
    const ui = this.ui;
    try {
      const closed = await this.fetchSessions("closed");
      ui.closedEmpty.hidden = closed.length > 0;
      ui.closedList.replaceChildren(
        ...closed.map((session) =>
          h(
            "li",
            { className: "chat-closed-item" },
            h(
              "div",
              { className: "chat-closed-text" },
              h("span", { className: "chat-closed-title", text: session.title, title: session.title }),
              h("span", {
                className: "chat-closed-meta",
                text: `${session.message_count} messages · closed ${formatTime(session.ended_at || session.updated_at)}`,
              }),
            ),
            h("button", {
              type: "button",
              className: "chat-btn chat-btn-small",
              "data-reopen": session.id,
              "aria-label": `Reopen chat ${session.title}`,
              text: "Reopen",
            }),
          ),
        ),
      );
    } catch (error) {
      ui.closedEmpty.hidden = false;
      ui.closedEmpty.textContent = error.message;
    }
  }

  // Messages ----------------------------------------------------------------------------------

  /** Fetch the newest page of a session's messages and merge it in; follow a running answer. */
  async loadMessages(id) {
    const state = this.state(id);
    if (state.loading) return state.loading;
    state.loading = (async () => {
      const first = !state.loaded;
      try {
        const body = await getJSON(`${this.messagesUrl(id)}?page_size=${MESSAGE_PAGE_SIZE}`);
        if (!this.states.has(id)) return;
        this.merge(id, body, { first });
        state.loaded = true;
      } catch (error) {
        if (this.activeId === id) this.showAlert(error.message);
        return;
      } finally {
        state.loading = null;
      }
      if (this.activeId === id) this.render({ scroll: first ? "bottom" : "auto" });
      this.followRunningAnswer(id);
    })();
    return state.loading;
  }

  merge(id, body, { first }) {
    const state = this.state(id);
    if (state.sending) return; // our own send brings this turn's messages
    const incoming = body.messages;
    const newest = Math.max(0, ...state.messages.map((message) => message.message_order || 0));
    if (first || (incoming.length && newest && incoming[0].message_order > newest + 1)) {
      // First load, or more new messages than a page: start again from this page.
      state.messages = state.messages.filter((message) => message.id == null);
      state.olderUrl = body.older ? samePath(body.older) : null;
    }
    const streamingId = state.stream?.target.id;
    const known = new Map(state.messages.filter((message) => message.id != null).map((message) => [message.id, message]));
    for (const message of incoming) {
      const existing = known.get(message.id);
      if (!existing) {
        state.messages.push({ ...message, key: String(message.id) });
      } else if (existing.id !== streamingId) {
        Object.assign(existing, message);
        this.dirty.add(existing);
      }
    }
    const order = (message) => message.message_order ?? Number.MAX_SAFE_INTEGER;
    state.messages.sort((a, b) => order(a) - order(b));
  }

  async loadOlder() {
    const id = this.activeId;
    if (!id) return;
    const state = this.state(id);
    if (!state.olderUrl || state.loadingOlder) return;
    state.loadingOlder = true;
    this.ui.older.disabled = true;
    this.ui.older.textContent = "Loading older messages…";
    try {
      const body = await getJSON(state.olderUrl);
      const have = new Set(state.messages.map((message) => message.id));
      const older = body.messages.filter((message) => !have.has(message.id));
      state.messages = [...older.map((message) => ({ ...message, key: String(message.id) })), ...state.messages];
      state.olderUrl = body.older ? samePath(body.older) : null;
      if (this.activeId === id) {
        const scroller = this.ui.scroll;
        const fromBottom = scroller.scrollHeight - scroller.scrollTop;
        this.render({ scroll: "none" });
        scroller.scrollTop = scroller.scrollHeight - fromBottom;
      }
    } catch (error) {
      this.showAlert(error.message);
    } finally {
      state.loadingOlder = false;
      this.ui.older.disabled = false;
      this.ui.older.textContent = "Load older messages";
    }
  }

  // Sending and streaming ---------------------------------------------------------------------

  attach(id, target) {
    const stream = { controller: new AbortController(), target, lastEventId: 0, text: "", reasoning: "", baseline: "" };
    this.state(id).stream = stream;
    this.renderTabs();
    return stream;
  }

  detach(id, stream) {
    const state = this.states.get(id);
    if (state && state.stream === stream) state.stream = null;
    this.render();
  }

  async send() {
    const id = this.activeId;
    const text = this.ui.input.value.trim();
    if (!id || !text) return;
    const state = this.state(id);
    if (state.stream || state.sending) return;
    const clientId = clientMessageId();
    const now = new Date().toISOString();
    const question = { key: `u-${clientId}`, id: null, sender: "user", message: text, status: "complete", client_message_id: clientId, timestamp: now, metadata: {} };
    const answer = { key: `a-${clientId}`, id: null, sender: "assistant", message: "", status: "streaming", timestamp: now, metadata: {} };
    state.messages.push(question, answer);
    state.sending = true;
    state.draft = "";
    this.ui.input.value = "";
    this.autosize();
    const stream = this.attach(id, answer);
    this.render({ scroll: "bottom" });
    this.announce("Sending. The answer will appear below.");
    try {
      for (let attempt = 0; ; attempt += 1) {
        let response;
        try {
          response = await fetch(this.messagesUrl(id), {
            method: "POST",
            credentials: "same-origin",
            headers: { Accept: "text/event-stream", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
            body: JSON.stringify({ message: text, client_message_id: clientId }),
            signal: stream.controller.signal,
          });
          if (!response.ok) {
            this.sendFailed(id, question, answer, await errorFrom(response));
            return;
          }
          if (await this.consume(id, stream, response)) return;
        } catch (error) {
          if (this.unloading || stream.controller.signal.aborted) return;
        }
        if (answer.id != null) break; // the turn is stored: follow its stream
        if (attempt >= SEND_RETRIES) {
          this.sendFailed(id, question, answer, new ApiError("The server could not be reached. Check your connection and send again."));
          return;
        }
        // Same client_message_id: if the server did store the turn, the retry gets that turn back.
        await sleep(1000 * (attempt + 1));
      }
      await this.follow(id, stream);
    } finally {
      state.sending = false;
      this.detach(id, stream);
    }
  }

  sendFailed(id, question, answer, error) {
    const state = this.state(id);
    state.messages = state.messages.filter((message) => message !== answer);
    question.status = "failed";
    question.failedHere = true;
    question.metadata = { error: { message: error.message, code: error.code } };
    this.dirty.add(question);
    if (this.activeId === id && !this.ui.input.value) {
      this.ui.input.value = question.message;
      this.autosize();
    }
    this.announce(`Not sent: ${error.message}`);
    this.render();
  }

  /** Read one SSE response into the answer; true once it ended with `done` or `error`. */
  async consume(id, stream, response) {
    for await (const event of readEvents(response)) {
      if (event.id != null) stream.lastEventId = event.id;
      this.apply(id, stream, event.data);
      if (event.data.type === "done" || event.data.type === "error") return true;
    }
    return false;
  }

  /** Follow an answer through its stream route, reconnecting after the last event received. */
  async follow(id, stream) {
    let failures = 0;
    while (!stream.controller.signal.aborted && !this.unloading) {
      const before = stream.lastEventId;
      try {
        const response = await fetch(this.streamUrl(id, stream.target.id), {
          credentials: "same-origin",
          headers: { Accept: "text/event-stream", "Last-Event-ID": String(stream.lastEventId) },
          signal: stream.controller.signal,
        });
        if (!response.ok) {
          this.answerFailed(id, stream.target, (await errorFrom(response)).message);
          return;
        }
        if (await this.consume(id, stream, response)) return;
      } catch (error) {
        if (this.unloading || stream.controller.signal.aborted) return;
      }
      failures = stream.lastEventId > before ? 0 : failures + 1;
      if (failures >= RECONNECT_DELAYS_MS.length) {
        this.answerFailed(id, stream.target, "The connection to the answer was lost. Reload the page to see the rest.");
        return;
      }
      await sleep(RECONNECT_DELAYS_MS[failures]);
    }
  }

  /** A reload or another browser tab: an answer still streaming is followed from its first event. */
  followRunningAnswer(id) {
    const state = this.states.get(id);
    if (!state || state.stream || state.sending) return;
    const last = state.messages.findLast((message) => message.sender === "assistant");
    if (!last || last.status !== "streaming" || last.id == null) return;
    const stream = this.attach(id, last);
    stream.baseline = last.message; // shown until the replay has caught up with it
    this.follow(id, stream).finally(() => this.detach(id, stream));
  }

  apply(id, stream, event) {
    const state = this.state(id);
    const target = stream.target;
    switch (event.type) {
      case "start": {
        const stored = event.user_message;
        const pending = state.messages.find((message) => message.id == null && message.client_message_id === stored.client_message_id);
        if (pending) {
          Object.assign(pending, stored);
          this.dirty.add(pending);
        } else if (!state.messages.some((message) => message.id === stored.id)) {
          state.messages.splice(state.messages.indexOf(target), 0, { ...stored, key: String(stored.id) });
        }
        const baseline = stream.baseline || target.message;
        Object.assign(target, event.assistant_message);
        stream.baseline = baseline;
        stream.text = "";
        stream.reasoning = "";
        target.message = this.shown(stream);
        state.sending = false;
        break;
      }
      case "token":
        stream.text += event.text;
        target.message = this.shown(stream);
        break;
      case "reasoning":
        stream.reasoning += event.text;
        target.metadata = { ...target.metadata, reasoning: stream.reasoning };
        break;
      case "reference":
        target.metadata = { ...target.metadata, sources: event.sources || [] };
        break;
      case "title": {
        const session = this.session(id);
        if (session && event.title) {
          session.title = event.title;
          this.render();
        }
        break;
      }
      case "done":
        Object.assign(target, event.message);
        this.finished(id, target);
        break;
      case "error":
        if (event.assistant_message) Object.assign(target, event.assistant_message);
        target.status = "error";
        target.failedHere = true;
        target.metadata = { ...target.metadata, error: { message: event.message, code: event.code } };
        this.finished(id, target);
        break;
      default:
        return;
    }
    this.dirty.add(target);
    this.scheduleRender();
  }

  shown(stream) {
    return stream.text.length >= stream.baseline.length ? stream.text : stream.baseline;
  }

  finished(id, target) {
    if (this.activeId === id) {
      if (target.status === "complete") this.announce("Answer complete.");
      else if (target.status === "interrupted") this.announce("Answer stopped.");
      else this.announce(`The answer failed: ${target.metadata?.error?.message || "unknown error"}`);
    }
    this.refreshSessionsSoon(); // the auto-title arrives after the first exchange
  }

  answerFailed(id, target, message) {
    target.status = "error";
    target.failedHere = true;
    target.metadata = { ...target.metadata, error: { message } };
    this.dirty.add(target);
    this.render();
  }

  async stop() {
    const id = this.activeId;
    const state = id && this.state(id);
    const stream = state?.stream;
    if (!stream) return;
    this.ui.stop.disabled = true;
    try {
      const body = await sendJSON(`${this.sessionUrl(id)}stop/`, "POST");
      if (body?.message && body.message.id === stream.target.id) {
        Object.assign(stream.target, body.message);
        this.dirty.add(stream.target);
      }
      // The stream ends by itself with `done`; if it does not soon, stop listening to it.
      setTimeout(() => {
        if (state.stream === stream) stream.controller.abort();
      }, 5000);
    } catch (error) {
      if (error.status !== 409) this.showAlert(error.message); // 409: it had just finished
    } finally {
      this.ui.stop.disabled = false;
      this.render();
    }
  }

  // Polling (another browser tab, the auto-title) ----------------------------------------------

  async poll() {
    if (!this.loaded || this.polling || this.unloading || document.visibilityState !== "visible") return;
    this.polling = true;
    try {
      const fingerprint = (session) => session && `${session.message_count}|${session.last_activity}|${session.updated_at}`;
      const before = fingerprint(this.session(this.activeId));
      await this.refreshSessions();
      const id = this.activeId;
      const state = id && this.states.get(id);
      if (state && !state.stream && !state.sending) {
        const stale = state.messages.some((message) => message.status === "streaming");
        if (stale || fingerprint(this.session(id)) !== before) await this.loadMessages(id);
      }
      if (this.closedOpen) await this.loadClosed();
    } catch {
      /* a failed poll is retried on the next tick; the user's own actions report their errors */
    } finally {
      this.polling = false;
    }
  }

  // Rendering ---------------------------------------------------------------------------------

  scheduleRender() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render({ scroll = "auto" } = {}) {
    if (this.frame) {
      cancelAnimationFrame(this.frame);
      this.frame = 0;
    }
    const ui = this.ui;
    const active = this.session(this.activeId);
    this.renderTabs();
    ui.welcome.hidden = !this.loaded || this.sessions.length > 0;
    ui.panel.hidden = !active;
    if (!active) {
      this.renderedId = null;
      return;
    }
    ui.panel.setAttribute("aria-labelledby", this.tabId(active.id));
    ui.title.textContent = active.title;
    ui.title.title = active.title;
    ui.pinButton.setAttribute("aria-pressed", String(Boolean(active.pinned)));
    this.renderMessages(scroll);
    this.renderComposer();
  }

  /** Update the tab strip in place (a node replaced between two clicks would lose a double-click). */
  renderTabs() {
    if (this.renaming) return;
    const list = this.ui.tablist;
    const keep = new Set();
    let previous = null;
    for (const session of this.sessions) {
      keep.add(session.id);
      let node = this.tabNodes.get(session.id);
      if (!node) {
        node = tabNode(session, { tabId: this.tabId(session.id), panelId: this.ui.panel.id });
        this.tabNodes.set(session.id, node);
      }
      updateTab(node, session, {
        active: session.id === this.activeId,
        streaming: Boolean(this.states.get(session.id)?.stream),
      });
      const expected = previous ? previous.nextSibling : list.firstChild;
      if (expected !== node) list.insertBefore(node, expected);
      previous = node;
    }
    for (const [id, node] of this.tabNodes) {
      if (!keep.has(id)) {
        const hadFocus = node.contains(document.activeElement);
        node.remove();
        this.tabNodes.delete(id);
        if (hadFocus && this.activeId) this.focusTab(this.activeId);
      }
    }
    document.getElementById(this.tabId(this.activeId))?.scrollIntoView?.({ block: "nearest", inline: "nearest" });
  }

  focusTab(id) {
    document.getElementById(this.tabId(id))?.focus();
  }

  renderMessages(scroll) {
    const ui = this.ui;
    const state = this.state(this.activeId);
    if (this.renderedId !== this.activeId) {
      ui.messages.replaceChildren();
      this.messageNodes = new Map();
      this.renderedId = this.activeId;
    }
    const scroller = ui.scroll;
    const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    const keep = new Set();
    let previous = null;
    for (const message of state.messages) {
      keep.add(message.key);
      let node = this.messageNodes.get(message.key);
      if (!node) {
        node = h("li");
        this.messageNodes.set(message.key, node);
        fillMessage(node, message, { idPrefix: this.prefix });
      } else if (this.dirty.has(message)) {
        fillMessage(node, message, { idPrefix: this.prefix });
      }
      const expected = previous ? previous.nextSibling : ui.messages.firstChild;
      if (expected !== node) ui.messages.insertBefore(node, expected);
      previous = node;
    }
    for (const [key, node] of this.messageNodes) {
      if (!keep.has(key)) {
        node.remove();
        this.messageNodes.delete(key);
      }
    }
    this.dirty.clear();
    ui.older.hidden = !state.olderUrl;
    ui.empty.hidden = !state.loaded || state.messages.length > 0;
    if (scroll === "bottom" || (scroll === "auto" && nearBottom)) scroller.scrollTop = scroller.scrollHeight;
  }

  renderComposer() {
    const ui = this.ui;
    const state = this.activeId && this.state(this.activeId);
    const running = Boolean(state && (state.stream || state.sending));
    ui.send.hidden = running;
    ui.stop.hidden = !running;
    ui.send.disabled = !ui.input.value.trim();
  }

  autosize() {
    const input = this.ui.input;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  }

  showAlert(message) {
    const alert = this.ui.alert;
    alert.replaceChildren(
      h("span", { text: message }),
      h("button", { type: "button", className: "chat-alert-dismiss", "aria-label": "Dismiss", text: "×" }),
    );
    alert.querySelector("button").addEventListener("click", () => {
      alert.hidden = true;
    });
    alert.hidden = false;
    clearTimeout(this.alertTimer);
    this.alertTimer = setTimeout(() => {
      alert.hidden = true;
    }, 12000);
  }

  announce(text) {
    const announcer = this.ui.announcer;
    announcer.textContent = "";
    setTimeout(() => {
      announcer.textContent = text;
    }, 50);
  }
}

for (const root of document.querySelectorAll("[data-chat]")) {
  if (!root.chatPanel) {
    root.chatPanel = new ChatPanel(root);
    root.chatPanel.start();
  }
}
