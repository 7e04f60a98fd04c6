/**
 * Server-sent events read from a fetch() Response body (EventSource cannot POST or send headers).
 *
 * `readEvents(response)` yields `{id, data}` for each event: `id` is the event's number (for
 * `Last-Event-ID`) or null, `data` the parsed JSON. Comments (`: ping`) are skipped. Leaving the
 * loop early cancels the body, which closes the connection.
 */

export async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let finished = false;
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) {
        finished = true;
        break;
      }
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end = buffer.indexOf("\n\n");
      while (end !== -1) {
        const event = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event) yield event;
        end = buffer.indexOf("\n\n");
      }
    }
  } finally {
    if (!finished) reader.cancel().catch(() => {});
  }
}

function parseEvent(block) {
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  let parsed;
  try {
    parsed = JSON.parse(data.join("\n"));
  } catch {
    return null;
  }
  const number = Number.parseInt(id ?? "", 10);
  return { id: Number.isFinite(number) ? number : null, data: parsed };
}
