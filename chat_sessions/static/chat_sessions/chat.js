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

import { getJSON, request, samePath, sendJSON } from "./api.js";
import { Conversation } from "./conversation.js";
import { formatTime, h } from "./dom.js";
import { fillMessage } from "./messages.js";
import { tabNode, updateTab } from "./tabs.js";

const POLL_INTERVAL_MS = 4000;
const TITLE_RECHECK_MS = 3000;
const SESSION_PAGE_SIZE = 100;
// Closed chats come a page at a time, newest first; older ones behind "Show more" or a search.
const CLOSED_PAGE_SIZE = 20;
const CLOSED_SEARCH_DELAY_MS = 250;

let panelCount = 0;

function pinnedFirst(sessions) {
  return [...sessions.filter((session) => session.pinned), ...sessions.filter((session) => !session.pinned)];
}

class ChatPanel {
  constructor(root) {
    this.root = root;
    this.sessionsUrl = root.dataset.chatSessionsUrl;
    this.prefix = `chat${++panelCount}`;
    this.sessions = [];
    this.conversations = new Map();
    this.activeId = null;
    this.loaded = false;
    this.renaming = null;
    this.unloading = false;
    this.polling = false;
    this.closedOpen = false;
    // Bumped by every closed-chats request, so an older answer (a previous search) is dropped.
    this.closedVersion = 0;
    this.closedNext = null;
    this.closedSearchTimer = 0;
    this.creating = false;
    this.sendWhenCreated = false;
    // What was typed in the active chat when another browser tab closed it (`refreshSessions`).
    this.unsentText = "";
    // Bumped by every local change to the session list, so an older list response cannot undo it.
    this.version = 0;
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
      closedSearch: $(".chat-closed-search"),
      closedMore: $(".chat-closed-more"),
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
    ui.closedSearch.addEventListener("input", () => {
      clearTimeout(this.closedSearchTimer);
      this.closedSearchTimer = setTimeout(() => this.closedOpen && this.loadClosed(), CLOSED_SEARCH_DELAY_MS);
    });
    ui.closedMore.addEventListener("click", () => this.loadClosed({ more: true }));
    this.root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.closedOpen) {
        this.toggleClosed(false);
        ui.closedToggle.focus();
      }
    });
    document.addEventListener("keydown", (event) => this.typeWhileCreating(event));
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
    for (const id of [...this.conversations.keys()]) {
      if (!byId.has(id)) this.forget(id);
    }
    if (this.activeId && !byId.has(this.activeId)) {
      // Closed in another browser tab: the next tab becomes active, as if closed here. Text not
      // sent yet had no chat left to be a draft of: it goes to the next chat's message box.
      if (this.ui.input.value.trim()) {
        this.unsentText = this.ui.input.value;
        this.showAlert("This chat was closed or deleted in another window. What you had typed is kept for your next message.");
      }
      this.activeId = null;
      const next = this.sessions[removedIndex] || this.sessions[removedIndex - 1] || this.sessions[0];
      if (next) {
        this.activate(next.id);
        return;
      }
    }
    this.render();
  }

  session(id) {
    return this.sessions.find((session) => session.id === id) || null;
  }

  conversation(id) {
    let conversation = this.conversations.get(id);
    if (!conversation) {
      conversation = new Conversation(this.sessionUrl(id), {
        changed: ({ scroll = "auto" } = {}) => {
          if (this.conversations.get(id) !== conversation) return;
          // Tokens arrive faster than frames: draw at most once a frame, unless asked to scroll.
          if (this.activeId === id && scroll !== "auto") this.render({ scroll });
          else this.scheduleRender();
        },
        finished: (message) => this.answerFinished(id, message),
        rejected: (question, error) => this.messageRejected(id, question, error),
        titled: (title) => this.retitled(id, title),
      });
      this.conversations.set(id, conversation);
    }
    return conversation;
  }

  forget(id) {
    this.conversations.get(id)?.close();
    this.conversations.delete(id);
  }

  async activate(id, { focusTab = false, keepInput = false, load = true } = {}) {
    if (!this.session(id)) return;
    const switching = this.activeId !== id;
    if (this.activeId && switching && !keepInput) this.conversation(this.activeId).draft = this.ui.input.value;
    this.activeId = id;
    try {
      sessionStorage.setItem(this.storageKey, id);
    } catch {
      /* private mode: the active tab is simply not remembered */
    }
    const conversation = this.conversation(id);
    if (switching && !keepInput) this.ui.input.value = this.withUnsentText(conversation.draft);
    this.render({ scroll: switching ? "bottom" : "auto" });
    this.autosize();
    if (focusTab) this.focusTab(id);
    if (load) await this.loadMessages(id);
  }

  /** `draft`, with the text of a chat closed elsewhere before it was sent (once; nothing is lost). */
  withUnsentText(draft) {
    const text = [draft, this.unsentText].filter(Boolean).join("\n\n");
    this.unsentText = "";
    return text;
  }

  async createSession() {
    if (this.creating) return;
    this.version += 1;
    // From this click on, what is typed belongs to the new chat, not to the tab still shown.
    if (this.activeId) this.conversation(this.activeId).draft = this.ui.input.value;
    this.ui.input.value = this.withUnsentText("");
    this.creating = true;
    this.ui.newButton.disabled = true;
    this.ui.startButton.disabled = true;
    // Disabling the clicked button drops the keyboard's focus: typing goes on in the composer at
    // once (when shown; from the welcome screen, `typeWhileCreating` keeps the keys).
    if (!this.ui.panel.hidden) this.ui.input.focus();
    try {
      const { session } = await sendJSON(this.sessionsUrl, "POST", {});
      this.sessions = pinnedFirst([session, ...this.sessions.filter((known) => known.id !== session.id)]);
      this.conversation(session.id).loaded = true;
      await this.activate(session.id, { keepInput: true, load: false }); // nothing to fetch yet
      this.ui.input.focus();
      this.announce(`New chat “${session.title}” opened.`);
    } catch (error) {
      // No new chat: the draft of the one still shown comes back, with what was typed for the new
      // one after it, and nothing is sent (an Enter pressed meanwhile meant the new chat).
      this.sendWhenCreated = false;
      if (this.activeId) {
        const typed = this.ui.input.value;
        this.ui.input.value = [this.conversation(this.activeId).draft, typed].filter(Boolean).join("\n\n");
        this.autosize();
        this.renderComposer();
      }
      this.showAlert(error.message);
    } finally {
      this.creating = false;
      this.ui.newButton.disabled = false;
      this.ui.startButton.disabled = false;
    }
    if (this.sendWhenCreated) {
      this.sendWhenCreated = false;
      this.send();
    }
  }

  /**
   * Keys typed while the first chat is being created, before its composer is shown, go into the
   * composer (Enter sends once it exists), as they would have with the composer in focus.
   */
  typeWhileCreating(event) {
    const target = event.target;
    const typing = target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    if (!this.creating || typing || event.defaultPrevented || event.isComposing || event.ctrlKey || event.metaKey || event.altKey) return;
    const input = this.ui.input;
    if (event.key.length === 1) input.value += event.key;
    else if (event.key === "Backspace") input.value = input.value.slice(0, -1);
    else if (event.key === "Enter" && !event.shiftKey) this.sendWhenCreated = Boolean(input.value.trim());
    else if (event.key === "Enter") input.value += "\n";
    else return;
    event.preventDefault();
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
    if (this.closedOpen) this.loadClosed({ refresh: true });
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
    clearTimeout(this.closedSearchTimer);
    if (open) {
      this.ui.closedSearch.value = "";
      this.loadClosed();
      this.ui.closedSearch.focus();
    }
  }

  /**
   * Fill the Closed chats list: its first page for the search box's text, the next page
   * (`more`), or, on a poll (`refresh`), as many as are shown now so "Show more" is not undone.
   */
  async loadClosed({ more = false, refresh = false } = {}) {
    const ui = this.ui;
    const query = ui.closedSearch.value.trim();
    let url = this.closedNext;
    // A poll reads as many as are shown, past the API's largest page if "Show more" went there.
    const wanted = refresh ? Math.max(ui.closedList.children.length, CLOSED_PAGE_SIZE) : CLOSED_PAGE_SIZE;
    if (!more) {
      const search = query ? `&q=${encodeURIComponent(query)}` : "";
      url = `${this.sessionsUrl}?status=closed&page_size=${Math.min(wanted, SESSION_PAGE_SIZE)}${search}`;
    }
    if (!url) return;
    // Clicked or pressed, "Show more" has the focus, and may be hidden once the last page is in.
    const fromMore = more && document.activeElement === ui.closedMore;
    const version = ++this.closedVersion;
    try {
      const sessions = [];
      let next = url;
      do {
        const body = await getJSON(next);
        if (version !== this.closedVersion) return;
        sessions.push(...body.sessions);
        next = body.next ? samePath(body.next) : null;
      } while (next && !more && sessions.length < wanted);
      const items = sessions.map((session) => this.closedItem(session));
      if (more) ui.closedList.append(...items);
      else ui.closedList.replaceChildren(...items);
      this.closedNext = next;
      ui.closedMore.hidden = !this.closedNext;
      ui.closedEmpty.hidden = ui.closedList.children.length > 0;
      ui.closedEmpty.textContent = query ? `No closed chats match “${query}”.` : "No closed chats.";
      if (fromMore && items.length) items[0].querySelector("[data-reopen]").focus();
    } catch (error) {
      if (version !== this.closedVersion) return;
      ui.closedEmpty.hidden = false;
      ui.closedEmpty.textContent = error.message;
    }
  }

  closedItem(session) {
    return h(
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
    );
  }

  // The conversation ---------------------------------------------------------------------------

  async loadMessages(id) {
    try {
      await this.conversation(id).load();
    } catch (error) {
      if (this.activeId === id) this.showAlert(error.message);
    }
  }

  async loadOlder() {
    const conversation = this.activeId && this.conversation(this.activeId);
    if (!conversation?.olderUrl || conversation.loadingOlder) return;
    const older = this.ui.older;
    older.disabled = true;
    older.textContent = "Loading older messages…";
    try {
      await conversation.loadOlder();
      if (this.conversation(this.activeId) === conversation) {
        // Keep the messages on screen where they are while older ones appear above them.
        const scroller = this.ui.scroll;
        const fromBottom = scroller.scrollHeight - scroller.scrollTop;
        this.render({ scroll: "none" });
        scroller.scrollTop = scroller.scrollHeight - fromBottom;
      }
    } catch (error) {
      this.showAlert(error.message);
    } finally {
      older.disabled = false;
      older.textContent = "Load older messages";
    }
  }

  send() {
    const text = this.ui.input.value.trim();
    if (this.creating) {
      this.sendWhenCreated = Boolean(text);
      return;
    }
    if (!this.activeId || !text) return;
    const conversation = this.conversation(this.activeId);
    if (conversation.running) return;
    conversation.draft = "";
    this.ui.input.value = "";
    this.autosize();
    this.announce("Sending. The answer will appear below.");
    conversation.send(text);
  }

  async stop() {
    const conversation = this.activeId && this.conversation(this.activeId);
    if (!conversation?.stream) return;
    this.ui.stop.disabled = true;
    try {
      await conversation.stop();
    } catch (error) {
      this.showAlert(error.message);
    } finally {
      this.ui.stop.disabled = false;
      this.render();
    }
  }

  answerFinished(id, message) {
    if (this.activeId === id) {
      if (message.status === "complete") this.announce("Answer complete.");
      else if (message.status === "interrupted") this.announce("Answer stopped.");
      else this.announce(`The answer failed: ${message.metadata?.error?.message || "unknown error"}`);
    }
    // The auto-title is written after the first exchange, by a worker: look for it now and soon.
    const refresh = () => this.refreshSessions().catch(() => {});
    refresh();
    setTimeout(refresh, TITLE_RECHECK_MS);
  }

  messageRejected(id, question, error) {
    if (this.activeId === id && !this.ui.input.value) {
      this.ui.input.value = question.message; // nothing typed since: give the text back
      this.autosize();
    }
    this.announce(`Not sent: ${error.message}`);
  }

  retitled(id, title) {
    const session = this.session(id);
    if (!session) return;
    session.title = title;
    this.render();
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
      const conversation = id && this.conversations.get(id);
      if (conversation && !conversation.running) {
        const stale = conversation.messages.some((message) => message.status === "streaming");
        if (stale || fingerprint(this.session(id)) !== before) await this.loadMessages(id);
      }
      if (this.closedOpen) await this.loadClosed({ refresh: true });
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
        streaming: Boolean(this.conversations.get(session.id)?.stream),
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
    const conversation = this.conversation(this.activeId);
    if (this.renderedId !== this.activeId) {
      ui.messages.replaceChildren();
      this.messageNodes = new Map();
      this.renderedId = this.activeId;
    }
    const scroller = ui.scroll;
    const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    const keep = new Set();
    let previous = null;
    for (const message of conversation.messages) {
      keep.add(message.key);
      let node = this.messageNodes.get(message.key);
      if (!node) {
        node = h("li");
        this.messageNodes.set(message.key, node);
        fillMessage(node, message, { idPrefix: this.prefix });
      } else if (conversation.dirty.has(message)) {
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
    conversation.dirty.clear();
    ui.older.hidden = !conversation.olderUrl;
    ui.empty.hidden = !conversation.loaded || conversation.messages.length > 0;
    if (scroll === "bottom" || (scroll === "auto" && nearBottom)) scroller.scrollTop = scroller.scrollHeight;
  }

  renderComposer() {
    const ui = this.ui;
    const running = Boolean(this.activeId && this.conversation(this.activeId).running);
    ui.send.hidden = running;
    ui.stop.hidden = !running;
    ui.send.disabled = !ui.input.value.trim();
  }

  /** Grow the composer with its text, up to a limit; empty (or hidden), it is one row. */
  autosize() {
    const input = this.ui.input;
    input.style.height = "";
    if (!input.value || !input.offsetParent) return;
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
