/**
 * Keeps the sources panel's parse statuses current without a reload.
 *
 * A source is read by a worker after it is added (pending, then parsing n%, then ready or error),
 * which takes seconds to minutes. While any source on the page is unsettled, each such source is
 * read again from the API every `data-poll-ms`; polling stops when all are settled, pauses while
 * the page is hidden, and backs off while the server cannot be reached. A source that is gone
 * (deleted in another tab, or after `deleting`) leaves the list.
 */

import { ApiError, getJSON } from "../chat_sessions/api.js";

const SETTLED = new Set(["ready", "error"]);
const MAX_BACKOFF_MS = 30000;

const list = document.querySelector(".source-list[data-source-url]");
const labels = list ? JSON.parse(list.dataset.statusLabels || "{}") : {};

function statusText(source) {
  const label = labels[source.parse_status] || source.parse_status;
  return source.parse_status === "parsing" ? `${label} ${Math.round(source.parse_progress * 100)}%` : label;
}

function unsettled() {
  return [...list.querySelectorAll(".source-item[data-source-id]")].filter((item) => !SETTLED.has(item.dataset.status));
}

function show(item, source) {
  const status = item.querySelector("[data-source-status]");
  const text = statusText(source);
  if (status.textContent !== text) status.textContent = text;
  status.className = `status status-${source.parse_status}`;
  item.dataset.status = source.parse_status;
  const error = item.querySelector("[data-source-error]");
  error.textContent = source.last_error || "";
  error.hidden = !source.last_error;
}

function forget(item) {
  item.remove();
  const badge = document.querySelector(".sources .count-badge");
  if (badge) {
    const count = list.querySelectorAll(".source-item").length;
    badge.textContent = String(count);
    badge.setAttribute("aria-label", `${count} sources`);
  }
}

async function refresh(item) {
  try {
    show(item, await getJSON(`${list.dataset.sourceUrl}${item.dataset.sourceId}/`));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) forget(item);
    else throw error;
  }
}

if (list) {
  const interval = Number(list.dataset.pollMs) || 2000;
  let delay = interval;
  let timer = null;
  let running = false;

  const poll = async () => {
    timer = null;
    const items = unsettled();
    if (!items.length || document.hidden) return; // visibilitychange starts it again
    running = true;
    try {
      await Promise.all(items.map(refresh));
      delay = interval;
    } catch {
      delay = Math.min(delay * 2, MAX_BACKOFF_MS); // the server is unreachable: ask less often
    } finally {
      running = false;
    }
    schedule();
  };

  const schedule = () => {
    if (timer === null && !running && unsettled().length) timer = setTimeout(poll, delay);
  };

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) schedule();
  });
  schedule();
}
