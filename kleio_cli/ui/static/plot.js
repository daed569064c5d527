// Charts: curves drawn by uPlot (vendored, global `uPlot`), their smoothing, and the
// parallel-coordinates view drawn on a canvas of its own.

export const PALETTE = [
  "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
  "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
];

export function color(index) {
  return PALETTE[index % PALETTE.length];
}

// Exponential moving average with TensorBoard's debiasing (the first points are not pulled
// towards zero); nulls stay null and do not count.
export function ema(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let mean = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || !Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    mean = mean * weight + (1 - weight) * v;
    count += 1;
    out[i] = mean / (1 - weight ** count);
  }
  return out;
}

// Several curves, each with its own x values, on one x axis (uPlot wants one): joined,
// a curve's missing x values bridged.
export function joined(tables) {
  if (tables.length === 1) return tables[0];
  if (!tables.length) return [[]];
  return uPlot.join(tables);
}

// Values a log axis can show: positive numbers, the rest null.
export function positive(values) {
  return values.map((v) => (v !== null && v !== undefined && v > 0 ? v : null));
}

export function withAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

// A uPlot chart in ``node``: ``series`` [{label, stroke, width, dash, follows}] (follows:
// the index in ``series`` of the one whose legend entry it shares), drag-selecting a
// range of x calls ``onZoom(from, to)`` (the caller fetches it and sets the data) and a
// double-click ``onReset()``; ``range()`` returns [from, to] to pin the x axis (a zoomed
// view), or null.
export function linePlot(node, { width, height, xLabel, yLabel, series, log, time, range, onZoom, onReset }) {
  const zoomable = Boolean(onZoom);
  const options = {
    width,
    height,
    pxAlign: 0,
    scales: {
      x: {
        time: Boolean(time),
        range: (_u, min, max) => (range && range()) || (min === max ? [min - 1, max + 1] : [min, max]),
      },
      y: log ? { distr: 3 } : { auto: true },
    },
    axes: [
      { label: xLabel, labelSize: 20, size: 40, grid: { stroke: "#eee" }, ticks: { stroke: "#ddd" } },
      {
        label: yLabel,
        labelSize: 20,
        size: 64,
        grid: { stroke: "#eee" },
        ticks: { stroke: "#ddd" },
        values: (_u, ticks) => ticks.map(tick),
      },
    ],
    series: [
      { label: xLabel },
      ...series.map((s) => ({
        label: s.label,
        stroke: s.stroke,
        width: s.width || 1.5,
        dash: s.dash,
        spanGaps: true,
        points: { show: false },
        show: s.show !== false,
      })),
    ],
    cursor: {
      drag: { x: zoomable, y: false, setScale: false },
      bind: { dblclick: () => null }, // ours below: a reset fetches the whole range again
    },
    legend: { live: true },
    hooks: {
      setSeries: [
        (u, index, changed) => {
          if (!changed || changed.show === undefined) return;
          series.forEach((s, i) => {
            if (s.follows === index - 1) u.setSeries(i + 1, { show: changed.show });
          });
        },
      ],
      setSelect: [
        (u) => {
          if (!zoomable || u.select.width < 3) return;
          const from = u.posToVal(u.select.left, "x");
          const to = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          onZoom(from, to);
        },
      ],
    },
  };
  const data = [[], ...series.map(() => [])];
  const plot = new uPlot(options, data, node);
  // A series that ``follows`` another (a smoothed curve's raw points) has no legend entry
  // of its own: it shows and hides with the one it follows.
  const rows = plot.root.querySelectorAll(".u-legend .u-series");
  series.forEach((s, i) => {
    if (s.follows !== undefined && rows[i + 1]) rows[i + 1].hidden = true;
  });
  if (onReset) plot.over.addEventListener("dblclick", () => onReset());
  return plot;
}

// -- parallel coordinates ---------------------------------------------------------------

const PAD = { top: 40, bottom: 28, side: 60 };

// A scale of one axis: to [0, 1] (bottom to top), and the labels to write along it.
export function axisScale(values) {
  const present = values.filter((v) => v !== null && v !== undefined);
  const numeric = present.length > 0 && present.every((v) => typeof v === "number" && Number.isFinite(v));
  if (!numeric) {
    const categories = [...new Set(present.map((v) => JSON.stringify(v)))].sort();
    const at = (v) =>
      v === null || v === undefined
        ? null
        : categories.length === 1
          ? 0.5
          : categories.indexOf(JSON.stringify(v)) / (categories.length - 1);
    return {
      kind: "category",
      at,
      ticks: categories.map((c) => [at(JSON.parse(c)), String(JSON.parse(c))]),
    };
  }
  const low = Math.min(...present);
  const high = Math.max(...present);
  const log = low > 0 && high / low >= 100; // a learning-rate sweep spans decades
  const f = log ? Math.log10 : (v) => v;
  if (low === high) {
    const at = (v) => (v === null || v === undefined ? null : 0.5);
    return { kind: "number", at, ticks: [[0.5, low]] };
  }
  const [a, b] = [f(low), f(high)];
  const at = (v) => (v === null || v === undefined || (log && v <= 0) ? null : (f(v) - a) / (b - a));
  return { kind: log ? "log" : "number", at, ticks: [[0, low], [1, high]] };
}

