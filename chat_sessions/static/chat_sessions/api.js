/**
 * Calls to the chat API with the browser's session cookie: the CSRF header on writes, JSON in
 * and out, and failures turned into an `ApiError` whose message can be shown to the user.
 */

export class ApiError extends Error {
  constructor(message, { status = 0, code = "" } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** The path and query of an absolute URL the API returned (pagination links), for this origin. */
export function samePath(url) {
  const parsed = new URL(url, window.location.href);
  return parsed.pathname + parsed.search;
}

export async function request(url, { method = "GET", json, headers = {}, signal, accept = "application/json" } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: accept, ...headers }, signal };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRFToken"] = csrfToken();
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("The server could not be reached. Check your connection and try again.", { code: "network" });
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function getJSON(url, options) {
  return (await request(url, options)).json();
}

export async function sendJSON(url, method, json) {
  const response = await request(url, { method, json });
  return response.status === 204 ? null : response.json();
}

const STATUS_MESSAGES = {
  401: "Your login has expired. Reload the page and log in again.",
  403: "You are not allowed to do that (your login may have expired: reload the page).",
  404: "This chat no longer exists.",
  413: "That is too large to send.",
  429: "Too many requests at once. Wait a moment and try again.",
};

/** An ApiError from a failed response: the API's own `detail`, else a message for the status. */
export async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  let message = "";
  if (body && typeof body === "object") {
    if (typeof body.detail === "string") {
      message = body.detail;
    } else {
      const first = Object.entries(body).find(([, value]) => Array.isArray(value) && value.length);
      if (first) message = `${first[0] === "non_field_errors" ? "" : `${first[0]}: `}${first[1][0]}`;
    }
  }
  if (!message) message = STATUS_MESSAGES[response.status] || `The server answered ${response.status}. Try again.`;
  return new ApiError(message, { status: response.status, code: (body && body.code) || "" });
}
