// The dashboard's entry point: the hash router (`#/` the procedures,
// `#/p/NAME` one procedure, with its key-value data from kv.js), the live
// refresh (figures every 2 s while the tab is visible; the procedure list as
// the server tells its changes, live.js, or polled while it cannot), and the
// two views. Talks only to this server's JSON API.

import { h, replace, text, message, formatBytes, formatSeconds, timeAgo, localTime, confirmDialog } from "./dom.js";
import { api, adminToken, ApiError, quantile, ERROR_CODES } from "./api.js";
import { paramsTable, tryIt, typeLabel } from "./form.js";
import { kvPanel } from "./kv.js";
import * as live from "./live.js";

/** How often the page asks the server for fresh figures. */
const REFRESH_MS = 2000;
/** What the server accepts as a procedure name. */
const NAME = /^[a-z][a-z0-9_-]{0,62}$/;

const main = document.getElementById("main");
const status = document.getElementById("status");
let view = null;
let timer = null;
/** A message to show on the next view (after a remove, which leaves the page). */
let flash = null;

const describe = (err) => (err instanceof ApiError ? err.describe() : String(err?.message ?? err));
const procedureHref = (name) => `#/p/${encodeURIComponent(name)}`;

// --- live refresh -----------------------------------------------------------

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(tick, ms);
}

