/**
 * A small Markdown renderer for text written by a model, safe by construction.
 *
 * It builds DOM nodes and never parses HTML: every character of the input ends up as text
 * (`textContent`), so `<script>`, `<img onerror=...>` or any other markup is shown, not run.
 * Supported: paragraphs (a single newline is a line break), headings, **strong**, *emphasis*,
 * ~~strikethrough~~, `code`, fenced code blocks, bullet and numbered lists (nested), blockquotes,
 * rules, links, and citation markers like [1] (or RAGFlow's [ID:1]).
 * Links: only absolute http(s) URLs become links, opened in a new tab with
 * rel="noopener noreferrer nofollow"; anything else (javascript:, data:, relative) stays text.
 * Images are never loaded: `![alt](url)` becomes a link labelled "Image: alt".
 */

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const BULLET = /^( *)([-*+])\s+(.*)$/;
const ORDERED = /^( *)(\d{1,9})[.)]\s+(.*)$/;
const ESCAPABLE = /[\\`*_{}[\]()#+\-.!~<>|"']/;
const BARE_URL = /^https?:\/\/[^\s<>"]+/;
const TRAILING_PUNCTUATION = /[.,;:!?'")\]]+$/;

/**
 * Render `text` into a DocumentFragment.
 * `options.citation(number)` may return a Node to show for a marker like [1] or [ID:1] (or null for text).
 */
export function renderMarkdown(text, options = {}) {
  const fragment = document.createDocumentFragment();
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  parseBlocks(lines, fragment, options);
  return fragment;
}

/** An absolute http(s) URL as a normalised string, or null for anything else. */
export function safeUrl(raw) {
  let url;
  try {
    url = new URL(String(raw).trim());
  } catch {
    return null;
  }
  return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
}

function el(tag, ...children) {
  const node = document.createElement(tag);
  node.append(...children);
  return node;
}

function indentOf(line) {
  return line.length - line.trimStart().length;
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || isListItem(line);
}

function isListItem(line) {
  const match = line.match(BULLET) || line.match(ORDERED);
  return Boolean(match && indentOf(line) <= 3);
}

function parseBlocks(lines, parent, options) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    let match = line.match(FENCE);
    if (match) {
      i = parseFence(lines, i, match, parent);
      continue;
    }
    match = line.match(HEADING);
    if (match) {
      const level = Math.min(match[1].length + 2, 6); // the chat's own headings sit above these
      parent.append(el(`h${level}`, ...inline(match[2], options)));
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      parent.append(el("hr"));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && lines[i].trim() && QUOTE.test(lines[i])) {
        inner.push(lines[i].match(QUOTE)[1]);
        i += 1;
      }
      const quote = el("blockquote");
      parseBlocks(inner, quote, options);
      parent.append(quote);
      continue;
    }
    if (isListItem(line)) {
      i = parseList(lines, i, parent, options);
      continue;
    }
    const paragraph = [];
    while (i < lines.length && lines[i].trim() && (paragraph.length === 0 || !startsBlock(lines[i]))) {
      paragraph.push(lines[i].trim());
      i += 1;
    }
    parent.append(el("p", ...inline(paragraph.join("\n"), options)));
  }
}

function parseFence(lines, start, match, parent) {
  const marker = match[1];
  const body = [];
  let i = start + 1;
  while (i < lines.length) {
    const trimmed = lines[i].trim();
    if (trimmed.startsWith(marker) && !trimmed.slice(marker.length).replace(marker[0], "").trim()) break;
    body.push(lines[i]);
    i += 1;
  }
  const code = el("code");
  code.textContent = body.join("\n");
  if (match[2]) code.dataset.language = match[2];
  parent.append(el("pre", code));
  return i + 1; // past the closing fence (or the end, for a fence the model never closed)
}

function parseList(lines, start, parent, options) {
  const first = lines[start].match(BULLET);
  const ordered = !first;
  const pattern = ordered ? ORDERED : BULLET;
  const head = lines[start].match(pattern);
  const baseIndent = head[1].length;
  const list = el(ordered ? "ol" : "ul");
  if (ordered && head[2] !== "1") list.start = Number(head[2]);
  let i = start;
  let loose = false;
  while (i < lines.length) {
    const match = lines[i].match(pattern);
    if (!match || match[1].length !== baseIndent) break;
    const contentIndent = match[0].length - match[3].length;
    const item = [match[3]];
    i += 1;
    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) {
        const next = lines[i + 1];
        if (next !== undefined && next.trim() && indentOf(next) >= contentIndent) {
          item.push("");
          loose = true;
          i += 1;
          continue;
        }
        break;
      }
      if (indentOf(line) > baseIndent) {
        item.push(line.slice(Math.min(indentOf(line), contentIndent)));
      } else if (startsBlock(line)) {
        break;
      } else {
        item.push(line.trim()); // a lazy continuation of the item's paragraph
      }
      i += 1;
    }
    const li = el("li");
    parseBlocks(item, li, options);
    if (!loose) unwrapParagraphs(li);
    list.append(li);
    // Blank lines between two items of the same list keep the list going.
    let j = i;
    while (j < lines.length && !lines[j].trim()) j += 1;
    const next = j < lines.length ? lines[j].match(pattern) : null;
    if (j > i && next && next[1].length === baseIndent) i = j;
  }
  parent.append(list);
  return i;
}

function unwrapParagraphs(li) {
  for (const child of [...li.children]) {
    if (child.tagName === "P") child.replaceWith(...child.childNodes);
  }
}

/** Inline Markdown of one block, as an array of nodes. */
function inline(text, options) {
  const nodes = [];
  let buffer = "";
  const flush = () => {
    if (buffer) nodes.push(document.createTextNode(buffer));
    buffer = "";
  };
  const push = (node) => {
    flush();
    nodes.push(node);
  };
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    const rest = text.slice(i);
    if (ch === "\\" && i + 1 < text.length && ESCAPABLE.test(text[i + 1])) {
      buffer += text[i + 1];
      i += 2;
      continue;
    }
    if (ch === "\n") {
      push(el("br"));
      i += 1;
      continue;
    }
    if (ch === "`") {
      const run = rest.match(/^`+/)[0];
      const end = text.indexOf(run, i + run.length);
      if (end !== -1) {
        const code = el("code");
        code.textContent = text.slice(i + run.length, end).replace(/^ ([^]*) $/, "$1");
        push(code);
        i = end + run.length;
      } else {
        buffer += run;
        i += run.length;
      }
      continue;
    }
    if (ch === "!" && text[i + 1] === "[") {
      const link = linkAt(text, i + 1);
      if (link) {
        push(imageAsLink(link));
        i = link.end;
        continue;
      }
    }
    if (ch === "[") {
      const link = linkAt(text, i);
      if (link) {
        push(linkNode(link, options));
        i = link.end;
        continue;
      }
      const cite = rest.match(/^\[(?:ID:)?(\d{1,3})\]/); // [1], or RAGFlow's [ID:1]
      if (cite && options.citation) {
        const node = options.citation(Number(cite[1]));
        if (node) {
          push(node);
          i += cite[0].length;
          continue;
        }
      }
    }
    if (ch === "<") {
      const auto = rest.match(/^<(https?:\/\/[^\s<>]+)>/);
      if (auto && safeUrl(auto[1])) {
        push(anchor(safeUrl(auto[1]), [document.createTextNode(auto[1])]));
        i += auto[0].length;
        continue;
      }
    }
    if (ch === "h" && !/\w/.test(text[i - 1] || "")) {
      const bare = rest.match(BARE_URL);
      if (bare) {
        const url = bare[0].replace(TRAILING_PUNCTUATION, "");
        const href = safeUrl(url);
        if (href) {
          push(anchor(href, [document.createTextNode(url)]));
          i += url.length;
          continue;
        }
      }
    }
    if (ch === "*" || ch === "_" || ch === "~") {
      const span = emphasisAt(text, i, options);
      if (span) {
        push(span.node);
        i = span.end;
        continue;
      }
    }
    buffer += ch;
    i += 1;
  }
  flush();
  return nodes;
}

/** `[label](url "title")` starting at `start` (a "["): {label, url, end} or null. */
function linkAt(text, start) {
  let depth = 0;
  let i = start;
  for (; i < text.length; i += 1) {
    if (text[i] === "\\") {
      i += 1;
    } else if (text[i] === "[") {
      depth += 1;
    } else if (text[i] === "]") {
      depth -= 1;
      if (depth === 0) break;
    }
  }
  if (depth !== 0 || text[i + 1] !== "(") return null;
  const target = text.slice(i + 2).match(/^\s*<?([^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)>?(?:\s+"[^"]*")?\s*\)/);
  if (!target) return null;
  return { label: text.slice(start + 1, i), url: target[1], end: i + 2 + target[0].length };
}

function anchor(href, children) {
  const link = el("a", ...children);
  link.href = href;
  link.target = "_blank";
  link.rel = "noopener noreferrer nofollow";
  return link;
}

function linkNode(link, options) {
  const href = safeUrl(link.url);
  const label = inline(link.label, { ...options, citation: null });
  return href ? anchor(href, label) : el("span", ...label);
}

function imageAsLink(link) {
  const label = `Image: ${link.label || "untitled"}`;
  const href = safeUrl(link.url);
  if (!href) return document.createTextNode(label);
  const node = anchor(href, [document.createTextNode(label)]);
  node.className = "md-image-link";
  return node;
}

/** **strong**, __strong__, *em*, _em_, ~~del~~ starting at `i`: {node, end} or null. */
function emphasisAt(text, i, options) {
  const ch = text[i];
  const double = text[i + 1] === ch;
  if (ch === "~" && !double) return null;
  const marker = double ? ch + ch : ch;
  const open = i + marker.length;
  if (open >= text.length || /\s/.test(text[open])) return null;
  const wordChar = /[\p{L}\p{N}]/u;
  if (ch === "_" && wordChar.test(text[i - 1] || "")) return null; // snake_case stays text
  let from = open + 1;
  while (from <= text.length) {
    const close = text.indexOf(marker, from);
    if (close === -1) return null;
    const before = text[close - 1];
    const after = text[close + marker.length] || "";
    const isDoubledSingle = !double && after === ch;
    const intraword = ch === "_" && wordChar.test(after);
    if (!/\s/.test(before) && !isDoubledSingle && !intraword && text[close - 1] !== "\\") {
      const tag = ch === "~" ? "del" : double ? "strong" : "em";
      return { node: el(tag, ...inline(text.slice(open, close), options)), end: close + marker.length };
    }
    from = close + (isDoubledSingle ? 2 : 1);
  }
  return null;
}
