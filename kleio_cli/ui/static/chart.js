// The chart page: a statistic against a key (step, epoch, wall time, or the record's rank)
// for one or many trials overlaid. The server thins each curve to the plot's width in
// pixels (min/max per pixel column); a drag-selected range is asked for again at full
// resolution, a double-click shows everything again. Smoothing and log scale are drawn
// here from the points received.

import { color, ema, joined, linePlot, positive, withAlpha } from "./plot.js";
import {
  ApiError,
  debounce,
  differingOptions,
  fmt,
  fmtNumber,
  getJson,
  h,
  innerWidth,
  keepInHash,
  optionsOf,
  short,
} from "./util.js";

const HEIGHT = 420;
const X_LIKE = ["step", "epoch", "iteration", "iter", "batch", "time", "timestamp", "wall_time", "record"];

export async function chartPage(root, params, { alive }) {
  const ids = (params.get("ids") || "").split(",").filter(Boolean);
  if (!ids.length) return pickTrials(root);
  const found = await Promise.all(
    ids.map(async (id) => {
      try {
        const [info, keys] = await Promise.all([
          getJson(`/api/trials/${encodeURIComponent(id)}`),
          getJson(`/api/trials/${encodeURIComponent(id)}/keys`),
        ]);
        return { id: info.id, info, keys };
      } catch (error) {
        if (!(error instanceof ApiError) || error.status === 401 || error.status === 503) throw error;
        return { id, error: error.message };
      }
    }),
  );
  if (!alive()) return null;
  const trials = found.filter((t) => !t.error);
  const missing = found.filter((t) => t.error);
  const differing = differingOptions(trials.map((t) => optionsOf(t.info.configuration)));
  for (const t of trials) {
    const options = optionsOf(t.info.configuration);
    const shown = differing
      .filter((name) => options[name] !== undefined)
      .map((name) => `${name}=${fmt(options[name])}`)
      .join(" ");
    t.label = shown ? `${short(t.id)} ${shown}` : short(t.id);
  }
  const keys = [...new Set(trials.flatMap((t) => t.keys.keys))];
  const xs = [...new Set(["record", ...trials.flatMap((t) => t.keys.x)])];
  const state = {
    x: params.get("x") || (xs.includes("step") ? "step" : "record"),
    y: params.get("y") || keys.find((k) => !X_LIKE.includes(k)) || keys[0] || "",
    log: params.get("log") === "1",
    smooth: Math.min(0.99, Math.max(0, Number(params.get("smooth")) || 0)),
    where: params.get("where") || "",
    from: numberOrNull(params.get("from")),
    to: numberOrNull(params.get("to")),
  };
  let tables = []; // per trial: [xs, ys] as received
  let plot = null;
  let shape = "";
  let fetching = 0;

  const ySelect = h("select", { dataset: { testid: "chart-y" }, "aria-label": "y" }, keys.map((k) => h("option", { value: k }, k)));
  const xSelect = h("select", { dataset: { testid: "chart-x" }, "aria-label": "x" }, xs.map((k) => h("option", { value: k }, k)));
  ySelect.value = state.y;
  xSelect.value = state.x;
  const logBox = h("input", { type: "checkbox", checked: state.log, dataset: { testid: "chart-log" } });
  const smoothSlider = h("input", {
    type: "range", min: "0", max: "0.99", step: "0.01", value: String(state.smooth),
    dataset: { testid: "chart-smooth" }, "aria-label": "smoothing",
  });
  const smoothValue = h("span", { class: "muted number" }, state.smooth.toFixed(2));
  const whereInput = h("input", {
    type: "search", placeholder: "where: split=val", value: state.where,
    dataset: { testid: "chart-where" }, title: "Only the records matching, as `kleio stats --where`",
  });
  const resetButton = h("button", { type: "button", dataset: { testid: "chart-reset" } }, "Show all");
  const error = h("p", { class: "error", dataset: { testid: "chart-error" }, hidden: true });
  const status = h("span", { class: "muted", dataset: { testid: "chart-status" } });
  const holder = h("div", { class: "plot", dataset: { testid: "chart", points: "0", state: "loading" } });

  root.append(
    h("div", { class: "title" }, h("h1", null, "Chart")),
    h("div", { class: "chips", dataset: { testid: "chart-trials" } },
      trials.map((t, i) =>
        h("span", { class: "chip" },
          h("span", { class: "swatch", style: `background:${color(i)}` }),
          h("a", { href: `#/trial/${t.id}`, title: t.info.command }, t.label),
          trials.length > 1
            ? h("button", {
                type: "button", class: "remove", title: "remove from the chart",
                onclick: () => { location.hash = hashWithout(t.id); },
              }, "×")
            : null)),
      missing.map((t) => h("span", { class: "chip error" }, `${t.id}: ${t.error}`)),
    ),
    h("div", { class: "toolbar" },
      h("label", null, "y ", ySelect),
      h("label", null, "against ", xSelect),
      h("label", null, logBox, " log scale"),
      h("label", null, "smoothing ", smoothSlider, " ", smoothValue),
      whereInput,
      resetButton,
      status,
    ),
    error,
    holder,
    h("p", { class: "muted hint" }, "Drag across the chart to zoom in (read again at full resolution); double-click to show all."),
  );
  if (!trials.length) {
    holder.hidden = true;
    return null;
  }

  const keep = () =>
    keepInHash("/chart", {
      ids: trials.map((t) => t.id).join(","),
      y: state.y,
      x: state.x,
      log: state.log ? "1" : "",
      smooth: state.smooth ? String(state.smooth) : "",
      where: state.where,
      from: state.from ?? "",
      to: state.to ?? "",
    });

  function width() {
    return Math.max(300, Math.floor(innerWidth(holder) || 800));
  }

  async function fetchAll() {
    const current = ++fetching;
    holder.dataset.state = "loading";
    status.textContent = "reading…";
    const where = state.where.split(/\s+/).filter(Boolean);
    const points = width();
    try {
      const got = await Promise.all(
        trials.map((t) =>
          getJson(`/api/trials/${t.id}/statistics`, {
            x: state.x, keys: state.y, points, from: state.from, to: state.to, where,
          }),
        ),
      );
      if (current !== fetching || !alive()) return;
      error.hidden = true;
      tables = got.map((columns) => [columns[state.x] || [], columns[state.y] || []]);
    } catch (failure) {
      if (current !== fetching || !(failure instanceof ApiError)) throw failure;
      error.textContent = failure.message;
      error.hidden = false;
      tables = trials.map(() => [[], []]);
    }
    draw();
  }

  function draw() {
    const smoothing = state.smooth > 0;
    const series = [];
    const parts = [];
    trials.forEach((t, i) => {
      const [xsOf, ysOf] = tables[i] || [[], []];
      const raw = state.log ? positive(ysOf) : ysOf;
      if (smoothing) {
        series.push({ label: `${t.label} (raw)`, stroke: withAlpha(color(i), 0.25), width: 1, follows: series.length + 1 });
        series.push({ label: t.label, stroke: color(i), width: 2 });
        parts.push([xsOf, raw, ema(raw, state.smooth)]);
      } else {
        series.push({ label: t.label, stroke: color(i), width: 1.5 });
        parts.push([xsOf, raw]);
      }
    });
    const data = joined(parts);
    const sample = data[0].find((v) => v !== null && v !== undefined);
    const time = /time/i.test(state.x) && sample > 1e9;
    const signature = JSON.stringify([state.x, state.y, state.log, smoothing, time, series.length]);
    if (!plot || signature !== shape) {
      if (plot) plot.destroy();
      holder.replaceChildren();
      plot = linePlot(holder, {
        width: width(),
        height: HEIGHT,
        xLabel: state.x,
        yLabel: state.y,
        series,
        log: state.log,
        time,
        range: () => (state.from !== null && state.to !== null ? [state.from, state.to] : null),
        onZoom: (from, to) => {
          state.from = from;
          state.to = to;
          keep();
          fetchAll();
        },
        onReset: () => resetZoom(),
      });
      shape = signature;
    }
    plot.setData(data);
    const total = tables.reduce((sum, [xsOf]) => sum + xsOf.length, 0);
    holder.dataset.points = String(total);
    holder.dataset.state = "drawn";
    const zoomed = state.from !== null ? ` · ${state.x} ${fmtNumber(state.from)} to ${fmtNumber(state.to)}` : "";
    status.textContent = `${total} points${zoomed}`;
    resetButton.hidden = state.from === null;
  }

  function resetZoom() {
    if (state.from === null && state.to === null) return;
    state.from = state.to = null;
    keep();
    fetchAll();
  }

  ySelect.addEventListener("change", () => {
    state.y = ySelect.value;
    state.from = state.to = null;
    keep();
    fetchAll();
  });
  xSelect.addEventListener("change", () => {
    state.x = xSelect.value;
    state.from = state.to = null;
    keep();
    fetchAll();
  });
  logBox.addEventListener("change", () => {
    state.log = logBox.checked;
    keep();
    draw();
  });
  smoothSlider.addEventListener("input", () => {
    state.smooth = Number(smoothSlider.value);
    smoothValue.textContent = state.smooth.toFixed(2);
    draw();
  });
  smoothSlider.addEventListener("change", keep);
  whereInput.addEventListener("change", () => {
    state.where = whereInput.value.trim();
    keep();
    fetchAll();
  });
  resetButton.addEventListener("click", resetZoom);

  let lastWidth = width();
  const refit = debounce(() => {
    if (!plot || !alive()) return;
    const now = width();
    if (now === lastWidth) return;
    plot.setSize({ width: now, height: HEIGHT });
    if (now > lastWidth * 1.2) fetchAll(); // more pixels: more points
    lastWidth = now;
  }, 200);
  const observer = new ResizeObserver(refit);
  observer.observe(holder);

  keep();
  await fetchAll();
  return () => {
    fetching += 1;
    observer.disconnect();
    if (plot) plot.destroy();
  };
}

function pickTrials(root) {
  const input = h("input", { type: "search", class: "wide", placeholder: "trial ids or prefixes, comma-separated" });
  const go = () => {
    const ids = input.value.split(/[\s,]+/).filter(Boolean);
    if (ids.length) location.hash = `#/chart?ids=${ids.join(",")}`;
  };
  input.addEventListener("change", go);
  root.append(
    h("h1", null, "Chart"),
    h("p", null, "Select trials on the ", h("a", { href: "#/" }, "trials page"), " and press Chart, or name them here:"),
    h("div", { class: "toolbar" }, input, h("button", { type: "button", onclick: go }, "Chart")),
  );
  return null;
}

function hashWithout(id) {
  const [path, query] = location.hash.split("?");
  const params = new URLSearchParams(query || "");
  const ids = (params.get("ids") || "").split(",").filter((one) => one && !id.startsWith(one));
  params.set("ids", ids.join(","));
  params.delete("from");
  params.delete("to");
  return `${path}?${params.toString().replaceAll("%2C", ",")}`;
}

function numberOrNull(text) {
  if (text === null || text === "") return null;
  const value = Number(text);
  return Number.isFinite(value) ? value : null;
}
