// "Try it": a form generated from a method's parameter schemas (JSON Schema as
// the SDK and `describe` write them), the call it sends, the answer, and the
// same call as a curl command. What a schema does not say enough about gets a
// raw-JSON box; the whole params can be edited as JSON by choice.

import { h, append, replace, message } from "./dom.js";
import { call, ApiError, ERROR_CODES } from "./api.js";

/** A field's value that is left out (an optional parameter or property). */
const ABSENT = Symbol("absent");

/** Why the form's value cannot be built; the message names the field. */
class FieldError extends Error {}

let nextId = 0;
const freshId = (prefix) => `${prefix}-${++nextId}`;

/** Splits a schema that also allows null (`Option<T>`) into `{ schema, nullable }`. */
function unwrapNullable(schema) {
  if (!schema || typeof schema !== "object") return { schema: {}, nullable: false };
  if (Array.isArray(schema.type) && schema.type.includes("null")) {
    const types = schema.type.filter((t) => t !== "null");
    if (types.length === 1) return { schema: { ...schema, type: types[0] }, nullable: true };
  }
  for (const key of ["anyOf", "oneOf"]) {
    const options = schema[key];
    if (!Array.isArray(options) || options.length !== 2) continue;
    const rest = options.filter((o) => !(o && o.type === "null"));
    if (rest.length === 1 && typeof rest[0] === "object") {
      const inner = { ...rest[0] };
      if (inner.description === undefined && schema.description !== undefined) inner.description = schema.description;
      return { schema: inner, nullable: true };
    }
  }
  return { schema, nullable: false };
}

/** The values an enum-like schema allows (`enum`, or `oneOf`/`anyOf` of `const`s), or null. */
function choices(schema) {
  if (Array.isArray(schema.enum)) return schema.enum.map((value) => ({ value }));
  const options = schema.oneOf ?? schema.anyOf;
  const isConst = (o) => o && typeof o === "object" && ("const" in o || (Array.isArray(o.enum) && o.enum.length === 1));
  if (Array.isArray(options) && options.length > 0 && options.every(isConst)) {
    return options.map((o) => ({ value: "const" in o ? o.const : o.enum[0], description: o.description }));
  }
  return null;
}

function typeOf(schema) {
  if (typeof schema.type === "string") return schema.type;
  if (schema.properties) return "object";
  if (schema.items) return "array";
  return undefined;
}

/** A short, readable type: `integer (int64)`, `Item[]`, `"a" | "b" | null`, `Order (object)`. */
export function typeLabel(rawSchema) {
  const { schema, nullable } = unwrapNullable(rawSchema);
  const orNull = nullable ? " | null" : "";
  const values = choices(schema);
  if (values) return values.map((c) => JSON.stringify(c.value)).join(" | ") + orNull;
  if (typeof schema.$ref === "string") return schema.$ref.split("/").pop() + orNull;
  if (Array.isArray(schema.type)) return schema.type.join(" | ");
  const type = typeOf(schema);
  const detail = schema.format ?? (schema.title && /^(u?int\d*|double|float|uint|size)$/.test(schema.title) ? schema.title : null);
  switch (type) {
    case "integer":
    case "number": {
      const bounds = [
        schema.minimum !== undefined ? `≥ ${schema.minimum}` : null,
        schema.maximum !== undefined ? `≤ ${schema.maximum}` : null,
      ].filter(Boolean);
      const extra = [detail, ...bounds].filter(Boolean).join(", ");
      return `${type}${extra ? ` (${extra})` : ""}${orNull}`;
    }
    case "string":
    case "boolean":
      return `${type}${detail ? ` (${detail})` : ""}${orNull}`;
    case "array": {
      const item = schema.items && typeof schema.items === "object" ? typeLabel(schema.items) : "any";
      return `${item.includes(" ") ? `(${item})` : item}[]${orNull}`;
    }
    case "object":
      return `${schema.title ? `${schema.title} (object)` : "object"}${orNull}`;
    case "null":
      return "null";
    default: {
      const options = schema.oneOf ?? schema.anyOf;
      if (Array.isArray(options)) return `one of ${options.map(typeLabel).join(", ")}${orNull}`;
      return `${schema.title ? `${schema.title}: ` : ""}any JSON${orNull}`;
    }
  }
}

