// A procedure's key-value data on its page: the buckets (keys, bytes) and,
// for the bucket chosen, its keys and values a page at a time ("More keys"
// follows the server's cursor). Read through the admin API
// (`/procedures/NAME/kv`), so with this tab's admin token; read when asked
// ("Show key-value data", then "Reload"), not with the live refresh, so a
// page opened without the token makes no admin request. A value is shown as text when
// it is printable UTF-8, else as hex with a note; every key, bucket and value
// goes in as text (dom.js), never as markup.

import { h, replace, message, formatBytes } from "./dom.js";
import { api, ApiError } from "./api.js";

/** Keys per page (each with its value, up to 1 MiB); the server's page if it is shorter. */
const PAGE = 50;
/** Characters of a text value shown. */
const SHOWN_CHARS = 2000;
/** Bytes of a binary value shown as hex. */
const SHOWN_BYTES = 256;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** Control characters other than tab, newline and carriage return. */
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

function bytesOf(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The value's text if it is printable UTF-8, else null. */
function printable(bytes) {
  try {
    const s = utf8.decode(bytes);
    return CONTROL.test(s) ? null : s;
  } catch {
    return null;
  }
}

/** A key and its value (base64 from the server) as a row: the value as text, or as hex with a note. */
function entryRow(key, base64) {
  let bytes;
  try {
    bytes = bytesOf(base64);
  } catch {
    return h("tr", { "data-key": key }, h("td", {}, h("code", {}, key)), h("td", { class: "num" }, "–"), h("td", {}, message("error", "The server answered a value that is not base64.")));
  }
  return h("tr", { "data-key": key }, h("td", {}, h("code", {}, key)), h("td", { class: "num" }, formatBytes(bytes.length)), valueCell(bytes));
}

/** A value's cell. */
function valueCell(bytes) {
  const size = formatBytes(bytes.length);
  if (bytes.length === 0) return h("td", { class: "kv-value", "data-kind": "text" }, h("span", { class: "muted" }, "(empty)"));
  const text = printable(bytes);
  if (text !== null) {
    const cut = text.length > SHOWN_CHARS;
    return h(
      "td",
      { class: "kv-value", "data-kind": "text" },
      h("pre", {}, cut ? `${text.slice(0, SHOWN_CHARS)}…` : text),
      cut ? h("small", { class: "hint" }, `The first ${SHOWN_CHARS} characters of ${size}.`) : null,
    );
  }
  const shown = bytes.subarray(0, SHOWN_BYTES);
  const hex = [];
  for (let i = 0; i < shown.length; i += 16) {
    hex.push(Array.from(shown.subarray(i, i + 16), (b) => b.toString(16).padStart(2, "0")).join(" "));
  }
  const more = bytes.length > SHOWN_BYTES ? `; the first ${SHOWN_BYTES} bytes` : "";
  return h(
    "td",
    { class: "kv-value", "data-kind": "hex" },
    h("pre", {}, hex.join("\n")),
    h("small", { class: "hint" }, `${size}, not UTF-8 text: shown as hex${more}.`),
  );
}

/**
 * The "Key-value data" part of procedure `name`'s page: `el`, and `load()`,
 * which reads the buckets (again), as its button does. `describe` words an error.
 */
export function kvPanel(name, describe) {
  const bucketsBox = h("div");
  const keysBox = h("div", { class: "kv-keys" });
  const reload = h("button", { type: "button", class: "small", onclick: () => load() }, "Show key-value data");
  /** The bucket whose keys are shown, and a counter that retires older requests. */
  let open = null;
  let generation = 0;
  const limit = PAGE;

  async function load() {
    reload.disabled = true;
    reload.textContent = "Reload";
    try {
      const { buckets } = await api.kvBuckets(name);
      replace(bucketsBox, buckets.length ? bucketsTable(buckets) : h("p", { class: "muted" }, `${name} has no key-value data.`));
      if (open !== null && buckets.some((b) => b.bucket === open)) showBucket(open);
      else closeBucket();
    } catch (err) {
      replace(bucketsBox, message("error", `Cannot read the key-value data: ${describe(err)}`));
      closeBucket();
    } finally {
      reload.disabled = false;
    }
  }

  function closeBucket() {
    open = null;
    generation++;
    replace(keysBox);
  }

  function bucketsTable(buckets) {
    return h(
      "table",
      { class: "kv-buckets" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Bucket"), h("th", { scope: "col", class: "num" }, "Keys"), h("th", { scope: "col", class: "num" }, "Bytes"))),
      h(
        "tbody",
        {},
        buckets.map((b) =>
          h(
            "tr",
            { "data-bucket": b.bucket },
            h("td", {}, h("button", { type: "button", class: "link", title: "Show its keys", onclick: () => showBucket(b.bucket) }, h("code", {}, b.bucket))),
            h("td", { class: "num" }, b.keys),
            h("td", { class: "num", title: `${b.bytes} bytes of keys and values` }, formatBytes(b.bytes)),
          ),
        ),
      ),
    );
  }

  /** Shows `bucket`'s first page of keys; "More keys" appends the next. */
  function showBucket(bucket) {
    open = bucket;
    const mine = ++generation;
    const tbody = h("tbody");
    const table = h(
      "table",
      { class: "kv-entries", hidden: true },
      h("thead", {}, h("tr", {}, ["Key", "Size", "Value"].map((c) => h("th", { scope: "col", class: c === "Size" ? "num" : null }, c)))),
      tbody,
    );
    const note = h("p", { class: "muted", "aria-live": "polite" }, "loading…");
    const more = h("button", { type: "button", class: "small", hidden: true }, "More keys");
    let cursor = null;
    let shown = 0;

    async function next() {
      more.disabled = true;
      try {
        // The server caps `limit` at its page size (--kv-page-keys).
        const page = await api.kvPage(name, bucket, cursor, limit);
        if (mine !== generation) return;
        for (const { key, value } of page.entries) tbody.append(entryRow(key, value));
        shown += page.entries.length;
        cursor = page.cursor ?? null;
        table.hidden = shown === 0;
        more.hidden = cursor === null;
        replace(note, shown === 0 ? "No keys." : cursor !== null ? `The first ${shown} keys.` : shown === 1 ? "1 key." : `All ${shown} keys.`);
      } catch (err) {
        if (mine !== generation) return;
        replace(note, message("error", `Cannot read the keys: ${describe(err)}`));
      } finally {
        more.disabled = false;
      }
    }
    more.addEventListener("click", next);
    replace(keysBox, h("h3", {}, "Bucket ", h("code", {}, bucket)), table, h("div", { class: "actions" }, more, note));
    next();
  }

  const el = h(
    "div",
    { class: "kv" },
    h(
      "p",
      { class: "muted" },
      "What the procedure keeps with wasi:keyvalue, by bucket. It belongs to the name, deployed or not, and is read with the admin token; on the command line: ",
      h("code", {}, `wasmrpc kv list ${name}`),
      ". ",
      reload,
    ),
    bucketsBox,
    keysBox,
  );
  return { el, load };
}