async function tick() {
  const current = view;
  if (document.hidden) return schedule(REFRESH_MS);
  try {
    await current.refresh();
    setStatus("live", `updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    setStatus(err instanceof ApiError && err.status !== 0 ? "failing" : "down", describe(err));
  }
  if (current === view) schedule(REFRESH_MS);
}

const STATES = { live: "live", down: "server not answering", failing: "refresh failed" };

/** The connection indicator; its text changes only when the state does (the reason is its title). */
function setStatus(state, detail) {
  status.title = detail;
  if (status.dataset.state === state) return;
  status.dataset.state = state;
  status.textContent = STATES[state];
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) schedule(0);
});

// --- routing ------------------------------------------------------------------

function route() {
  const match = /^#\/p\/([^/]+)$/.exec(location.hash);
  let name = null;
  try {
    name = match ? decodeURIComponent(match[1]) : null;
  } catch {
    // A malformed address: the list.
  }
  view = name ? procedureView(name) : listView();
  replace(main, view.el);
  const heading = main.querySelector("h1");
  if (heading && document.activeElement !== document.getElementById("token")) heading.focus({ preventScroll: true });
  schedule(0);
}

// --- the procedures ---------------------------------------------------------

/** Shows the errors in `el`: their total, and how many of each code below it. */
function showErrors(el, errors) {
  const counts = [...(errors ?? [])].filter(([, n]) => n > 0);
  const total = counts.reduce((sum, [, n]) => sum + n, 0);
  const key = JSON.stringify(counts);
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  const byCode = counts.map(([code, n]) => `code ${code} ×${n}`).join(", ");
  replace(el, String(total), byCode ? h("small", { class: "codes" }, byCode) : null);
  el.title = counts.map(([code, n]) => `code ${code}${ERROR_CODES.has(code) ? ` (${ERROR_CODES.get(code)})` : ""}: ${n}`).join("\n");
}


function latency(stats, q) {
  const estimate = stats ? quantile(q, stats.buckets) : null;
  if (!estimate) return "–";
  return `${estimate.above ? "> " : ""}${formatSeconds(estimate.seconds)}`;
}

function listView() {
  const columns = ["Procedure", "Version", "Methods", "Size", "Deployed", "Calls", "Errors", "p50", "p99"];
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "procedures" },
    h("caption", {}, "Serving now, as the server deploys; calls, errors and latency since the server started, every 2 s."),
    h("thead", {}, h("tr", {}, columns.map((c, i) => h("th", { scope: "col", class: i >= 5 ? "num" : null }, c)))),
    tbody,
  );
  const emptyNote = h(
    "p",
    { class: "muted", hidden: true },
    "No procedures are deployed yet. Deploy a .wasm component below, or with ",
    h("code", {}, `curl -X PUT --data-binary @f.wasm ${location.origin}/procedures/NAME`),
    ".",
  );
  const note = h("div", { "aria-live": "polite" }, flash);
  flash = null;
  const rows = new Map();

  function row(name) {
    const cells = Object.fromEntries(columns.map((c, i) => [c, h("td", { class: i >= 5 ? "num" : null })]));
    replace(cells.Procedure, h("a", { href: procedureHref(name) }, name));
    const tr = h("tr", { "data-name": name }, Object.values(cells));
    return { tr, cells };
  }

  async function refresh() {
    const [list, metrics] = await Promise.all([live.list() ?? api.list(), api.metrics()]);
    const seen = new Set();
    for (const meta of list) {
      seen.add(meta.name);
      let r = rows.get(meta.name);
      if (!r) {
        r = row(meta.name);
        rows.set(meta.name, r);
      }
      tbody.append(r.tr); // keeps the server's order (by name); moves only what moved
      const stats = metrics.get(meta.name);
      const c = r.cells;
      text(c.Version, `v${meta.version}`);
      text(c.Methods, meta.methods.length);
      c.Methods.title = meta.methods.join("\n");
      text(c.Size, formatBytes(meta.size));
      text(c.Deployed, timeAgo(meta.deployed_at));
      c.Deployed.title = localTime(meta.deployed_at);
      text(c.Calls, stats ? stats.calls : 0);
      showErrors(c.Errors, stats?.errors);
      text(c.p50, latency(stats, 0.5));
      text(c.p99, latency(stats, 0.99));
    }
    for (const [name, r] of rows) {
      if (!seen.has(name)) {
        r.tr.remove();
        rows.delete(name);
      }
    }
    table.hidden = list.length === 0;
    emptyNote.hidden = list.length !== 0;
  }

  const el = h("div", { class: "view" }, h("h1", { tabindex: "-1" }, "Procedures"), note, table, emptyNote, deployPanel(() => schedule(0)));
  return { el, refresh };
}

/** The deploy form: a .wasm file chosen or dropped, and the name to deploy it as. */
function deployPanel(deployed) {
  let file = null;
  const fileInput = h("input", { type: "file", id: "deploy-file", accept: ".wasm,application/wasm" });
  const chosen = h("span", { class: "muted" }, "or drop it here");
  const nameInput = h("input", { id: "deploy-name", type: "text", autocomplete: "off", spellcheck: "false", pattern: NAME.source.slice(1, -1), "aria-describedby": "deploy-name-hint" });
  const button = h("button", { type: "submit", class: "primary" }, "Deploy");
  const result = h("div", { "aria-live": "polite" });
  let nameTyped = false;

  function choose(f) {
    file = f;
    text(chosen, `${f.name}, ${formatBytes(f.size)}`);
    if (!nameTyped) nameInput.value = f.name.replace(/\.wasm$/i, "").toLowerCase().replace(/[^a-z0-9_-]/g, "_");
  }
  nameInput.addEventListener("input", () => (nameTyped = nameInput.value !== ""));
  fileInput.addEventListener("change", () => fileInput.files[0] && choose(fileInput.files[0]));
  const drop = h("div", { class: "drop" }, h("label", { for: "deploy-file" }, "Component (.wasm)"), fileInput, chosen);
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer?.files?.[0];
    if (f) choose(f);
  });

  const form = h(
    "form",
    { class: "deploy", novalidate: true },
    h("h2", {}, "Deploy"),
    drop,
    h(
      "div",
      { class: "field" },
      h("label", { for: "deploy-name" }, "Name"),
      nameInput,
      h("small", { id: "deploy-name-hint", class: "hint" }, "Lowercase letters, digits, _ and -, a letter first. Methods are called as NAME.method; a deployed name gets a new version."),
    ),
    h("div", { class: "actions" }, button),
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = nameInput.value.trim();
    if (!file) return replace(result, message("error", "Choose a .wasm file first."));
    if (!NAME.test(name) || name === "rpc" || name === "wasmrpc") {
      return replace(result, message("error", `"${name}" is not a procedure name: use 1 to 63 lowercase letters, digits, _ or -, a letter first (not "rpc" or "wasmrpc").`));
    }
    button.disabled = true;
    replace(result, message("info", `Deploying ${name}: the server compiles and checks the component first…`));
    try {
      const meta = await api.deploy(name, file);
      replace(result, message("ok", `Deployed ${meta.name} version ${meta.version}: `, h("a", { href: procedureHref(meta.name) }, `open ${meta.name}`), "."));
      deployed(meta);
    } catch (err) {
      replace(result, message("error", `Deploy failed: ${describe(err)}`));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// Files dropped outside the drop zone must not make the browser leave the page.
for (const type of ["dragover", "drop"]) {
  window.addEventListener(type, (e) => {
    if (e.dataTransfer?.types?.includes("Files")) e.preventDefault();
  });
}

// --- one procedure ------------------------------------------------------------

function procedureView(name) {
  const meta = h("p", { class: "meta" }, "loading…");
  const figure = (label) => {
    const dd = h("dd", {}, "–");
    return { dd, el: h("div", { class: "figure" }, h("dt", {}, label), dd) };
  };
  const figures = { calls: figure("Calls"), errors: figure("Errors"), p50: figure("p50 latency"), p99: figure("p99 latency") };
  const notice = h("div", { "aria-live": "polite" });
  const versionsBox = h("div", {}, h("p", { class: "muted" }, "loading…"));
  const methodsBox = h("div", {}, h("p", { class: "muted" }, "loading…"));
  const removeButton = h("button", { type: "button", class: "danger" }, `Remove ${name}…`);
  const kv = kvPanel(name, describe);
  let versionsShown = null;
  let methodsOf = null;

  removeButton.addEventListener("click", async () => {
    const ok = await confirmDialog(`Remove ${name}?`, `Its methods stop answering at once (calls already running finish). The name can be deployed again later.`, "Remove");
    if (!ok) return;
    try {
      await api.remove(name);
      flash = message("ok", `Removed ${name}.`);
      location.hash = "#/";
    } catch (err) {
      replace(notice, message("error", `Remove failed: ${describe(err)}`));
    }
  });

  async function activate(version, serving) {
    const verb = serving === undefined ? "Bring back" : version < serving ? "Roll back" : "Switch";
    const running = serving === undefined ? "" : `; calls already running finish on version ${serving}`;
    const ok = await confirmDialog(`${verb} ${name} to version ${version}?`, `Version ${version} serves again from the next call${running}.`, `Serve version ${version}`);
    if (!ok) return;
    try {
      const now = await api.activate(name, version);
      replace(notice, message("ok", `Version ${now.version} of ${name} is serving.`));
    } catch (err) {
      replace(notice, message("error", `${verb} failed: ${describe(err)}`));
    }
    // The button goes with the table's next rendering: keep the keyboard focus near.
    const said = notice.firstElementChild;
    said.tabIndex = -1;
    said.focus();
    schedule(0);
  }

  /** A version's instance reuse in words (`reuse` of its metadata). */
  function reuseText(reuse) {
    if (!reuse || !(reuse.calls > 1)) return "fresh per call";
    const memory = reuse.memory_mib ? `, dropped above ${reuse.memory_mib} MiB` : "";
    return `reused for up to ${reuse.calls} calls, idle ${reuse.idle_ms} ms${memory}`;
  }

  function renderVersions(versions) {
    const serving = versions.find((v) => v.serving)?.version;
    return h(
      "table",
      { class: "versions" },
      h("thead", {}, h("tr", {}, ["Version", "Deployed", "Size", "SHA-256", "Methods", "Outbound", "Reuse", ""].map((c) => h("th", { scope: "col" }, c)))),
      h(
        "tbody",
        {},
        versions.map((v) =>
          h(
            "tr",
            { "data-version": String(v.version), class: v.serving ? "serving" : null },
            h("td", {}, `v${v.version}`),
            h("td", { title: v.deployed_at }, localTime(v.deployed_at)),
            h("td", {}, formatBytes(v.size)),
            h("td", { title: v.sha256 }, h("code", {}, String(v.sha256).slice(0, 12))),
            h("td", { title: (v.methods ?? []).join("\n") }, (v.methods ?? []).length),
            h("td", { title: (v.allowed_outbound ?? []).join("\n") || "none" }, (v.allowed_outbound ?? []).length),
            h("td", { title: reuseText(v.reuse) }, v.reuse?.calls > 1 ? `${v.reuse.calls} calls` : "fresh"),
            h(
              "td",
              {},
              v.serving
                ? h("span", { class: "badge" }, "serving")
                : h(
                    "button",
                    { type: "button", class: "small", onclick: () => activate(v.version, serving) },
                    serving !== undefined && v.version < serving ? `Roll back to v${v.version}` : `Activate v${v.version}`,
                  ),
            ),
          ),
        ),
      ),
    );
  }

  function renderMethods(methods) {
    if (!methods.length) return h("p", { class: "muted" }, "This procedure has no methods.");
    return methods.map((m) => {
      const doc = m.description ?? m.summary ?? "";
      const result = m.result ?? {};
      return h(
        "section",
        { class: "method", "data-method": m.name },
        h("h3", {}, h("code", {}, m.name)),
        doc ? h("p", { class: "doc" }, doc) : null,
        paramsTable(Array.isArray(m.params) ? m.params : []),
        h(
          "p",
          { class: "returns" },
          "Returns ",
          h("code", {}, typeLabel(result.schema ?? {})),
          result.schema?.description ? h("span", { class: "doc" }, `: ${result.schema.description}`) : null,
        ),
        h("details", { class: "try-it" }, h("summary", {}, "Try it"), tryIt(m)),
      );
    });
  }

  async function refresh() {
    let current = null;
    try {
      current = await api.get(name);
    } catch (err) {
      // No answer or a server error: the connection indicator says so. 404 (or 400, a
      // name no procedure can have): the page says so, and shows the versions still kept.
      if (!(err instanceof ApiError) || err.status === 0 || err.status >= 500) throw err;
      if (meta.dataset.key !== "gone") {
        meta.dataset.key = "gone";
        const why = err.status === 404 ? `${name} is not deployed (any more)` : describe(err);
        replace(meta, message("error", `${why}: `, h("a", { href: "#/" }, "see every procedure"), "."));
      }
      removeButton.hidden = true;
      methodsOf = null;
      replace(methodsBox, h("p", { class: "muted" }, "None: nothing serves."));
    }
    const [versions, metrics] = await Promise.all([api.versions(name).catch((err) => err), api.metrics()]);
    const shown = versions instanceof Error ? `error:${describe(versions)}` : JSON.stringify(versions);
    if (shown !== versionsShown) {
      versionsShown = shown;
      replace(versionsBox, versions instanceof Error ? message("info", `No version history: ${describe(versions)}`) : renderVersions(versions));
    }
    if (!current) return;
    removeButton.hidden = false;
    const outbound = current.allowed_outbound ?? [];
    const metaKey = `${current.version} ${current.sha256} ${timeAgo(current.deployed_at)} ${outbound.join(" ")} ${reuseText(current.reuse)}`;
    if (meta.dataset.key !== metaKey) {
      meta.dataset.key = metaKey;
      replace(
        meta,
        h("span", { class: "badge" }, `v${current.version} serving`),
        ` ${formatBytes(current.size)} · deployed `,
        h("time", { datetime: current.deployed_at, title: localTime(current.deployed_at) }, timeAgo(current.deployed_at)),
        " · sha256 ",
        h("code", { title: current.sha256 }, String(current.sha256).slice(0, 12)),
        " · outbound HTTP: ",
        outbound.length
          ? h("span", { class: "outbound" }, outbound.map((url, i) => [i ? ", " : "", h("code", {}, url)]))
          : h("span", { class: "muted", title: "granted at deploy: ?allow-outbound=URL" }, "none"),
        " · instances: ",
        h("span", { class: "reuse", title: "chosen at deploy: ?reuse=N" }, reuseText(current.reuse)),
      );
    }
    const stats = metrics.get(name);
    text(figures.calls.dd, stats ? stats.calls : 0);
    showErrors(figures.errors.dd, stats?.errors);
    text(figures.p50.dd, latency(stats, 0.5));
    text(figures.p99.dd, latency(stats, 0.99));
    // Methods change only with the serving code: rebuilt then, so a form being filled in stays.
    if (methodsOf !== current.sha256) {
      const methods = (await api.discover()).filter((m) => typeof m.name === "string" && m.name.startsWith(`${name}.`));
      methodsOf = current.sha256;
      replace(methodsBox, renderMethods(methods));
    }
  }

  const el = h(
    "div",
    { class: "view" },
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← Procedures")),
    h("h1", { tabindex: "-1" }, name),
    meta,
    h("dl", { class: "figures" }, Object.values(figures).map((f) => f.el)),
    notice,
    h("h2", {}, "Versions"),
    versionsBox,
    h("h2", {}, "Methods"),
    methodsBox,
    h("h2", {}, "Key-value data"),
    kv.el,
    h("h2", {}, "Remove"),
    h("p", {}, removeButton),
  );
  return { el, refresh };
}

// --- start --------------------------------------------------------------------

const tokenInput = document.getElementById("token");
tokenInput.value = adminToken.get();
tokenInput.addEventListener("input", () => adminToken.set(tokenInput.value));
window.addEventListener("hashchange", route);
// A change the server tells (or the socket opening or closing) refreshes the view at once.
live.onChange(() => schedule(0));
live.connect();
route();
