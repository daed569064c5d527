// One trial's page: what `kleio info` says (configuration, code and its patch, environment,
// executions, artifacts), its output as `kleio cat` shows it and, while it runs, its new
// output and statistics as the daemon publishes them (Server-Sent Events).

import { color, linePlot } from "./plot.js";
import {
  Terminal,
  fmt,
  fmtBytes,
  fmtTime,
  getJson,
  h,
  innerWidth,
  renderPatch,
  short,
  statusBadge,
} from "./util.js";

const RECONNECT_AFTER = 1000; // ms after a dropped stream before asking again
const X_LIKE = ["step", "epoch", "iteration", "iter", "batch", "time", "timestamp", "wall_time", "record"];

// What the live view has shown, for the benchmark of a statistic's way from
// `log_statistic` to the page (tests/benchmarks/ui.py): subscribed yet, the greatest x
// drawn, and when (ms since the epoch).
const shown = { ready: false, last: null, shownAt: 0 };
window.kleioLive = shown;

export async function trialPage(root, _params, { match, alive }) {
  const info = await getJson(`/api/trials/${encodeURIComponent(match[1])}`);
  if (!alive()) return null;
  const id = info.id;
  const stops = [];
  Object.assign(shown, { ready: false, last: null, shownAt: 0 });
  const badge = statusBadge(info.status, { dataset: { testid: "trial-status" } });
  const liveNote = h("span", { class: "live", dataset: { testid: "live-state" }, hidden: true }, "● live");

  root.append(
    h("div", { class: "title" },
      h("h1", null, `Trial ${short(id)} `, badge, " ", liveNote),
      h("div", { class: "actions" },
        h("a", { class: "button", href: `#/chart?ids=${id}` }, "Chart"),
        info.parent ? h("a", { class: "button", href: `#/compare?ids=${info.parent},${id}` }, "Compare with parent") : null,
      ),
    ),
    h("pre", { class: "command", dataset: { testid: "trial-command" } }, info.command),
    summaryTable(info),
  );

  const chartSection = h("section", { class: "card", dataset: { testid: "live-chart-section" } });
  const outputBox = h("pre", { class: "output", dataset: { testid: "output" } });
  root.append(
    chartSection,
    h("section", { class: "card" }, h("h2", null, "Output"), outputBox),
    executionsSection(info),
    configurationSection(info.configuration),
    codeSection(info.code),
    environmentSection(info.environment),
    artifactsSection(info),
  );

  const [output, keys] = await Promise.all([
    getJson(`/api/trials/${id}/output`),
    getJson(`/api/trials/${id}/keys`),
  ]);
  if (!alive()) return null;
  const terminal = new Terminal(outputBox);
  terminal.start(output.text);
  outputBox.scrollTop = outputBox.scrollHeight;
  outputBox.dataset.state = "read";
  const chart = liveChart(chartSection, id, keys);
  stops.push(() => chart.stop());

  const setStatus = (status) => {
    badge.textContent = status;
    badge.className = `status status-${status}`;
  };
  setStatus(output.status);
  if (output.status === "running") {
    stops.push(follow(id, output.end, { terminal, outputBox, chart, setStatus, liveNote }));
  }
  return () => stops.forEach((stop) => stop());
}

// The trial's new output and statistics from /live, until it ends; a dropped stream is
// asked for again from the last output position shown.
function follow(id, end, { terminal, outputBox, chart, setStatus, liveNote }) {
  let after = end;
  let source = null;
  let timer = null;
  let stopped = false;
  const open = () => {
    const query = after === null || after === undefined ? "" : `?after=${after}`;
    source = new EventSource(`/api/trials/${id}/live${query}`);
    source.addEventListener("ready", (event) => {
      liveNote.hidden = false;
      shown.ready = true;
      setStatus(JSON.parse(event.data).status);
      // Subscribed: the feed sends only statistics to come, so read those so far again
      // (one logged before the subscription would be missing otherwise).
      chart.reload();
    });
    source.addEventListener("output", (event) => {
      const chunk = JSON.parse(event.data);
      const atBottom = outputBox.scrollTop + outputBox.clientHeight >= outputBox.scrollHeight - 8;
      terminal.write(chunk.stream, chunk.text);
      after = chunk.position;
      if (atBottom) outputBox.scrollTop = outputBox.scrollHeight;
    });
    source.addEventListener("statistic", (event) => chart.add(JSON.parse(event.data).records));
    source.addEventListener("end", (event) => {
      close();
      liveNote.hidden = true;
      setStatus(JSON.parse(event.data).status);
    });
    source.onerror = () => {
      // EventSource would ask again with the first `after`: ask from what is shown instead.
      close();
      liveNote.hidden = true;
      if (!stopped) {
        timer = setTimeout(open, RECONNECT_AFTER);
      }
    };
  };
  const close = () => {
    if (source) source.close();
    source = null;
  };
  open();
  return () => {
    stopped = true;
    clearTimeout(timer);
    close();
  };
}

