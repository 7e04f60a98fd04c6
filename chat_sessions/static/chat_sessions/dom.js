/** Small DOM helpers for the chat panel: elements built from text only, icons, times. */

/** `h("button", {className, text, "aria-label": ...}, ...children)`: attributes are set, text is text. */
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children);
  return node;
}

export const ICONS = {
  close: "M4.5 4.5l7 7M11.5 4.5l-7 7",
  pin: "M6 2.5h4M7 2.5v4L4.5 9h7L9 6.5v-4M8 9v4.5",
};

/** A stroked 16x16 SVG icon, hidden from assistive technology (its button carries the label). */
export function svgIcon(path, size = 14) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [name, value] of Object.entries({ viewBox: "0 0 16 16", width: size, height: size, "aria-hidden": "true" })) {
    svg.setAttribute(name, value);
  }
  const shape = document.createElementNS(ns, "path");
  for (const [name, value] of Object.entries({
    d: path,
    fill: "none",
    stroke: "currentColor",
    "stroke-width": "1.6",
    "stroke-linecap": "round",
    "stroke-linejoin": "round",
  })) {
    shape.setAttribute(name, value);
  }
  svg.append(shape);
  return svg;
}

/** A time of today as "10:42", any other as a short date and time, in the user's locale. */
export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const sameDay = date.toDateString() === new Date().toDateString();
  const options = sameDay ? { hour: "2-digit", minute: "2-digit" } : { dateStyle: "medium", timeStyle: "short" };
  return date.toLocaleString(undefined, options);
}

export function truncate(text, length) {
  const clean = String(text ?? "").replace(/\s+/g, " ").trim();
  return clean.length > length ? `${clean.slice(0, length - 1)}…` : clean;
}
