// A run's curves, polled every few seconds while it trains (metrics.jsonl as it grows), once when it is not.
"use strict";
(function () {
  const charts = document.querySelector(".charts[data-run]");
  const note = document.getElementById("curve-note");
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
    drawChart(document.getElementById("loss-chart"), [{label: "loss", points: series.loss || []},
                                                      {label: "val_loss", points: series.val_loss || [], dashed: true}]);
    const metrics = Object.keys(series).filter((key) => key.startsWith("val_") && key !== "val_loss")
      .map((key) => ({label: key, points: series[key]}));
    drawChart(document.getElementById("val-chart"), metrics, "no validation metrics");
    const steps = (series.loss || []).length;
    note.textContent = curves.status === "running"
      ? `training: ${steps} steps so far, refreshed every ${POLL_MS / 1000} s`
      : `${steps} logged steps`;
    if (curves.status === "running") setTimeout(refresh, POLL_MS);
  }
  refresh();
})();