// A small chart of one statistic, fed by the live stream while the trial runs.
function liveChart(section, id, keys) {
  const xs = keys.x || ["record"];
  let x = xs.includes("step") ? "step" : "record";
  let y = keys.keys.find((k) => !X_LIKE.includes(k)) || keys.keys.find((k) => k !== x) || null;
  let rows = keys.rows || 0; // records so far: the x of the next one, by record
  let data = [[], []];
  let plot = null;
  let drawing = 0;
  let request = 0;
  let loading = null; // while the history is read: the live points meanwhile
  const ySelect = h("select", { dataset: { testid: "live-y" }, "aria-label": "statistic" });
  const xSelect = h("select", { dataset: { testid: "live-x" }, "aria-label": "against" });
  const fullLink = h("a", { class: "button" }, "Open in Chart");
  const empty = h("p", { class: "muted" }, "No statistics logged.");
  const holder = h("div", { class: "plot small", dataset: { testid: "live-chart", points: "0" } });
  section.append(
    h("h2", null, "Statistics"),
    h("div", { class: "toolbar" }, h("label", null, "y ", ySelect), h("label", null, "against ", xSelect), fullLink),
    empty,
    holder,
  );
  const fillSelects = () => {
    ySelect.replaceChildren(...keys.keys.map((k) => h("option", { value: k }, k)));
    xSelect.replaceChildren(...xs.map((k) => h("option", { value: k }, k)));
    ySelect.value = y || "";
    xSelect.value = x;
    fullLink.href = `#/chart?ids=${id}&y=${encodeURIComponent(y || "")}&x=${encodeURIComponent(x)}`;
    empty.hidden = Boolean(y);
    holder.hidden = !y;
  };
  const draw = () => {
    if (drawing) return;
    drawing = requestAnimationFrame(() => {
      drawing = 0;
      if (!plot) return;
      plot.setData(data);
      holder.dataset.points = String(data[0].length);
      if (data[0].length) {
        shown.last = data[0][data[0].length - 1];
        shown.shownAt = Date.now();
      }
    });
  };
  const reload = async () => {
    if (!y) return;
    const current = ++request;
    const width = Math.max(200, innerWidth(holder) || 600);
    if (!plot) {
      plot = linePlot(holder, {
        width,
        height: 220,
        xLabel: x,
        yLabel: y,
        series: [{ label: y, stroke: color(0) }],
      });
    }
    loading = [];
    let got;
    try {
      got = await getJson(`/api/trials/${id}/statistics`, { x, keys: y, points: width });
    } catch (error) {
      if (current !== request) return;
      loading = null;
      empty.textContent = `Statistics: ${error.message}`;
      empty.hidden = false;
      return;
    }
    if (current !== request) return;
    empty.hidden = true;
    data = [got[x] || [], got[y] || []];
    // Points that came live while the history was read: those past what it held.
    const last = data[0].length ? data[0][data[0].length - 1] : -Infinity;
    for (const [at, value] of loading) if (at > last) insert(data, at, value);
    loading = null;
    draw();
  };
  const rebuild = () => {
    if (plot) plot.destroy();
    plot = null;
    holder.replaceChildren();
    fillSelects();
    reload();
  };
  ySelect.addEventListener("change", () => {
    y = ySelect.value;
    rebuild();
  });
  xSelect.addEventListener("change", () => {
    x = xSelect.value;
    rebuild();
  });
  const observer = new ResizeObserver(() => plot && plot.setSize({ width: innerWidth(holder), height: 220 }));
  observer.observe(holder);
  fillSelects();
  reload();

  return {
    reload,
    // Records as logged: each with x (or, by record, its rank) and y adds a point.
    add(records) {
      let known = false;
      for (const record of records) {
        for (const key of Object.keys(record)) {
          if (!keys.keys.includes(key)) {
            keys.keys.push(key);
            xs.push(key);
            known = true;
          }
        }
        const at = x === "record" ? rows : record[x];
        rows += 1;
        const value = record[y];
        if (typeof at !== "number" || typeof value !== "number") continue;
        if (loading) loading.push([at, value]);
        else insert(data, at, value);
      }
      if (known) {
        if (!y) {
          y = keys.keys.find((k) => !X_LIKE.includes(k)) || null;
          if (xs.includes("step") && x === "record") x = "step";
          rebuild();
          return;
        }
        fillSelects();
      }
      draw();
    },
    stop() {
      observer.disconnect();
      if (plot) plot.destroy();
    },
  };
}

