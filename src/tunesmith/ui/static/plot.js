// A line chart on a <canvas>, by hand: a few dozen lines do what the pages need (lines against the step, axes,
// ticks, a legend), where a charting library would be the largest file the UI serves and one more thing to pin.
// After drawing, the canvas says what it drew in data-points and data-lines (the browser tests read them).
"use strict";

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04"];

function niceTicks(low, high, count) {
  if (high === low) { high = low + 1; }
  const raw = (high - low) / count;
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  for (let tick = Math.ceil(low / step) * step; tick <= high + step * 1e-9; tick += step) ticks.push(tick);
  return ticks;
}

function formatTick(value) {
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude >= 1e5 || magnitude < 1e-3)) return value.toExponential(1);
  return String(Number(value.toPrecision(4)));
}

// lines: [{label, points: [[x, y], ...], dashed}]
function drawChart(canvas, lines, emptyText) {
  const context = canvas.getContext("2d");
  const width = canvas.width, height = canvas.height;
  const margin = {left: 56, right: 12, top: 12, bottom: 28};
  context.clearRect(0, 0, width, height);
  context.font = "11px system-ui, sans-serif";
  const points = lines.flatMap((line) => line.points);
  canvas.dataset.points = String(points.length);
  canvas.dataset.lines = String(lines.filter((line) => line.points.length).length);
  if (!points.length) {
    context.fillStyle = "#667";
    context.fillText(emptyText || "no data yet", width / 2 - 30, height / 2);
    return;
  }
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  let [xLow, xHigh, yLow, yHigh] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (xLow === xHigh) { xHigh = xLow + 1; }
  const pad = (yHigh - yLow) * 0.05 || Math.abs(yHigh) * 0.05 || 1;
  yLow -= pad; yHigh += pad;
  const x = (value) => margin.left + (value - xLow) / (xHigh - xLow) * (width - margin.left - margin.right);
  const y = (value) => height - margin.bottom - (value - yLow) / (yHigh - yLow) * (height - margin.top - margin.bottom);

  context.strokeStyle = "#e5e8ee"; context.fillStyle = "#556"; context.lineWidth = 1;
  for (const tick of niceTicks(yLow, yHigh, 5)) {
    context.beginPath(); context.moveTo(margin.left, y(tick)); context.lineTo(width - margin.right, y(tick)); context.stroke();
    context.fillText(formatTick(tick), 4, y(tick) + 4);
  }
  for (const tick of niceTicks(xLow, xHigh, 6)) {
    context.fillText(formatTick(tick), x(tick) - 8, height - margin.bottom + 16);
  }
  context.strokeStyle = "#99a"; context.strokeRect(margin.left, margin.top, width - margin.left - margin.right,
                                                   height - margin.top - margin.bottom);
  context.fillText("step", width - margin.right - 26, height - 4);

  lines.forEach((line, index) => {
    const color = PALETTE[index % PALETTE.length];
    context.strokeStyle = color; context.fillStyle = color; context.lineWidth = 1.6;
    context.setLineDash(line.dashed ? [5, 4] : []);
    context.beginPath();
    line.points.forEach(([px, py], i) => (i ? context.lineTo(x(px), y(py)) : context.moveTo(x(px), y(py))));
    context.stroke();
    if (line.points.length === 1) { context.fillRect(x(line.points[0][0]) - 2, y(line.points[0][1]) - 2, 4, 4); }
    context.setLineDash([]);
    context.fillRect(margin.left + 10, margin.top + 8 + index * 14, 12, 3);
    context.fillText(line.label, margin.left + 26, margin.top + 12 + index * 14);
  });
}

async function fetchCurves(name) {
  const response = await fetch("/api/curves/" + name.split("/").map(encodeURIComponent).join("/"),
                               {credentials: "same-origin"});
  if (!response.ok) throw new Error(await errorMessage(response));
  return response.json();
}
