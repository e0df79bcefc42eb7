// Curves of several runs overlaid: one line per run (training loss, and validation loss).
"use strict";
(async function () {
  const holder = document.getElementById("compare-charts");
  const names = holder.dataset.runs.split(",");
  const all = await Promise.all(names.map((name) => fetchCurves(name).catch(() => ({series: {}}))));
  drawChart(document.getElementById("loss-chart"),
            names.map((name, i) => ({label: name, points: all[i].series.loss || []})), undefined,
            {scale: "auto-log"});  // a first step at ~9 would flatten every curve on a linear axis
  drawChart(document.getElementById("val-chart"),
            names.map((name, i) => ({label: name, points: all[i].series.val_loss || []})), "no validation yet",
            {scale: "auto-log"});
})();
