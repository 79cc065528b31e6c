// Live updates: the API's Server-Sent Events stream read with fetch (EventSource cannot send the
// Authorization header, and a token never goes in a URL), parsed here, reopened with backoff.

const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const LIVED_MS = 20000; // a stream that stayed open this long starts the backoff again from the first step
const READY_WAIT_MS = 5000; // how long `ready` waits for the first answer at most

// Feed text to `parser.push(text)`; it calls `dispatch({type, data, id})` for every complete event.
// Lines end with CRLF, LF or CR; a chunk that ends with CR ends its line, and an LF that starts the
// next chunk is then the rest of that CRLF.
export function sseParser(dispatch) {
  let buffer = "";
  let type = "";
  let data = [];
  let id = null;
  let afterCR = false;
  return {
    push(chunk) {
      const text = afterCR && chunk.startsWith("\n") ? chunk.slice(1) : chunk;
      afterCR = chunk.endsWith("\r");
      buffer += text;
      const lines = buffer.split(/\r\n|\n|\r/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (data.length) dispatch({ type: type || "message", data: data.join("\n"), id });
          type = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: the keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") type = value;
        else if (field === "data") data.push(value);
        else if (field === "id") id = value;
      }
    },
  };
}

// Open `url()` with `headers()` and keep it open: every event goes to `onEvent`; when the stream ends or
// cannot be opened it is reopened after 1 s, 2 s, 4 s … (at most 30 s, or the server's Retry-After).
// A reopened stream sends Last-Event-ID, so the server starts it with `resync` (re-read, nothing is
// replayed); before any event had an id, the client makes that `resync` itself. 401/403/404 are final:
// `onRefused(status)`. `ready` settles once the first attempt is answered (or after 5 s): a page opens
// its stream before it reads its list, so that nothing falls between the two.
export function openStream({ url, headers, onEvent, onRefused }) {
  const controller = new AbortController();
  let lastEventId = null;
  let failures = 0;
  let attempts = 0;
  let timer = null;
  let settle;
  const ready = new Promise((resolve) => {
    settle = resolve;
    setTimeout(resolve, READY_WAIT_MS);
  });

  async function connect() {
    const reopened = attempts > 0;
    attempts += 1;
    const sent = { Accept: "text/event-stream", ...headers() };
    if (reopened && lastEventId !== null) sent["Last-Event-ID"] = lastEventId;
    const opened = Date.now();
    let retryAfter = 0;
    try {
      const response = await fetch(url(), { headers: sent, signal: controller.signal, cache: "no-store" });
      settle();
      if (response.ok) {
        if (reopened && lastEventId === null) onEvent({ type: "resync", data: "{}", id: null });
        const parser = sseParser((event) => {
          if (event.id !== null) lastEventId = event.id;
          onEvent(event);
        });
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(value);
        }
      } else if ([401, 403, 404].includes(response.status)) {
        onRefused(response.status);
        return;
      } else {
        retryAfter = Number(response.headers.get("Retry-After")) || 0;
      }
    } catch {
      settle(); // unreachable, or cut off: tried again below
    }
    if (controller.signal.aborted) return;
    if (Date.now() - opened > LIVED_MS) failures = 0;
    const delay = Math.max(retryAfter * 1000, Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** failures));
    failures += 1;
    timer = setTimeout(connect, delay);
  }

  connect();
  return {
    ready,
    close() {
      controller.abort();
      clearTimeout(timer);
    },
  };
}