/** The table of a method's parameters: name, type, required, and description when any has one. */
export function paramsTable(params) {
  if (!params.length) return h("p", { class: "muted" }, "No parameters.");
  const docOf = (p) => p.description ?? p.schema?.description ?? "";
  const withDocs = params.some((p) => docOf(p) !== "");
  const columns = ["Parameter", "Type", "Required", withDocs ? "Description" : null].filter(Boolean);
  return h(
    "table",
    { class: "params" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      {},
      params.map((p) =>
        h(
          "tr",
          {},
          h("td", {}, h("code", {}, p.name)),
          h("td", {}, h("code", {}, typeLabel(p.schema ?? {}))),
          h("td", {}, p.required ? "required" : "optional"),
          withDocs ? h("td", { class: "doc" }, docOf(p)) : null,
        ),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------
// Fields: each is `{ el, read() }`; `read` answers the JSON value, ABSENT, or
// throws a FieldError naming the field by its path (`order.items[0].sku`).

/**
 * The field for a value of `schema`, labelled `name`, at `path` (for error
 * messages); `required` says whether it may be left out.
 */
function field(rawSchema, name, path, required, description) {
  const { schema, nullable } = unwrapNullable(rawSchema ?? {});
  const doc = description ?? schema.description;
  const values = choices(schema);
  const type = typeOf(schema);
  const at = { name, path, required, nullable, doc, schema: rawSchema };
  if (values) return selectField(at, values);
  if (type === "boolean") {
    if (required && !nullable) return checkboxField(at);
    return selectField(at, [{ value: true }, { value: false }]);
  }
  if (type === "integer" || type === "number") return numberField(at, type);
  if (type === "string") return textField(at);
  if (type === "array" && schema.items && typeof schema.items === "object" && !Array.isArray(schema.items)) {
    return arrayField(at, schema.items, Number(schema.minItems) || 0);
  }
  if (type === "object" && schema.properties && typeof schema.properties === "object") {
    return objectField(at, schema);
  }
  return jsonField(at);
}

/** The name and type above an input; the input's id is `id`. */
function labelFor(id, { name, required, schema }) {
  return h(
    "label",
    { for: id },
    h("span", { class: "fname" }, name),
    " ",
    h("code", { class: "ftype" }, typeLabel(schema)),
    required ? h("span", { class: "req", title: "required" }, " required") : null,
  );
}
const hint = (doc) => (doc ? h("small", { class: "hint doc" }, doc) : null);

/** What an input left empty means: left out, null, or an error. */
function empty({ path, required, nullable }, whenRequired) {
  if (!required) return ABSENT;
  if (nullable) return null;
  if (whenRequired !== undefined) return whenRequired;
  throw new FieldError(`\`${path}\` is required`);
}

function numberField(at, type) {
  const { path } = at;
  const id = freshId("f");
  const input = h("input", { id, type: "number", step: type === "integer" ? "1" : "any", name: path, inputmode: "decimal" });
  return {
    el: h("div", { class: "field" }, labelFor(id, at), input, hint(at.doc)),
    read() {
      const raw = input.value.trim();
      if (raw === "") {
        if (input.validity.badInput) throw new FieldError(`\`${path}\` is not a number`);
        return empty(at);
      }
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new FieldError(`\`${path}\` is not a number: ${raw}`);
      if (type === "integer" && !/^-?\d+$/.test(raw)) throw new FieldError(`\`${path}\` must be a whole number, not ${raw}`);
      // Integers past 2^53 keep their digits (an i64 parameter takes them all).
      if (type === "integer" && !Number.isSafeInteger(n) && typeof JSON.rawJSON === "function") return JSON.rawJSON(raw);
      return n;
    },
  };
}

function textField(at) {
  const id = freshId("f");
  const input = h("input", { id, type: "text", name: at.path, spellcheck: "false", autocomplete: "off" });
  return {
    el: h("div", { class: "field" }, labelFor(id, at), input, hint(at.doc)),
    read: () => (input.value === "" ? empty(at, "") : input.value),
  };
}

function checkboxField(at) {
  const id = freshId("f");
  const input = h("input", { id, type: "checkbox", name: at.path });
  return {
    el: h("div", { class: "field check" }, input, labelFor(id, at), hint(at.doc)),
    read: () => input.checked,
  };
}

function selectField(at, values) {
  const id = freshId("f");
  const options = [];
  if (!at.required) options.push({ label: "(leave out)", value: ABSENT });
  if (at.nullable) options.push({ label: "null", value: null });
  for (const c of values) {
    const shown = typeof c.value === "string" ? c.value : JSON.stringify(c.value);
    options.push({ label: c.description ? `${shown} — ${c.description}` : shown, value: c.value });
  }
  const select = h("select", { id, name: at.path }, options.map((o, i) => h("option", { value: String(i) }, o.label)));
  return {
    el: h("div", { class: "field" }, labelFor(id, at), select, hint(at.doc)),
    read: () => options[Number(select.value)].value,
  };
}

function jsonField(at) {
  const { path } = at;
  const id = freshId("f");
  const area = h("textarea", { id, name: path, rows: "3", spellcheck: "false", placeholder: "any JSON value" });
  return {
    el: h("div", { class: "field" }, labelFor(id, at), area, hint(at.doc)),
    read() {
      const raw = area.value.trim();
      if (raw === "") return empty({ ...at, nullable: false });
      try {
        return JSON.rawJSON && /^-?\d+$/.test(raw) ? JSON.rawJSON(raw) : JSON.parse(raw);
      } catch (err) {
        throw new FieldError(`\`${path}\` is not valid JSON: ${err.message}`);
      }
    },
  };
}

/**
 * A fieldset around `inner`; an optional (or nullable) one has an "include"
 * box in its legend, and its value is left out (or null) while it is off.
 */
function groupField({ name, path, required, nullable, doc, schema }, inner, read) {
  const set = h("fieldset", { class: "group" });
  const legend = h("legend", {}, h("span", { class: "fname" }, name), " ", h("code", { class: "ftype" }, typeLabel(schema)));
  let include = null;
  if (!required || nullable) {
    include = h("input", { type: "checkbox", checked: required, "aria-label": `include ${path}` });
    const body = h("div", { class: "group-body" }, inner);
    const sync = () => {
      body.hidden = !include.checked;
      for (const el of body.querySelectorAll("input, select, textarea, button")) el.disabled = !include.checked;
    };
    include.addEventListener("change", sync);
    legend.prepend(include, " ");
    append(set, [legend, hint(doc), body]);
    sync();
  } else {
    legend.append(h("span", { class: "req", title: "required" }, " required"));
    append(set, [legend, hint(doc), inner]);
  }
  return {
    el: set,
    read: () => (include && !include.checked ? (required ? null : ABSENT) : read()),
  };
}

function objectField(at, schema) {
  const requiredNames = new Set(Array.isArray(schema.required) ? schema.required : []);
  // Required properties first, each group in the schema's order.
  const names = Object.keys(schema.properties);
  names.sort((a, b) => Number(requiredNames.has(b)) - Number(requiredNames.has(a)));
  const fields = names.map((name) => ({
    name,
    field: field(schema.properties[name], name, `${at.path}.${name}`, requiredNames.has(name)),
  }));
  const read = () => {
    const value = {};
    for (const { name, field: f } of fields) {
      const v = f.read();
      if (v !== ABSENT) value[name] = v;
    }
    return value;
  };
  return groupField(at, fields.map((f) => f.field.el), read);
}

function arrayField(at, itemSchema, minItems) {
  const list = h("ol", { class: "items" });
  const items = [];
  const add = () => {
    const item = { field: field(itemSchema, "item", `${at.path}[]`, true) };
    const remove = h("button", { type: "button", class: "small", "aria-label": `remove this item of ${at.path}` }, "Remove");
    item.li = h("li", {}, item.field.el, remove);
    remove.addEventListener("click", () => {
      items.splice(items.indexOf(item), 1);
      item.li.remove();
      addButton.focus();
    });
    items.push(item);
    list.append(item.li);
  };
  const addButton = h("button", { type: "button", class: "small", onclick: () => add() }, "Add item");
  for (let i = 0; i < Math.min(minItems, 20); i++) add();
  const read = () =>
    items.map((item, i) => {
      try {
        const v = item.field.read();
        return v === ABSENT ? null : v;
      } catch (err) {
        // Name the item by where it is now.
        if (err instanceof FieldError) throw new FieldError(err.message.replace(`${at.path}[]`, `${at.path}[${i}]`));
        throw err;
      }
    });
  return groupField(at, [list, addButton], read);
}

// ---------------------------------------------------------------------------

/** Quotes `s` for a POSIX shell. */
function shellQuote(s) {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Parses JSON keeping integers past 2^53 exact (where the browser can). */
function parseExact(text) {
  if (typeof JSON.rawJSON !== "function") return JSON.parse(text);
  return JSON.parse(text, (_key, value, context) =>
    typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value) && context?.source
      ? JSON.rawJSON(context.source)
      : value,
  );
}

let nextRequestId = 1;

/** The "try it" form of `method` (an OpenRPC method object). */
export function tryIt(method) {
  const params = Array.isArray(method.params) ? method.params : [];
  const byPosition = method.paramStructure === "by-position";
  const fields = params.map((p) => field(p.schema ?? {}, p.name, p.name, Boolean(p.required), p.description));
  const formBody = h("div", { class: "form-fields" }, fields.length ? fields.map((f) => f.el) : h("p", { class: "muted" }, "No parameters."));
  const rawId = freshId("raw");
  const raw = h("textarea", { id: rawId, class: "raw", rows: "6", spellcheck: "false", name: "params" });
  const rawBox = h(
    "div",
    { class: "field", hidden: true },
    h("label", { for: rawId }, "Params as JSON ", h("small", { class: "hint" }, byPosition ? "(an array, by position)" : "(an object by name, or an array by position; empty for none)")),
    raw,
  );
  const asJson = h("input", { type: "checkbox", class: "as-json" });
  const toggle = h("label", { class: "toggle" }, asJson, " Edit params as JSON");
  const answer = h("div", { class: "answer-box", "aria-live": "polite" });
  const send = h("button", { type: "submit", class: "primary" }, "Send");

  /** The params' JSON text from the form, or null for none. */
  function formParams() {
    if (!params.length) return null;
    const values = fields.map((f) => f.read());
    if (byPosition) {
      while (values.length && values[values.length - 1] === ABSENT) values.pop();
      return JSON.stringify(values.map((v) => (v === ABSENT ? null : v)));
    }
    const named = {};
    params.forEach((p, i) => {
      if (values[i] !== ABSENT) named[p.name] = values[i];
    });
    return JSON.stringify(named);
  }

  /** The params' JSON text from the raw box, or null for none. */
  function rawParams() {
    const text = raw.value.trim();
    if (text === "") return null;
    let value;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new FieldError(`the params are not valid JSON: ${err.message}`);
    }
    if (value === null || typeof value !== "object") {
      throw new FieldError("the params must be a JSON array (by position) or object (by name)");
    }
    return text;
  }

  asJson.addEventListener("change", () => {
    if (asJson.checked) {
      try {
        const text = formParams();
        raw.value = text === null ? "" : JSON.stringify(parseExact(text), null, 2);
      } catch {
        raw.value = byPosition ? "[]" : "{}";
      }
    }
    formBody.hidden = asJson.checked;
    rawBox.hidden = !asJson.checked;
    (asJson.checked ? raw : formBody.querySelector("input, select, textarea") ?? asJson).focus();
  });

  const form = h("form", { class: "try", novalidate: true }, formBody, rawBox, h("div", { class: "actions" }, send, toggle), answer);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let paramsText;
    try {
      paramsText = asJson.checked ? rawParams() : formParams();
    } catch (err) {
      if (!(err instanceof FieldError)) throw err;
      replace(answer, message("error", `Not sent: ${err.message}.`));
      return;
    }
    const id = nextRequestId++;
    const body = `{"jsonrpc":"2.0","method":${JSON.stringify(method.name)}${paramsText === null ? "" : `,"params":${paramsText}`},"id":${id}}`;
    send.disabled = true;
    const started = performance.now();
    try {
      const response = await call(body);
      replace(answer, renderAnswer(response, performance.now() - started), curlBox(body));
    } catch (err) {
      replace(answer, message("error", err instanceof ApiError ? err.describe() : String(err)), curlBox(body));
    } finally {
      send.disabled = false;
    }
  });
  return form;
}

/** The JSON-RPC answer: a heading (result, or error with code and message) and the whole response. */
function renderAnswer({ status, text, json }, ms) {
  const timing = h("span", { class: "muted" }, ` HTTP ${status}, ${Math.round(ms)} ms`);
  let shown = text;
  try {
    shown = JSON.stringify(parseExact(text), null, 2);
  } catch {
    // Not JSON: shown as it came.
  }
  const pre = h("pre", { class: "answer-json", tabindex: "0" }, shown);
  if (json && typeof json === "object" && json.error && typeof json.error === "object") {
    const code = json.error.code;
    const meaning = ERROR_CODES.get(code);
    const head = h("p", { class: "answer-head" }, h("strong", {}, `Error ${code}`), meaning ? ` (${meaning})` : "", `: ${json.error.message ?? ""}`, timing);
    return h("div", { class: "answer error", "data-code": String(code) }, head, pre);
  }
  if (json && typeof json === "object" && "result" in json) {
    return h("div", { class: "answer ok" }, h("p", { class: "answer-head" }, h("strong", {}, "Result"), timing), pre);
  }
  if (status === 204) return h("div", { class: "answer ok" }, h("p", { class: "answer-head" }, "No content: a notification has no answer.", timing));
  return h("div", { class: "answer error" }, h("p", { class: "answer-head" }, h("strong", {}, "Unexpected answer"), timing), pre);
}

/** The same call as a curl command, with a copy button. */
function curlBox(body) {
  const command = `curl -s ${location.origin}/rpc -H 'content-type: application/json' -d ${shellQuote(body)}`;
  const code = h("code", { class: "curl" }, command);
  const copied = h("span", { class: "muted", "aria-live": "polite" });
  const copy = h("button", { type: "button", class: "small" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(command);
      copied.textContent = " copied";
    } catch {
      // No clipboard (an insecure origin, a denied permission): select it for Ctrl+C.
      const range = document.createRange();
      range.selectNodeContents(code);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      copied.textContent = " selected: press Ctrl+C";
    }
  });
  return h("div", { class: "curl-box" }, h("p", { class: "answer-head" }, "The same call with curl ", copy, copied), h("pre", {}, code));
}
