// A line chart on a <canvas>, by hand: a few dozen lines do what the pages need (lines against the step, axes,
// ticks, a legend), where a charting library would be the largest file the UI serves and one more thing to pin.
// After drawing, the canvas says what it drew in data-points, data-lines and data-scale, and its `chart` property
// holds the plot's box and each line's points in canvas pixels (the browser tests read them).
"use strict";

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04"];
// A loss axis turns logarithmic when its largest value is more than this many times its smallest: after a first
// step at 9, a linear axis leaves the rest of a run, and its validation points, flat on the floor of the plot.
// The report's loss plot uses the same rule (tunesmith.report.plots.LOG_SCALE_RATIO).
const LOG_SCALE_RATIO = 10;

function niceTicks(low, high, count) {
  if (high === low) { high = low + 1; }
  const raw = (high - low) / count;
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  for (let tick = Math.ceil(low / step) * step; tick <= high + step * 1e-9; tick += step) ticks.push(tick);
  return ticks;
}

// Powers of ten between low and high (both above 0), with 2x and 5x between them when the range spans few decades.
function logTicks(low, high) {
  const first = Math.floor(Math.log10(low)), last = Math.ceil(Math.log10(high));
  const multiples = last - first <= 2 ? [1, 2, 5] : [1];
  const ticks = [];
  for (let power = first; power <= last; power++) {
    for (const m of multiples) {
      const tick = m * Math.pow(10, power);
      if (tick >= low * (1 - 1e-9) && tick <= high * (1 + 1e-9)) ticks.push(tick);
    }
  }
  return ticks;
}

function formatTick(value) {
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude >= 1e5 || magnitude < 1e-3)) return value.toExponential(1);
  return String(Number(value.toPrecision(4)));
}

// "log" when options.scale is "auto-log" and every value is above 0 and they span more than LOG_SCALE_RATIO.
function chooseScale(values, wanted) {
  if (wanted !== "auto-log" || !values.length || values.some((v) => v <= 0)) return "linear";
  return Math.max(...values) > LOG_SCALE_RATIO * Math.min(...values) ? "log" : "linear";
}

// lines: [{label, points: [[x, y], ...], dashed, markers}]; options: {scale: "linear" (default) or "auto-log"}.
// A line with markers (validation values, logged every few hundred steps) has each point drawn as a dot.
function drawChart(canvas, lines, emptyText, options) {
  const context = canvas.getContext("2d");
  const width = canvas.width, height = canvas.height;
  const margin = {left: 56, right: 12, top: 12, bottom: 28};
  const box = {left: margin.left, top: margin.top, right: width - margin.right, bottom: height - margin.bottom};
  context.clearRect(0, 0, width, height);
  context.font = "11px system-ui, sans-serif";
  const points = lines.flatMap((line) => line.points);
  canvas.dataset.points = String(points.length);
  canvas.dataset.lines = String(lines.filter((line) => line.points.length).length);
  canvas.chart = {plot: box, scale: null, lines: []};
  if (!points.length) {
    context.fillStyle = "#667";
    context.fillText(emptyText || "no data yet", width / 2 - 30, height / 2);
    return;
  }
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const scale = chooseScale(ys, (options || {}).scale);
  canvas.dataset.scale = scale;
  canvas.chart.scale = scale;
  let [xLow, xHigh] = [Math.min(...xs), Math.max(...xs)];
  if (xLow === xHigh) { xHigh = xLow + 1; }
  // On a log axis the values are placed by their logarithm; the ticks are still labelled with the values.
  const toAxis = scale === "log" ? Math.log10 : (value) => value;
  let [yLow, yHigh] = [Math.min(...ys.map(toAxis)), Math.max(...ys.map(toAxis))];
  const pad = (yHigh - yLow) * 0.05 || Math.abs(yHigh) * 0.05 || 1;
  yLow -= pad; yHigh += pad;
  const x = (value) => box.left + (value - xLow) / (xHigh - xLow) * (box.right - box.left);
  const y = (value) => box.bottom - (toAxis(value) - yLow) / (yHigh - yLow) * (box.bottom - box.top);

  context.strokeStyle = "#e5e8ee"; context.fillStyle = "#556"; context.lineWidth = 1;
  const yTicks = scale === "log" ? logTicks(Math.pow(10, yLow), Math.pow(10, yHigh)) : niceTicks(yLow, yHigh, 5);
  for (const tick of yTicks) {
    context.beginPath(); context.moveTo(box.left, y(tick)); context.lineTo(box.right, y(tick)); context.stroke();
    context.fillText(formatTick(tick), 4, y(tick) + 4);
  }
  for (const tick of niceTicks(xLow, xHigh, 6)) {
    context.fillText(formatTick(tick), x(tick) - 8, height - margin.bottom + 16);
  }
  context.strokeStyle = "#99a"; context.strokeRect(box.left, box.top, box.right - box.left, box.bottom - box.top);
  context.fillText("step", box.right - 26, height - 4);
  if (scale === "log") context.fillText("log scale", 4, height - 4);

  // The legend at the top right: on a falling loss curve the top left is where the first steps are.
  const legendLeft = box.right - 10 - Math.max(...lines.map((line) => context.measureText(line.label).width)) - 18;
  lines.forEach((line, index) => {
    const color = PALETTE[index % PALETTE.length];
    const pixels = line.points.map(([px, py]) => [x(px), y(py)]);
    canvas.chart.lines.push({label: line.label, color: color, pixels: pixels});
    context.strokeStyle = color; context.fillStyle = color; context.lineWidth = 1.6;
    context.setLineDash(line.dashed ? [5, 4] : []);
    context.beginPath();
    pixels.forEach(([px, py], i) => (i ? context.lineTo(px, py) : context.moveTo(px, py)));
    context.stroke();
    context.setLineDash([]);
    if (line.markers || pixels.length === 1) {
      for (const [px, py] of pixels) {
        context.beginPath(); context.arc(px, py, 3.5, 0, 2 * Math.PI); context.fill();
      }
    }
    context.fillRect(legendLeft, box.top + 8 + index * 14, 12, 3);
    context.fillText(line.label, legendLeft + 16, box.top + 12 + index * 14);
  });
}

async function fetchCurves(name) {
  const response = await fetch("/api/curves/" + name.split("/").map(encodeURIComponent).join("/"),
                               {credentials: "same-origin"});
  if (!response.ok) throw new Error(await errorMessage(response));
  return response.json();
}
