// The trials page: every trial in a table a page at a time (10,000 stay responsive),
// filtered by status, tag and command here and by `--where` in the daemon, sorted by any
// column, branches indented under their parents, with columns for the options that differ
// and for the last and best values of chosen statistics (asked for the rows shown only).

import {
  ApiError,
  STATUS_ORDER,
  debounce,
  differingOptions,
  fmt,
  fmtTime,
  getJson,
  h,
  keepInHash,
  parseKeys,
  short,
  statusBadge,
} from "./util.js";

const PAGE_SIZE = 100;
const REFRESH_EVERY = 10_000; // ms, while some trial runs
const SUMMARY_CHUNK = 100; // trials per /api/summary request

const selected = new Set(); // kept while the page is left for a trial and back

export async function trialsPage(root, params, { alive }) {
  const state = {
    status: params.get("status") || "",
    tag: params.get("tag") || "",
    command: params.get("command") || "",
    where: params.get("where") || "",
    keys: params.get("keys") || "",
    sort: params.get("sort") || "-created",
    page: Math.max(0, Number(params.get("page")) || 0),
    flat: params.get("flat") === "1",
  };
  let rows = [];
  let rowsRead = 0; // how many times the trials were read (their version)
  let fetched = 0; // which fetch of the trials is current
  const summaries = new Map(); // `${id}\0${key}` -> {last, min, max} or null (none)
  const reading = new Set(); // the same names, asked for and not answered yet
  let summaryRun = 0; // bumped when the summaries read so far are dropped

  const statusFilter = h("select", { dataset: { testid: "filter-status" }, "aria-label": "status" });
  const tagFilter = h("select", { dataset: { testid: "filter-tag" }, "aria-label": "tag" });
  const commandFilter = h("input", {
    type: "search",
    placeholder: "command contains…",
    value: state.command,
    dataset: { testid: "filter-command" },
  });
  const whereFilter = h("input", {
    type: "search",
    placeholder: "where: lr>0.01 batch_size=32",
    value: state.where,
    class: "wide",
    dataset: { testid: "filter-where" },
    title: "Options the trials were run with, as `kleio ls --where`: KEY=V, !=, <, <=, >, >=",
  });
  const keysInput = h("input", {
    type: "search",
    placeholder: "statistics: loss, acc:max",
    value: state.keys,
    dataset: { testid: "filter-keys" },
    title: "Columns of the last and best value of these statistics (best: min, or :max)",
  });
  const treeBox = h("input", { type: "checkbox", checked: !state.flat, dataset: { testid: "filter-tree" } });
  const whereError = h("span", { class: "error inline", dataset: { testid: "where-error" }, hidden: true });
  const counts = h("span", { class: "muted", dataset: { testid: "trial-count" } });
  const refreshButton = h("button", { type: "button", title: "Read the trials again" }, "Refresh");
  const chartButton = h("button", { type: "button", dataset: { testid: "chart-selected" } }, "Chart");
  const compareButton = h("button", { type: "button", dataset: { testid: "compare-selected" } }, "Compare");
  const clearButton = h("button", { type: "button", class: "link" }, "clear");
  const selectionNote = h("span", { class: "muted", dataset: { testid: "selection" } });
  const note = h("span", { class: "muted", dataset: { testid: "summary-note" } });
  const table = h("table", { class: "trials", dataset: { testid: "trials-table" } });
  const pager = h("div", { class: "pager", dataset: { testid: "pager" } });

  root.append(
    h("div", { class: "toolbar" },
      h("label", null, "Status ", statusFilter),
      h("label", null, "Tag ", tagFilter),
      commandFilter,
      whereFilter,
      keysInput,
      h("label", { title: "Branches indented under their parents" }, treeBox, " tree"),
      refreshButton,
      counts,
    ),
    whereError,
    h("div", { class: "toolbar selectionbar" }, selectionNote, chartButton, compareButton, clearButton, note),
    h("div", { class: "table-wrap" }, table),
    pager,
  );

  const keep = () =>
    keepInHash("/", {
      status: state.status,
      tag: state.tag,
      command: state.command,
      where: state.where,
      keys: state.keys,
      sort: state.sort === "-created" ? "" : state.sort,
      page: state.page || "",
      flat: state.flat ? "1" : "",
    });

  // -- reading ----------------------------------------------------------------------------

  async function load() {
    const current = ++fetched;
    const where = state.where.split(/\s+/).filter(Boolean);
    try {
      const found = await getJson("/api/trials", { options: 1, where });
      if (current !== fetched || !alive()) return;
      rows = found;
      rowsRead += 1;
      whereError.hidden = true;
      summaries.clear(); // running trials have new values
      reading.clear();
      summaryRun += 1;
    } catch (error) {
      if (current !== fetched || !(error instanceof ApiError)) throw error;
      if (error.status === 400) {
        whereError.textContent = error.message;
        whereError.hidden = false;
      } else if (!rows.length) {
        throw error;
      }
    }
    render();
  }

  // The summaries the sort or the shown rows need and do not have, a chunk at a time.
  async function summarise(wanted) {
    const keys = parseKeys(state.keys).map((k) => k.key);
    const lacking = (id) =>
      keys.some((key) => !summaries.has(`${id}\0${key}`) && !reading.has(`${id}\0${key}`));
    const missing = wanted.filter(lacking);
    if (!missing.length) return;
    const run = summaryRun;
    const names = missing.flatMap((id) => keys.map((key) => `${id}\0${key}`));
    for (const name of names) reading.add(name);
    for (let start = 0; start < missing.length; start += SUMMARY_CHUNK) {
      const ids = missing.slice(start, start + SUMMARY_CHUNK);
      if (missing.length > SUMMARY_CHUNK) {
        note.textContent = `reading statistics: ${start} of ${missing.length} trials…`;
      }
      let found;
      try {
        found = await getJson("/api/summary", { ids: ids.join(","), keys: keys.join(",") });
      } catch (error) {
        if (run === summaryRun) for (const name of names) reading.delete(name);
        note.textContent = `statistics: ${error.message}`;
        return;
      }
      if (run !== summaryRun || !alive()) return;
      for (const id of ids) {
        for (const key of keys) {
          summaries.set(`${id}\0${key}`, found[id]?.[key] || null);
          reading.delete(`${id}\0${key}`);
        }
      }
      render();
    }
    note.textContent = "";
  }

  // -- what is shown ----------------------------------------------------------------------

  function columns(shown) {
    const summary = (id, key) => summaries.get(`${id}\0${key}`);
    const optionColumns = differingOptions(shown.map((r) => r.options)).map((name) => ({
      id: `option:${name}`,
      label: name,
      title: `option --${name.replaceAll("_", "-")}`,
      kind: "option",
      value: (r) => (r.options || {})[name],
      cell: (r) => {
        const value = (r.options || {})[name];
        return value === undefined ? h("span", { class: "muted" }, "–") : fmt(value);
      },
    }));
    const statColumns = parseKeys(state.keys).flatMap(({ key, best }) => [
      {
        id: `last:${key}`,
        label: `${key} last`,
        kind: "stat",
        value: (r) => summary(r.id, key)?.last,
        cell: (r) => fmt(summary(r.id, key)?.last),
      },
      {
        id: `${best}:${key}`,
        label: `${key} ${best}`,
        title: `best: the ${best === "min" ? "lowest" : "highest"} value (:min or :max to choose)`,
        kind: "stat",
        value: (r) => summary(r.id, key)?.[best],
        cell: (r) => fmt(summary(r.id, key)?.[best]),
      },
    ]);
    return [
      {
        id: "id",
        label: "ID",
        value: (r) => r.id,
        cell: (r, depth) =>
          h("span", { class: "tree", style: depth ? `padding-left:${depth * 1.1}em` : null },
            depth ? h("span", { class: "branch-mark", title: "a branch of the trial above" }, "↳ ") : null,
            h("a", { href: `#/trial/${r.id}`, title: r.id, dataset: { testid: "trial-link" } }, short(r.id))),
      },
      {
        id: "status",
        label: "Status",
        value: (r) => (STATUS_ORDER.includes(r.status) ? STATUS_ORDER.indexOf(r.status) : 99),
        cell: (r) => statusBadge(r.status, { dataset: { testid: "trial-status" } }),
      },
      { id: "command", label: "Command", value: (r) => r.command, cell: (r) => h("code", null, r.command) },
      ...optionColumns,
      ...statColumns,
      { id: "created", label: "Created", value: (r) => r.created, cell: (r) => fmtTime(r.created) },
      { id: "executions", label: "Runs", title: "executions", value: (r) => r.executions, cell: (r) => r.executions },
      { id: "host", label: "Host", value: (r) => r.host, cell: (r) => r.host },
      { id: "tags", label: "Tags", value: (r) => r.tags.join(","), cell: (r) => r.tags.map((t) => h("span", { class: "tag" }, t)) },
    ];
  }

  function filtered() {
    const command = state.command.toLowerCase();
    return rows.filter(
      (r) =>
        (!state.status || r.status === state.status) &&
        (!state.tag || r.tags.includes(state.tag)) &&
        (!command || r.command.toLowerCase().includes(command)),
    );
  }

  // The rows shown, their columns and order: computed again only when what they depend
  // on changed (not for a page turned or a trial selected, which 10,000 rows would slow).
  let derived = null;
  function derive() {
    const descending = state.sort.startsWith("-");
    const sortId = state.sort.replace(/^-/, "");
    const byStatistic = /^(last|min|max):/.test(sortId);
    const key = JSON.stringify([rowsRead, state.status, state.tag, state.command, state.sort,
      state.flat, state.keys, byStatistic ? summaries.size : 0]);
    if (derived && derived.key === key) return derived;
    const shown = filtered();
    const cols = columns(shown);
    const sortColumn = cols.find((c) => c.id === sortId) || cols.find((c) => c.id === "created");
    const ordered = inOrder(shown, sortColumn.value, descending, !state.flat);
    derived = { key, shown, cols, sortColumn, descending, ordered };
    return derived;
  }

  function render() {
    const { shown, cols, sortColumn, descending, ordered } = derive();
    const pages = Math.max(1, Math.ceil(ordered.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages - 1);
    const page = ordered.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);

    fillSelect(statusFilter, "all statuses", count(rows.map((r) => r.status)), state.status, STATUS_ORDER);
    fillSelect(tagFilter, "all tags", count(rows.flatMap((r) => r.tags)), state.tag);
    counts.textContent =
      shown.length === rows.length ? `${rows.length} trials` : `${shown.length} of ${rows.length} trials`;

    const pageIds = page.map(([r]) => r.id);
    const allChecked = pageIds.length > 0 && pageIds.every((id) => selected.has(id));
    const headerBox = h("input", {
      type: "checkbox",
      checked: allChecked,
      title: "Select the trials of this page",
      dataset: { testid: "select-page" },
      onchange: () => {
        for (const id of pageIds) allChecked ? selected.delete(id) : selected.add(id);
        render();
      },
    });
    const head = h("tr", null,
      h("th", { class: "check" }, headerBox),
      cols.map((c) => {
        const sorted = c === sortColumn;
        return h("th", {
          class: ["sortable", c.kind, sorted ? "sorted" : null].filter(Boolean).join(" "),
          title: c.title || `sort by ${c.label}`,
          "aria-sort": sorted ? (descending ? "descending" : "ascending") : null,
          dataset: { sort: c.id, testid: `column-${c.id}` },
          onclick: () => {
            state.sort = sorted && !descending ? `-${c.id}` : c.id;
            state.page = 0;
            keep();
            render();
          },
        }, c.label, sorted ? (descending ? " ▼" : " ▲") : "");
      }),
    );
    const body = page.map(([r, depth]) =>
      h("tr", { class: selected.has(r.id) ? "selected" : null, dataset: { testid: "trial-row", id: r.id, status: r.status } },
        h("td", { class: "check" },
          h("input", {
            type: "checkbox",
            checked: selected.has(r.id),
            "aria-label": `select ${short(r.id)}`,
            dataset: { testid: "select-trial" },
            onchange: (event) => {
              event.target.checked ? selected.add(r.id) : selected.delete(r.id);
              render();
            },
          })),
        cols.map((c) => h("td", { class: c.kind || c.id }, c.cell(r, depth))),
      ),
    );
    const empty = rows.length
      ? "No trial matches these filters."
      : "No trials yet: run one with `kleio python train.py --lr 0.1`.";
    table.replaceChildren(
      h("thead", null, head),
      h("tbody", null, body.length ? body : h("tr", null, h("td", { colspan: cols.length + 1, class: "muted empty" }, empty))),
    );
    renderPager(pages, ordered.length);
    renderSelection();
    summarise(sortColumn.kind === "stat" ? shown.map((r) => r.id) : pageIds);
  }

  function renderPager(pages, total) {
    const go = (page) => () => {
      state.page = page;
      keep();
      render();
      table.scrollIntoView({ block: "start" });
    };
    const first = state.page * PAGE_SIZE;
    pager.replaceChildren(
      h("button", { type: "button", disabled: state.page === 0, onclick: go(0) }, "«"),
      h("button", { type: "button", disabled: state.page === 0, onclick: go(state.page - 1), dataset: { testid: "page-previous" } }, "‹ previous"),
      h("span", null, total ? ` ${first + 1}–${Math.min(first + PAGE_SIZE, total)} of ${total} ` : " "),
      h("button", { type: "button", disabled: state.page >= pages - 1, onclick: go(state.page + 1), dataset: { testid: "page-next" } }, "next ›"),
      h("button", { type: "button", disabled: state.page >= pages - 1, onclick: go(pages - 1) }, "»"),
    );
    pager.hidden = pages <= 1;
  }

  function renderSelection() {
    const ids = [...selected];
    selectionNote.textContent = ids.length ? `${ids.length} selected:` : "Select trials to";
    chartButton.disabled = ids.length < 1;
    compareButton.disabled = ids.length < 2;
    clearButton.hidden = !ids.length;
  }

  // -- what the controls do ---------------------------------------------------------------

  const changed = () => {
    state.page = 0;
    keep();
    render();
  };
  statusFilter.addEventListener("change", () => {
    state.status = statusFilter.value;
    changed();
  });
  tagFilter.addEventListener("change", () => {
    state.tag = tagFilter.value;
    changed();
  });
  commandFilter.addEventListener(
    "input",
    debounce(() => {
      state.command = commandFilter.value;
      changed();
    }, 150),
  );
  whereFilter.addEventListener("change", () => {
    state.where = whereFilter.value.trim();
    state.page = 0;
    keep();
    load();
  });
  keysInput.addEventListener("change", () => {
    state.keys = keysInput.value.trim();
    keep();
    render();
  });
  treeBox.addEventListener("change", () => {
    state.flat = !treeBox.checked;
    keep();
    render();
  });
  refreshButton.addEventListener("click", () => load());
  chartButton.addEventListener("click", () => {
    const keys = parseKeys(state.keys);
    location.hash = `#/chart?ids=${[...selected].join(",")}${keys.length ? `&y=${encodeURIComponent(keys[0].key)}` : ""}`;
  });
  compareButton.addEventListener("click", () => {
    location.hash = `#/compare?ids=${[...selected].join(",")}${state.keys ? `&keys=${encodeURIComponent(state.keys)}` : ""}`;
  });
  clearButton.addEventListener("click", () => {
    selected.clear();
    render();
  });

  const timer = setInterval(() => {
    if (document.visibilityState === "visible" && rows.some((r) => r.status === "running")) load();
  }, REFRESH_EVERY);

  await load();
  return () => {
    clearInterval(timer);
    fetched += 1;
    summaryRun += 1;
  };
}