// Adds (at, value) to columns [xs, ys] keeping xs ascending (as uPlot needs).
function insert(data, at, value) {
  const [xs, ys] = data;
  let i = xs.length;
  while (i > 0 && xs[i - 1] > at) i -= 1;
  xs.splice(i, 0, at);
  ys.splice(i, 0, value);
}

// -- what `kleio info` says ---------------------------------------------------------------

function pairs(entries) {
  return h("table", { class: "pairs" },
    h("tbody", null,
      entries
        .filter(([, value]) => value !== null && value !== undefined && value !== "")
        .map(([name, value]) => h("tr", null, h("th", null, name), h("td", null, value)))));
}

function section(title, testid, ...children) {
  return h("section", { class: "card", dataset: { testid } }, h("h2", null, title), ...children);
}

// A position in the user's terms, from the keys of the record there (as `kleio info`).
function landmark(keys) {
  if (!keys) return null;
  const shown = Object.entries(keys)
    .filter(([key, value]) => key !== "filename" && ["number", "string"].includes(typeof value) && String(value).length <= 40)
    .slice(0, 4)
    .map(([key, value]) => `${key}=${fmt(value)}`);
  const text = shown.join(" ") || "a record";
  return `after ${text}${typeof keys.filename === "string" ? ` (${keys.filename})` : ""}`;
}

function summaryTable(info) {
  let branch = null;
  if (info.parent) {
    const inherited = info.inherited_records
      ? `${info.inherited_records} records inherited`
      : "inherits nothing: no execution loaded an inherited artifact";
    branch = `${info.branch_kind} ${landmark(info.branched_after) || "at the start"}; ${inherited}`;
  }
  return pairs([
    ["id", h("code", null, info.id)],
    ["parent", info.parent ? h("a", { href: `#/trial/${info.parent}` }, short(info.parent)) : null],
    ["branch", branch],
    ["created", fmtTime(info.created)],
    ["updated", fmtTime(info.updated)],
    ["cwd", h("code", null, info.cwd)],
    ["user", `${info.user}@${info.host}`],
    ["tags", (info.tags || []).length ? info.tags.map((t) => h("span", { class: "tag" }, t)) : null],
    ["statistics", `${info.statistics} records`],
  ]);
}

function executionsSection(info) {
  const rows = info.executions.map((e) => {
    const signals = [...(e.signals || []), ...(e.exit_signal ? [`died of ${e.exit_signal}`] : [])];
    return h("tr", null,
      [e.number, e.host, e.pid, fmtTime(e.start), fmtTime(e.end), e.exit].map((v) => h("td", null, fmt(v))),
      h("td", null, statusBadge(e.status)),
      h("td", null, signals.join(", ")),
      h("td", null, e.resumed || ""));
  });
  return section("Executions", "executions",
    h("table", { class: "grid" },
      h("thead", null, h("tr", null, ["#", "Host", "PID", "Start", "End", "Exit", "Status", "Signals", "Resumed"].map((t) => h("th", null, t)))),
      h("tbody", null, rows)));
}

function configurationSection(configuration) {
  if (!configuration) return section("Configuration", "configuration", h("p", { class: "muted" }, "Not captured."));
  const entries = Object.entries(configuration.options || {}).map(([name, value]) => [name, h("code", null, fmt(value))]);
  if ((configuration.positional || []).length) {
    entries.unshift(["arguments", h("code", null, configuration.positional.map(String).join(" "))]);
  }
  for (const [name, file] of Object.entries(configuration.files || {})) {
    entries.push([`file ${name}`, `${fmtBytes(file.size)}, sha256 ${String(file.sha256 || "").slice(0, 12)}`]);
  }
  return section("Configuration", "configuration", entries.length ? pairs(entries) : h("p", { class: "muted" }, "No arguments."));
}