// Draws ``axes`` [{name, values}] and a line per trial of ``lines`` [{label, color}]
// (values[i] of each axis belong to lines[i]); ``hovered`` is drawn on top, thick.
export function drawParallel(canvas, axes, lines, hovered) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  g.font = "12px system-ui, sans-serif";
  const scales = axes.map((axis) => axisScale(axis.values));
  const step = axes.length > 1 ? (width - 2 * PAD.side) / (axes.length - 1) : 0;
  const xs = axes.map((_, i) => PAD.side + i * step);
  const span = height - PAD.top - PAD.bottom;
  const y = (fraction) => PAD.top + (1 - fraction) * span;
  const points = lines.map((_, row) =>
    axes.map((axis, i) => {
      const fraction = scales[i].at(axis.values[row]);
      return fraction === null ? null : [xs[i], y(fraction)];
    }),
  );
  const drawLine = (row, thick) => {
    g.strokeStyle = lines[row].color;
    g.lineWidth = thick ? 3 : 1.5;
    g.globalAlpha = hovered === null || hovered === undefined || thick ? 0.9 : 0.35;
    g.beginPath();
    let drawing = false;
    for (const point of points[row]) {
      if (!point) {
        drawing = false;
        continue;
      }
      if (drawing) g.lineTo(...point);
      else g.moveTo(...point);
      drawing = true;
    }
    g.stroke();
  };
  lines.forEach((_, row) => row !== hovered && drawLine(row, false));
  if (hovered !== null && hovered !== undefined && lines[hovered]) drawLine(hovered, true);
  g.globalAlpha = 1;
  axes.forEach((axis, i) => {
    g.strokeStyle = "#555";
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(xs[i], PAD.top);
    g.lineTo(xs[i], PAD.top + span);
    g.stroke();
    g.fillStyle = "#222";
    g.textAlign = "center";
    g.fillText(axis.name + (scales[i].kind === "log" ? " (log)" : ""), xs[i], PAD.top - 22);
    g.fillStyle = "#555";
    g.textAlign = i === axes.length - 1 && axes.length > 1 ? "right" : "left";
    for (const [fraction, label] of scales[i].ticks) {
      const text = typeof label === "number" ? formatTick(label) : label;
      const dx = g.textAlign === "right" ? -6 : 6;
      g.fillText(text, xs[i] + dx, y(fraction) + 4);
      g.beginPath();
      g.moveTo(xs[i] - 3, y(fraction));
      g.lineTo(xs[i] + 3, y(fraction));
      g.stroke();
    }
  });
  return points;
}

// A tick's label: short, exponent notation for the very small and very large (a log axis).
function tick(value) {
  if (value === null || value === undefined) return "";
  return formatTick(value);
}

function formatTick(value) {
  const size = Math.abs(value);
  if (size !== 0 && (size < 1e-3 || size >= 1e5)) return value.toExponential(2).replace(/\.?0+e/, "e");
  return String(Number(value.toPrecision(4)));
}

// The line of ``points`` (as drawParallel returned them) nearest (x, y), within 8 px.
export function nearestLine(points, x, y) {
  let best = null;
  let bestDistance = 8;
  points.forEach((line, row) => {
    const drawn = line.filter(Boolean);
    for (let i = 1; i < drawn.length; i++) {
      const distance = segmentDistance(x, y, drawn[i - 1], drawn[i]);
      if (distance < bestDistance) {
        bestDistance = distance;
        best = row;
      }
    }
  });
  return best;
}

function segmentDistance(x, y, [x1, y1], [x2, y2]) {
  const dx = x2 - x1;
  const dy = y2 - y1;
  const length = dx * dx + dy * dy;
  const t = length ? Math.max(0, Math.min(1, ((x - x1) * dx + (y - y1) * dy) / length)) : 0;
  return Math.hypot(x - (x1 + t * dx), y - (y1 + t * dy));
}

// A colour for a value between low and high: a viridis-like ramp (dark blue to yellow).
const RAMP = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];

export function rampColor(fraction) {
  if (fraction === null || fraction === undefined || Number.isNaN(fraction)) return "#999";
  const at = Math.max(0, Math.min(1, fraction)) * (RAMP.length - 1);
  const i = Math.min(Math.floor(at), RAMP.length - 2);
  const t = at - i;
  const [a, b] = [RAMP[i], RAMP[i + 1]].map((hex) => parseInt(hex.slice(1), 16));
  const mix = (shift) => Math.round(((a >> shift) & 255) * (1 - t) + ((b >> shift) & 255) * t);
  return `rgb(${mix(16)},${mix(8)},${mix(0)})`;
}