// Rows in the order of ``value`` (missing values last either way), each child under its
// parent when ``tree`` (a trial whose parent is not shown is a root): [[row, depth]].
export function inOrder(rows, value, descending, tree) {
  const keyed = rows.map((row) => [row, value(row)]);
  const sign = descending ? -1 : 1;
  const compare = ([, a], [, b]) => {
    const aMissing = a === undefined || a === null || Number.isNaN(a);
    const bMissing = b === undefined || b === null || Number.isNaN(b);
    if (aMissing || bMissing) return aMissing - bMissing;
    const aNumber = typeof a === "number";
    const bNumber = typeof b === "number";
    if (aNumber !== bNumber) return aNumber ? -1 : 1; // numbers before texts
    if (aNumber) return sign * (a - b);
    const [x, y] = [String(a), String(b)]; // code-point order: a collator is 15 times slower
    return sign * (x < y ? -1 : x > y ? 1 : 0);
  };
  if (!tree) return keyed.sort(compare).map(([row]) => [row, 0]);
  const shown = new Set(rows.map((r) => r.id));
  const children = new Map();
  for (const entry of keyed) {
    const parent = shown.has(entry[0].parent) ? entry[0].parent : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(entry);
  }
  for (const list of children.values()) list.sort(compare);
  const ordered = [];
  const stack = (children.get(null) || []).map((entry) => [entry, 0]).reverse();
  while (stack.length) {
    const [[row], depth] = stack.pop();
    ordered.push([row, depth]);
    const below = children.get(row.id) || [];
    for (let i = below.length - 1; i >= 0; i--) stack.push([below[i], depth + 1]);
  }
  return ordered;
}

function count(values) {
  const counted = new Map();
  for (const value of values) counted.set(value, (counted.get(value) || 0) + 1);
  return counted;
}

function fillSelect(select, allLabel, counted, chosen, order) {
  const names = [...counted.keys()].sort((a, b) =>
    order ? order.indexOf(a) - order.indexOf(b) : String(a).localeCompare(String(b)),
  );
  if (chosen && !counted.has(chosen)) names.push(chosen);
  const signature = JSON.stringify([...names.map((n) => [n, counted.get(n)]), chosen]);
  if (select.dataset.signature === signature) return; // unchanged: keep it open if it is
  select.dataset.signature = signature;
  select.replaceChildren(
    h("option", { value: "" }, allLabel),
    ...names.map((name) => h("option", { value: name }, `${name} (${counted.get(name) || 0})`)),
  );
  select.value = chosen;
}
