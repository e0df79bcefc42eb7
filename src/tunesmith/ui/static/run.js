// A run's curves, polled every few seconds while it trains (metrics.jsonl as it grows), once when it is not.
// The note under them (step 12 of 200, about 3 minutes left) is the server's: /api/curves says it.
"use strict";
(function () {
  const charts = document.querySelector(".charts[data-run]");
  const note = document.getElementById("curve-note");
  const caption = document.getElementById("loss-caption");
  const validationFigure = document.getElementById("val-figure");
  const extraFigures = document.querySelectorAll("figure.extra-chart");
  const words = (text) => (text ? text.split(" ") : []);
  const POLL_MS = 3000;

  async function refresh() {
    let curves;
    try {
      curves = await fetchCurves(charts.dataset.run);
    } catch (error) {
      note.textContent = "curves unavailable: " + error.message;
      return;
    }
    const series = curves.series;
    const loss = document.getElementById("loss-chart");
    drawChart(loss, [{label: "loss", points: series.loss || []},
                     {label: "val_loss", points: series.val_loss || [], dashed: true, markers: true}],
              undefined, {scale: "auto-log"});
    loss.closest("figure").hidden = !loss.chart.lines.some((line) => line.pixels.length);  // nothing logged yet
    caption.textContent = "loss" + (loss.dataset.scale === "log" ? " (log scale)" : "")
      + ": training (per step) and validation (dashed, each point marked)";
    // A preference run's rewards and accuracy: each chart names its series (the page has them from the server).
    const charted = new Set();
    for (const figure of extraFigures) {
      const steps = words(figure.dataset.steps), validations = words(figure.dataset.validations);
      const lines = steps.map((key) => ({label: key, points: series[key] || []}))
        .concat(validations.map((key) => ({label: key, points: series[key] || [], dashed: true, markers: true})));
      steps.concat(validations).forEach((key) => charted.add(key));
      figure.hidden = !lines.some((line) => line.points.length);
      if (!figure.hidden) drawChart(figure.querySelector("canvas"), lines);
    }
    const metrics = Object.keys(series)
      .filter((key) => key.startsWith("val_") && key !== "val_loss" && !charted.has(key))
      .map((key) => ({label: key, points: series[key], markers: true}));
    // No empty chart: the validation metrics' figure shows once there is one to draw.
    validationFigure.hidden = !metrics.length;
    if (metrics.length) drawChart(document.getElementById("val-chart"), metrics);
    note.textContent = curves.status === "running"
      ? `training: ${curves.note}; refreshed every ${POLL_MS / 1000} s`
      : curves.note;
    if (curves.status === "running") setTimeout(refresh, POLL_MS);
  }
  refresh();
})();
