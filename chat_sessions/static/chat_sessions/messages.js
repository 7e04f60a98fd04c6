/**
 * One message of the conversation as a list item: author and time, the text (an answer's
 * Markdown through the safe renderer, a question as plain text), reasoning, a note for a stopped
 * or failed message, and the answer's sources as numbered citations that [n] (or RAGFlow's [ID:n])
 * markers link to.
 */

import { formatTime, h, truncate } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

const SNIPPET_LENGTH = 240;
const AUTHORS = { user: "You", assistant: "Assistant", system: "Note" };

/** Fill `node` (an <li>) for `message`; `idPrefix` keeps citation ids unique on the page. */
export function fillMessage(node, message, { idPrefix }) {
  const assistant = message.sender === "assistant";
  const citationId = (number) => `${idPrefix}-m${message.key}-source-${number}`;
  node.className = `chat-msg chat-msg-${message.sender}`;
  node.dataset.status = message.status;
  node.dataset.messageId = message.id ?? "";
  node.setAttribute("aria-busy", String(message.status === "streaming"));
  const parts = [
    h(
      "div",
      { className: "chat-msg-meta" },
      h("span", { className: "chat-msg-author", text: AUTHORS[message.sender] || message.sender }),
      h("time", { datetime: message.timestamp, text: formatTime(message.timestamp) }),
    ),
  ];
  const reasoning = message.metadata?.reasoning;
  if (assistant && reasoning) {
    const details = h(
      "details",
      { className: "chat-reasoning" },
      h("summary", { text: "Reasoning" }),
      h("div", { className: "chat-reasoning-text", text: reasoning }),
    );
    details.open = Boolean(node.querySelector(".chat-reasoning")?.open);
    parts.push(details);
  }
  const sources = (assistant && message.metadata?.sources) || [];
  parts.push(assistant ? answerBody(message, sources, citationId) : h("div", { className: "chat-msg-body", text: message.message }));
  const note = noteFor(message);
  if (note) parts.push(note);
  if (sources.length) parts.push(sourcesNode(sources, citationId));
  node.replaceChildren(h("div", { className: "chat-msg-inner" }, ...parts));
}

/**
 * What each citation number of an answer is shown as: the source's place in its list, 1, 2, 3...
 * An agent's own numbers can be anything (RAGFlow's `[ID:320]` is a hash of the chunk id).
 */
function citationLabels(sources) {
  return new Map(sources.map((source, position) => [Number(source.index ?? position + 1), position + 1]));
}

function answerBody(message, sources, citationId) {
  const labels = citationLabels(sources);
  const body = h("div", { className: "chat-msg-body chat-markdown" });
  body.append(
    renderMarkdown(message.message, {
      citation: (number) =>
        labels.has(number)
          ? h("a", {
              className: "chat-cite-ref",
              href: `#${citationId(number)}`,
              "aria-label": `Source ${labels.get(number)}`,
              text: String(labels.get(number)),
            })
          : null,
    }),
  );
  if (message.status === "streaming" && !message.message) {
    const hint = h("span", { className: "chat-visually-hidden", text: "Generating the answer…" });
    body.append(h("span", { className: "chat-typing" }, h("span"), h("span"), h("span"), hint));
  }
  return body;
}

/** Stopped or failed: said in the conversation. `role="alert"` only for what failed just now. */
function noteFor(message) {
  const error = message.metadata?.error?.message || "unknown error";
  const alert = message.failedHere ? "alert" : null;
  if (message.status === "failed") {
    return h("p", { className: "chat-msg-note chat-msg-error", role: alert, text: `Not sent: ${error}` });
  }
  if (message.status === "error") {
    return h("p", { className: "chat-msg-note chat-msg-error", role: alert, text: `The answer failed: ${error}` });
  }
  if (message.status === "interrupted") return h("p", { className: "chat-msg-note", text: "Stopped before the end." });
  if (message.status === "streaming" && message.connectionLost) {
    const text = "The connection to the server was lost; reconnecting. What was written so far is kept.";
    return h("p", { className: "chat-msg-note", role: "status", text });
  }
  return null;
}

function sourcesNode(sources, citationId) {
  const items = sources.map((source, position) => {
    const number = Number(source.index ?? position + 1);
    const title = source.title || source.document_name || "Untitled source";
    return h(
      "li",
      { className: "chat-source", id: citationId(number) },
      h("span", { className: "chat-source-index", "aria-hidden": "true", text: String(position + 1) }),
      h(
        "div",
        { className: "chat-source-text" },
        h("span", { className: "chat-source-title", text: title }),
        source.snippet ? h("span", { className: "chat-source-snippet", text: truncate(source.snippet, SNIPPET_LENGTH) }) : "",
      ),
    );
  });
  return h(
    "section",
    { className: "chat-sources", "aria-label": "Sources" },
    h("h3", { className: "chat-sources-heading", text: "Sources" }),
    h("ol", { className: "chat-sources-list" }, ...items),
  );
}