function codeSection(code) {
  if (!code) return section("Code", "code", h("p", { class: "muted" }, "Not captured."));
  if (!code.git) {
    return section("Code", "code", pairs([
      ["script", code.script],
      ["sha256", (code.sha256 || "").slice(0, 12)],
      ["git", "not a git repository"],
    ]));
  }
  const untracked = (code.untracked || []).map((f) => f.path);
  return section("Code", "code",
    pairs([
      ["repository", h("code", null, code.root)],
      ["commit", h("code", null, code.commit)],
      ["branch", code.branch],
      ["remote", code.remote],
      ["dirty", code.dirty ? "yes" : "no"],
      ["patch", (code.patch_files || []).length ? `${code.patch_files.length} files: ${code.patch_files.join(", ")}` : null],
      ["untracked", untracked.length ? `${untracked.length} files: ${untracked.join(", ")}` : null],
    ]),
    code.patch ? h("details", { open: true }, h("summary", null, "Uncommitted changes"), renderPatch(code.patch)) : null);
}

function environmentSection(env) {
  if (!env) return section("Environment", "environment", h("p", { class: "muted" }, "Not captured."));
  const python = env.python || {};
  const cpu = env.cpu || {};
  const gpus = (env.gpus || [])
    .map((g) => `${g.model} (${g.memory_mib} MiB, driver ${g.driver}, CUDA ${g.cuda})`)
    .join("; ");
  const packages = Object.entries(env.packages || {}).sort(([a], [b]) => a.localeCompare(b));
  const filter = h("input", { type: "search", placeholder: "filter packages…" });
  const body = h("tbody");
  const showPackages = () => {
    const text = filter.value.toLowerCase();
    body.replaceChildren(...packages
      .filter(([name]) => !text || name.toLowerCase().includes(text))
      .map(([name, p]) => h("tr", null, h("td", null, name), h("td", null, p.version), h("td", { class: "muted" }, p.editable || ""))));
  };
  filter.addEventListener("input", showPackages);
  showPackages();
  return section("Environment", "environment",
    pairs([
      ["python", `${python.version} (${python.executable})`],
      ["os", `${env.distribution || env.os}, kernel ${env.kernel}, ${env.architecture}`],
      ["cpu", `${cpu.count} × ${cpu.model}`],
      ["memory", env.memory_bytes ? fmtBytes(env.memory_bytes) : null],
      ["gpu", gpus || "none"],
      ["host", `${env.user}@${env.hostname}`],
      ["kleio", env.kleio],
    ]),
    h("details", { dataset: { testid: "packages" } },
      h("summary", null, `${packages.length} packages`),
      filter,
      h("table", { class: "grid" }, h("thead", null, h("tr", null, h("th", null, "Package"), h("th", null, "Version"), h("th", null, "Editable"))), body)));
}

function artifactsSection(info) {
  if (!info.artifacts.length) return section("Artifacts", "artifacts", h("p", { class: "muted" }, "None."));
  const rows = info.artifacts.map((a, index) =>
    h("tr", null,
      h("td", null, h("a", { href: `/api/trials/${info.id}/artifacts/${index}`, download: a.filename, dataset: { testid: "artifact-link" } }, a.filename)),
      h("td", { class: "number" }, fmtBytes(a.size)),
      h("td", null, h("code", { title: a.sha256 }, a.sha256.slice(0, 12))),
      h("td", null, a.trial && a.trial !== info.id ? h("a", { href: `#/trial/${a.trial}` }, `${short(a.trial)}:${a.execution}`) : String(a.execution)),
      h("td", null, Object.entries(a.metadata || {}).map(([k, v]) => h("span", { class: "tag" }, `${k}=${fmt(v)}`)))));
  return section("Artifacts", "artifacts",
    h("table", { class: "grid" },
      h("thead", null, h("tr", null, ["File", "Size", "SHA-256", "From", "Metadata"].map((t) => h("th", null, t)))),
      h("tbody", null, rows)));
}
