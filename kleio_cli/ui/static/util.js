// What every page uses: building elements, asking the API (and saying clearly when the
// token or the daemon is missing), formatting values, rendering a patch, and the output
// box's terminal (carriage returns rewrite the current line, as `kleio cat` shows them).

// -- elements ---------------------------------------------------------------------------

// h("a", {href: "#/", class: "x", onclick: f, dataset: {testid: "y"}}, "text", child, [more])
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "value" || name === "checked" || name === "disabled") node[name] = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

// The width inside ``node``'s padding: what a chart drawn in it may take.
export function innerWidth(node) {
  const style = getComputedStyle(node);
  return node.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// -- the hash --------------------------------------------------------------------------

// The hash as a path and its parameters: "#/chart?ids=a" -> ["/chart", {ids: "a"}].
export function parseHash(hash) {
  const text = hash.replace(/^#/, "") || "/";
  const cut = text.indexOf("?");
  const path = cut < 0 ? text : text.slice(0, cut);
  return [decodeURIComponent(path), new URLSearchParams(cut < 0 ? "" : text.slice(cut + 1))];
}

// Rewrites the current page's parameters in the hash without navigating (for reloads,
// bookmarks and the back button).
export function keepInHash(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "" && value !== false) query.set(name, value);
  }
  const text = query.toString().replaceAll("%2C", ",");
  history.replaceState(null, "", `#${path}${text ? `?${text}` : ""}`);
}

// -- the API ----------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const banner = { node: null, kind: null };

export function setBannerNode(node) {
  banner.node = node;
}

function showBanner(kind, text) {
  if (!banner.node) return;
  banner.kind = kind;
  banner.node.hidden = false;
  banner.node.className = `banner banner-${kind}`;
  banner.node.textContent = text;
}

function hideBanner() {
  if (!banner.node || banner.kind === "token") return; // a token stays missing
  banner.node.hidden = true;
  banner.kind = null;
}

// ``params``: an object whose arrays become repeated parameters; empty values are left out.
export function apiUrl(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== null && one !== undefined && one !== "") query.append(name, String(one));
    }
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

export async function getJson(path, params, signal) {
  let response;
  try {
    response = await fetch(apiUrl(path, params), { signal, headers: { accept: "application/json" } });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    showBanner("down", "The Kleio UI server does not answer: is `kleio ui` still running?");
    throw new ApiError(0, "the server does not answer");
  }
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (response.status === 401) {
    showBanner(
      "token",
      "This page needs its token: open the URL that `kleio ui` printed " +
        "(http://HOST:PORT/?token=...). The token changes each time `kleio ui` starts.",
    );
    throw new ApiError(401, body.error || "token needed");
  }
  if (response.status === 503) {
    showBanner("down", `Kleio's daemon is unavailable: ${body.error || "503"}`);
    throw new ApiError(503, body.error || "daemon unavailable");
  }
  hideBanner();
  if (!response.ok) throw new ApiError(response.status, body.error || response.statusText);
  return body;
}

// -- values -----------------------------------------------------------------------------

export function short(id) {
  return id ? String(id).slice(0, 8) : "";
}

