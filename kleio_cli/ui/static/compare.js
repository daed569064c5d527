// The compare page: chosen trials side by side — the options that differ, the last and
// best values of chosen statistics, what `kleio diff` says of each against one of them,
// and a parallel-coordinates view of the options against a statistic.

import { axisScale, drawParallel, nearestLine, rampColor } from "./plot.js";
import {
  ApiError,
  differingOptions,
  fmt,
  getJson,
  h,
  keepInHash,
  optionsOf,
  parseKeys,
  renderPatch,
  short,
  statusBadge,
} from "./util.js";

const X_LIKE = ["step", "epoch", "iteration", "iter", "batch", "time", "timestamp", "wall_time", "record"];
const AGGREGATES = ["last", "min", "max"];

export async function comparePage(root, params, { alive }) {
  const ids = (params.get("ids") || "").split(",").filter(Boolean);
  if (!ids.length) {
    root.append(
      h("h1", null, "Compare"),
      h("p", null, "Select two trials or more on the ", h("a", { href: "#/" }, "trials page"), " and press Compare."),
    );
    return null;
  }
  const [infos, keyLists] = await Promise.all([
    Promise.all(ids.map((id) => getJson(`/api/trials/${encodeURIComponent(id)}`))),
    Promise.all(ids.map((id) => getJson(`/api/trials/${encodeURIComponent(id)}/keys`).catch(() => ({ keys: [] })))),
  ]);
  if (!alive()) return null;
  const trials = infos.map((info) => ({ id: info.id, info, options: optionsOf(info.configuration) }));
  const allKeys = [...new Set(keyLists.flatMap((k) => k.keys))];
  const keysChosenHere = !params.get("keys");
  const state = {
    keys: params.get("keys") || allKeys.filter((k) => !X_LIKE.includes(k)).slice(0, 3).join(", "),
    against: params.get("against") || trials[0].id,
    all: params.get("all") === "1",
    stat: params.get("stat") || "",
    agg: AGGREGATES.includes(params.get("agg")) ? params.get("agg") : "",
  };
  if (!trials.some((t) => t.id.startsWith(state.against))) state.against = trials[0].id;
  state.against = trials.find((t) => t.id.startsWith(state.against)).id;
  let summary = {};
  const keep = () =>
    keepInHash("/compare", {
      ids: trials.map((t) => t.id).join(","),
      keys: state.keys,
      against: state.against === trials[0].id ? "" : state.against,
      all: state.all ? "1" : "",
      stat: state.stat,
      agg: state.agg,
    });

  const header = (t) =>
    h("th", null, h("a", { href: `#/trial/${t.id}`, title: t.info.command }, short(t.id)), " ", statusBadge(t.info.status));

  // -- options ----------------------------------------------------------------------------
  const allBox = h("input", { type: "checkbox", checked: state.all });
  const optionsTable = h("table", { class: "grid compare", dataset: { testid: "compare-options" } });
  const renderOptions = () => {
    const differing = differingOptions(trials.map((t) => t.options));
    const names = state.all
      ? [...new Set(trials.flatMap((t) => Object.keys(t.options)))].sort()
      : differing;
    const reference = trials.find((t) => t.id === state.against);
    optionsTable.replaceChildren(
      h("thead", null, h("tr", null, h("th", null, "option"), trials.map(header))),
      h("tbody", null,
        h("tr", null, h("th", null, "command"), trials.map((t) => h("td", null, h("code", null, t.info.command)))),
        names.map((name) =>
          h("tr", { dataset: { option: name } },
            h("th", null, name),
            trials.map((t) => {
              const value = t.options[name];
              const changed = JSON.stringify(value) !== JSON.stringify(reference.options[name]);
              return h("td", { class: changed ? "changed" : null }, value === undefined ? h("span", { class: "muted" }, "–") : fmt(value));
            }))),
        names.length ? null : h("tr", null, h("td", { colspan: trials.length + 1, class: "muted" }, "No option differs.")),
      ),
    );
  };
  allBox.addEventListener("change", () => {
    state.all = allBox.checked;
    keep();
    renderOptions();
  });

  // -- statistics -------------------------------------------------------------------------
  const keysInput = h("input", { type: "search", value: state.keys, placeholder: "loss, acc:max", dataset: { testid: "compare-keys" } });
  const statsTable = h("table", { class: "grid compare", dataset: { testid: "compare-stats" } });
  const statsError = h("p", { class: "error", hidden: true });
  const renderStats = () => {
    const body = parseKeys(state.keys).flatMap(({ key, best }) =>
      AGGREGATES.map((agg) => {
        const values = trials.map((t) => summary[t.id]?.[key]?.[agg]);
        const numbers = values.filter((v) => typeof v === "number");
        // The best of a row whose values differ: of the last values, and of the lowest
        // (highest) values of a statistic best low (high).
        const ranked = (agg === "last" || agg === best) && new Set(numbers).size > 1;
        const bestValue = ranked ? (best === "max" ? Math.max(...numbers) : Math.min(...numbers)) : null;
        return h("tr", null,
          h("th", null, `${key} ${agg}`),
          values.map((v) => h("td", { class: ["number", v === bestValue ? "best" : null].filter(Boolean).join(" ") }, fmt(v))));
      }),
    );
    statsTable.replaceChildren(
      h("thead", null, h("tr", null, h("th", null, "statistic"), trials.map(header))),
      h("tbody", null, body.length ? body : h("tr", null, h("td", { colspan: trials.length + 1, class: "muted" }, "Name statistics above."))),
    );
  };
  const loadStats = async (chosenHere) => {
    const keys = parseKeys(state.keys).map((k) => k.key);
    if (keys.length) {
      try {
        summary = await getJson("/api/summary", { ids: trials.map((t) => t.id).join(","), keys: keys.join(",") });
        statsError.hidden = true;
        if (chosenHere) {
          // Chosen for the user: only the statistics that hold numbers (not a split's name).
          state.keys = keys.filter((key) => trials.some((t) => summary[t.id]?.[key])).join(", ");
          keysInput.value = state.keys;
          keep();
        }
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        statsError.textContent = error.message;
        statsError.hidden = false;
      }
    }
    if (!alive()) return;
    renderStats();
    renderParallel();
  };
  keysInput.addEventListener("change", () => {
    state.keys = keysInput.value.trim();
    keep();
    loadStats(false);
  });

  // -- parallel coordinates ---------------------------------------------------------------
  const statSelect = h("select", { dataset: { testid: "parallel-stat" }, "aria-label": "statistic" });
  const aggSelect = h("select", { "aria-label": "value" }, AGGREGATES.map((a) => h("option", { value: a }, a)));
  const canvas = h("canvas", { class: "parallel", dataset: { testid: "parallel" } });
  const hoverNote = h("p", { class: "muted", dataset: { testid: "parallel-hover" } }, "Point at a line to see its trial.");
  let drawn = [];
  let hovered = null;
  let paint = () => {};
  const renderParallel = () => {
    const chosen = parseKeys(state.keys);
    const stat = chosen.find((k) => k.key === state.stat) || chosen[0];
    statSelect.replaceChildren(...chosen.map((k) => h("option", { value: k.key }, k.key)));
    if (stat) statSelect.value = stat.key;
    const agg = state.agg || (stat ? stat.best : "last");
    aggSelect.value = agg;
    const axes = differingOptions(trials.map((t) => t.options)).map((name) => ({
      name,
      values: trials.map((t) => t.options[name]),
    }));
    if (stat) axes.push({ name: `${stat.key} ${agg}`, values: trials.map((t) => summary[t.id]?.[stat.key]?.[agg] ?? null) });
    const statScale = stat ? axisScale(axes[axes.length - 1].values) : null;
    const lines = trials.map((t, row) => ({
      label: `${short(t.id)} ${t.info.command}`,
      color: statScale && statScale.kind !== "category" ? rampColor(statScale.at(axes[axes.length - 1].values[row])) : "#1f77b4",
    }));
    paint = () => {
      if (axes.length < 2) {
        canvas.hidden = true;
        hoverNote.textContent = "Parallel coordinates need an option that differs and a statistic.";
        return;
      }
      canvas.hidden = false;
      drawn = drawParallel(canvas, axes, lines, hovered);
    };
    paint();
    canvas.onmousemove = (event) => {
      const box = canvas.getBoundingClientRect();
      const row = nearestLine(drawn, event.clientX - box.left, event.clientY - box.top);
      if (row === hovered) return;
      hovered = row;
      hoverNote.textContent = row === null ? "Point at a line to see its trial." : lines[row].label;
      paint();
    };
    canvas.onclick = () => {
      if (hovered !== null) location.hash = `#/trial/${trials[hovered].id}`;
    };
  };
  statSelect.addEventListener("change", () => {
    state.stat = statSelect.value;
    state.agg = "";
    keep();
    renderParallel();
  });
  aggSelect.addEventListener("change", () => {
    state.agg = aggSelect.value;
    keep();
    renderParallel();
  });
  const observer = new ResizeObserver(() => paint());
  observer.observe(canvas);

  // -- what kleio diff says ---------------------------------------------------------------
  const againstSelect = h("select", { dataset: { testid: "compare-against" }, "aria-label": "against" },
    trials.map((t) => h("option", { value: t.id }, short(t.id))));
  againstSelect.value = state.against;
  const diffs = h("div", { dataset: { testid: "compare-diff" } });
  const loadDiffs = async () => {
    const others = trials.filter((t) => t.id !== state.against);
    diffs.replaceChildren(h("p", { class: "muted" }, "reading…"));
    const results = await Promise.all(
      others.map((t) => getJson("/api/diff", { a: state.against, b: t.id }).catch((error) => ({ error: error.message, b: t.id }))),
    );
    if (!alive()) return;
    diffs.replaceChildren(...results.map((result) => diffBlock(result)));
    if (!others.length) diffs.replaceChildren(h("p", { class: "muted" }, "Choose two trials or more."));
  };
  againstSelect.addEventListener("change", () => {
    state.against = againstSelect.value;
    keep();
    renderOptions();
    loadDiffs();
  });

  root.append(
    h("div", { class: "title" },
      h("h1", null, `Compare ${trials.length} trials`),
      h("div", { class: "actions" }, h("a", { class: "button", href: `#/chart?ids=${trials.map((t) => t.id).join(",")}` }, "Chart them"))),
    h("section", { class: "card" },
      h("h2", null, "Options"),
      h("div", { class: "toolbar" }, h("label", null, allBox, " all options, not only those that differ")),
      h("div", { class: "table-wrap" }, optionsTable)),
    h("section", { class: "card" },
      h("h2", null, "Statistics"),
      h("div", { class: "toolbar" }, h("label", null, "statistics ", keysInput)),
      statsError,
      h("div", { class: "table-wrap" }, statsTable)),
    h("section", { class: "card" },
      h("h2", null, "Parallel coordinates"),
      h("div", { class: "toolbar" }, h("label", null, "statistic ", statSelect), h("label", null, "value ", aggSelect)),
      canvas,
      hoverNote),
    h("section", { class: "card" },
      h("h2", null, "Differences"),
      h("div", { class: "toolbar" }, h("label", null, "against ", againstSelect)),
      diffs),
  );
  renderOptions();
  renderStats();
  keep();
  await Promise.all([loadStats(keysChosenHere), loadDiffs()]);
  return () => observer.disconnect();
}

// `kleio diff A B` as a block: each part's changes, then the code's patch, coloured.
function diffBlock(result) {
  if (result.error) return h("p", { class: "error" }, `${short(result.b)}: ${result.error}`);
  const parts = [
    ["configuration", result.configuration],
    ["code", result.code.changes],
    ["environment", result.environment],
  ];
  return h("details", { open: true, class: "diff-block" },
    h("summary", null, h("code", null, `kleio diff ${result.a} ${result.b}`)),
    parts.map(([title, changes]) =>
      h("div", { class: "diff-part" },
        h("h3", null, title, changes.length ? "" : h("span", { class: "muted" }, ": no difference")),
        changes.length ? h("pre", { class: "changes" }, changes.map((c) => c.replace(/\s+$/, "")).join("\n")) : null)),
    result.code.patch ? renderPatch(result.code.patch) : null);
}
