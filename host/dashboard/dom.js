// Building the page. Every text that may come from a deployed module (names,
// docs, schemas, answers) goes in through `h`'s children or `text`, which make
// text nodes: nothing here parses markup, so `<script>` in a doc comment is
// shown as the characters it is.

/**
 * A new element. `attrs`: `class`, `on<event>` listeners, booleans (set when
 * true), anything else as an attribute. Children: nodes, or strings and numbers
 * (inserted as text); arrays are flattened, null and false skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Appends `children` as `h` does. */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replaces everything in `el` with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Sets `el`'s text unless it is already that (so a live refresh does not churn the page). */
export function text(el, value) {
  const s = String(value);
  if (el.textContent !== s) el.textContent = s;
}

/** A message box: `kind` is "ok", "error" or "info". */
export function message(kind, ...children) {
  return h("p", { class: `msg ${kind}`, role: kind === "error" ? "alert" : "status" }, children);
}

/** Bytes as B, KiB or MiB. */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A duration in seconds as µs, ms or s. */
export function formatSeconds(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "–";
  if (s < 0.001) return `${Math.round(s * 1e6)} µs`;
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`;
  return `${s.toFixed(2)} s`;
}

/** An RFC 3339 time as "3 min ago"; the exact local time is in `title`. */
export function timeAgo(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return String(iso ?? "–");
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(t).toLocaleDateString();
}

/** The local date and time of an RFC 3339 time. */
export function localTime(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? String(iso ?? "") : new Date(t).toLocaleString();
}

/** Asks with the page's confirm dialog; resolves true when confirmed. */
export function confirmDialog(title, body, ok) {
  const dialog = document.getElementById("confirm");
  text(document.getElementById("confirm-title"), title);
  text(document.getElementById("confirm-text"), body);
  text(document.getElementById("confirm-ok"), ok);
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}