export function fmt(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return fmtNumber(value);
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

export function fmtNumber(value) {
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
  const size = Math.abs(value);
  if (size !== 0 && (size < 1e-4 || size >= 1e6)) return value.toExponential(3);
  return String(Number(value.toPrecision(5)));
}

export function fmtBytes(size) {
  if (size === null || size === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  let shown = size;
  while (shown >= 1024 && unit < units.length - 1) {
    shown /= 1024;
    unit += 1;
  }
  return unit ? `${shown.toFixed(1)} ${units[unit]}` : `${size} B`;
}

// An ISO time as the CLI shows it: local date and time to the second.
export function fmtTime(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())} ` +
    `${pad(when.getHours())}:${pad(when.getMinutes())}:${pad(when.getSeconds())}`
  );
}

// A captured configuration's options as the API names them (`--batch-size` as batch_size).
export function optionsOf(configuration) {
  const given = configuration && configuration.options;
  if (!given || typeof given !== "object") return {};
  const named = {};
  for (const [name, value] of Object.entries(given)) {
    named[name.replace(/^-+/, "").replaceAll("-", "_")] = value;
  }
  return named;
}

// The option names whose values are not the same in every one of ``optionSets``.
export function differingOptions(optionSets) {
  const names = new Set();
  for (const options of optionSets) for (const name of Object.keys(options || {})) names.add(name);
  return [...names]
    .filter((name) => {
      const seen = new Set(optionSets.map((options) => JSON.stringify((options || {})[name])));
      return seen.size > 1;
    })
    .sort();
}

// Statistics where higher is better; the rest are best lowest (a loss, an error).
const HIGHER_IS_BETTER = /acc|auc|f1|precision|recall|score|reward|return|iou|bleu|map/i;

// "loss, acc:max" -> [{key: "loss", best: "min"}, {key: "acc", best: "max"}]
export function parseKeys(text) {
  return String(text || "")
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((part) => {
      const [key, best] = part.split(":");
      const chosen = best === "min" || best === "max" ? best : null;
      return { key, best: chosen || (HIGHER_IS_BETTER.test(key) ? "max" : "min") };
    });
}

export const STATUS_ORDER = ["running", "new", "completed", "interrupted", "broken", "lost"];

export function statusBadge(status, attrs) {
  return h("span", { class: `status status-${status}`, ...attrs }, status);
}

// -- a patch, coloured ------------------------------------------------------------------

const PATCH_LINES_SHOWN = 5000;

export function renderPatch(patch) {
  const lines = String(patch || "").replace(/\n$/, "").split("\n");
  const shown = lines.slice(0, PATCH_LINES_SHOWN).map((line) => {
    let kind = "ctx";
    if (/^(diff --git|index |--- |\+\+\+ |new file|deleted file|similarity|rename )/.test(line))
      kind = "meta";
    else if (line.startsWith("@@")) kind = "hunk";
    else if (line.startsWith("+")) kind = "add";
    else if (line.startsWith("-")) kind = "del";
    return h("span", { class: `diff-${kind}` }, line + "\n");
  });
  if (lines.length > PATCH_LINES_SHOWN) {
    shown.push(h("span", { class: "diff-meta" }, `… ${lines.length - PATCH_LINES_SHOWN} more lines`));
  }
  return h("pre", { class: "diff", dataset: { testid: "patch" } }, shown);
}

// -- the output box ---------------------------------------------------------------------

// The text a terminal shows of a line after its last carriage return (as `kleio cat`).
export function finalLine(line) {
  const trimmed = line.replace(/\r+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("\r") + 1);
}

const OUTPUT_KEPT = 2_000_000; // characters kept in the box; older ones are dropped
const CHUNK = 65_536;

// A terminal-like view of a trial's output in ``node``: completed lines appended, each
// stream's unfinished line shown at the end as its latest rewrite.
export class Terminal {
  constructor(node) {
    this.node = node;
    this.done = h("span");
    this.partial = { stdout: "", stderr: "" };
    this.tails = { stdout: h("span"), stderr: h("span", { class: "stderr" }) };
    this.size = 0;
    node.append(this.done, this.tails.stdout, this.tails.stderr);
  }

  // The collapsed output read so far; its unfinished last line continues on stdout.
  start(text) {
    let shown = text;
    if (shown.length > OUTPUT_KEPT) {
      shown = shown.slice(shown.length - OUTPUT_KEPT);
      const note = h("span", { class: "muted", dataset: { stream: "note" } });
      note.append("… earlier output left out (see `kleio cat`)\n");
      note.kept = 0;
      this.done.append(note);
    }
    const cut = shown.lastIndexOf("\n") + 1;
    this.completed("stdout", shown.slice(0, cut));
    this.partial.stdout = shown.slice(cut);
    this.showTails();
  }

  write(stream, text) {
    const name = stream === "stderr" ? "stderr" : "stdout";
    const lines = (this.partial[name] + text).split("\n");
    const last = lines.pop();
    if (lines.length) this.completed(name, lines.map((line) => finalLine(line) + "\n").join(""));
    // Keep only the latest rewrite (and a trailing \r, which the next text rewrites).
    this.partial[name] = finalLine(last) + (last.endsWith("\r") ? "\r" : "");
    this.showTails();
  }

  completed(stream, text) {
    if (!text) return;
    // Text goes into spans of one stream and at most CHUNK characters each, so that the
    // oldest can be dropped a span at a time.
    let last = this.done.lastChild;
    if (!last || last.dataset.stream !== stream || last.kept > CHUNK) {
      last = h("span", { class: stream === "stderr" ? "stderr" : null, dataset: { stream } });
      last.kept = 0;
      this.done.append(last);
    }
    last.append(text);
    last.kept += text.length;
    this.size += text.length;
    while (this.size > OUTPUT_KEPT && this.done.firstChild !== last) {
      this.size -= this.done.firstChild.kept || 0;
      this.done.firstChild.remove();
    }
  }

  showTails() {
    const out = finalLine(this.partial.stdout);
    const err = finalLine(this.partial.stderr);
    this.tails.stdout.textContent = out;
    this.tails.stderr.textContent = out && err ? "\n" + err : err;
  }
}
