/**
 * One chat session as a tab of the `tablist`: a `role="tab"` button (its title) and a labelled
 * close button. Nodes are made once and updated in place, so focus, hover and a double-click
 * survive every refresh of the list.
 */

import { ICONS, h, svgIcon } from "./dom.js";

export function tabNode(session, { tabId, panelId }) {
  const tab = h(
    "button",
    { type: "button", role: "tab", id: tabId, className: "chat-tab-button", "aria-controls": panelId },
    h("span", { className: "chat-tab-pin" }),
    h("span", { className: "chat-tab-title" }),
    h("span", { className: "chat-tab-activity", "aria-hidden": "true" }),
  );
  const close = h("button", { type: "button", className: "chat-tab-close", title: "Close chat" }, svgIcon(ICONS.close, 12));
  return h("div", { className: "chat-tab", role: "presentation", "data-session-id": session.id }, tab, close);
}

/** Roving tabindex: only the active tab (and its close button) is in the Tab order. */
export function updateTab(node, session, { active, streaming }) {
  const [tab, close] = node.children;
  node.classList.toggle("is-active", active);
  node.classList.toggle("is-pinned", Boolean(session.pinned));
  node.classList.toggle("is-streaming", streaming);
  tab.setAttribute("aria-selected", String(active));
  tab.tabIndex = active ? 0 : -1;
  tab.title = session.title;
  const title = tab.querySelector(".chat-tab-title");
  if (title.textContent !== session.title) title.textContent = session.title;
  const pin = tab.querySelector(".chat-tab-pin");
  if (Boolean(session.pinned) !== pin.hasChildNodes()) {
    const marker = [svgIcon(ICONS.pin, 12), h("span", { className: "chat-visually-hidden", text: "Pinned: " })];
    pin.replaceChildren(...(session.pinned ? marker : []));
  }
  close.tabIndex = active ? 0 : -1;
  close.setAttribute("aria-label", `Close chat ${session.title}`);
}
