// The labeling page: the annotator's name is asked once and kept in this browser; everything else (which item is
// next, what was done) lives in the queue on the server, so a reload or another browser resumes at the same item.
// Keys: 1-9 pick a label, s skips, u undoes; in the answer box (generation) Enter submits and no key is a shortcut.
// Every text from the queue goes in with textContent: an input holding markup shows its characters and runs nothing.
"use strict";
(function () {
  const NAME_KEY = "tunesmith.annotator";
  const root = document.getElementById("label");
  const $ = (id) => document.getElementById(id);
  const errorBox = $("label-error");
  const undoButton = $("undo");
  const choices = Array.from(document.querySelectorAll("button.label-choice"));
  const answer = $("answer");
  let annotator = localStorage.getItem(NAME_KEY);
  let current = null;  // the item shown
  let busy = false;

  function where() {
    return {run: root.dataset.run, queue: root.dataset.queue, annotator};
  }

  function number(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  }

  function showItem(item) {
    current = item;
    $("item").hidden = !item;
    $("done").hidden = Boolean(item);
    root.dataset.item = item ? String(item.id) : "";
    if (!item) return;
    $("position").textContent = String(item.position);
    $("reason").textContent = item.reason;
    $("input").textContent = item.input;
    const messages = $("messages");
    messages.replaceChildren();
    for (const message of item.messages || []) {
      const turn = document.createElement("div");
      turn.className = `turn ${message.role === "user" ? "user" : "other"}`;
      turn.textContent = `${message.role}: ${typeof message.content === "string" ? message.content
                                                                               : JSON.stringify(message.content)}`;
      messages.appendChild(turn);
    }
    $("conversation").hidden = (item.messages || []).length < 2;
    $("prediction").textContent = item.prediction === null ? "–" : item.prediction;
    $("confidence").textContent = number(item.confidence, 3);
    $("novelty").textContent = number(item.novelty, 3);
    $("teacher").hidden = item.teacher_suggestion === null;
    $("teacher-suggestion").textContent = item.teacher_suggestion || "";
    $("teacher-error").hidden = !item.teacher_error;
    $("teacher-error").textContent = item.teacher_error ? `The teacher gave no suggestion: ${item.teacher_error}` : "";
    if (answer) { answer.value = ""; answer.focus(); }
  }

  function show(standing) {
    showItem(standing.item);
    $("progress").max = Math.max(standing.total, 1);
    $("progress").value = standing.done;
    $("progress-text").textContent = `${standing.done} of ${standing.total} done`;
    undoButton.disabled = standing.done === 0;
    root.dataset.done = String(standing.done);
    root.dataset.ready = "true";  // keys answer from here on (the browser tests wait for it)
  }

  function row(table, cells) {
    const tr = document.createElement("tr");
    cells.forEach((cell, index) => {
      const td = document.createElement("td");
      td.textContent = cell;
      if (index > 0) td.className = "num";
      tr.appendChild(td);
    });
    table.querySelector("tbody").appendChild(tr);
    return tr;
  }

  function percent(share) {
    return `${Math.round(share * 100)}%`;
  }

  // Agreement as `tunesmith label stats` gives it: kappa where defined, the share agreed with its interval, and
  // the number of items it rests on (a figure without its n is not one to act on).
  function agreementText(figures) {
    if (!figures.items) return figures.note || "no item labeled by both";
    const [low, high] = figures.observed_interval;
    const parts = [];
    if (figures.kappa !== null && figures.kappa !== undefined) {
      parts.push(`kappa ${number(figures.kappa, 2)}${figures.method ? ` (${figures.method})` : ""}`);
    }
    parts.push(`${percent(figures.observed)} agree (95% CI ${percent(low)}–${percent(high)})`);
    parts.push(`n = ${figures.items}`);
    return parts.join(" · ") + (figures.note ? ` · ${figures.note}` : "");
  }

  function showStats(stats) {
    const counts = $("annotator-counts");
    counts.querySelector("tbody").replaceChildren();
    for (const [name, done] of Object.entries(stats.annotators)) {
      const cells = [name, String(done.labeled), String(done.skipped)];
      if (stats.teacher) cells.push(agreementText(stats.teacher.agreement[name]));
      row(counts, cells).dataset.annotator = name;
    }
    if (!Object.keys(stats.annotators).length) row(counts, ["nobody yet"]);
    $("agreement").textContent = agreementText(stats.agreement);
    if (stats.teacher && $("teacher-stats")) {
      $("teacher-stats").textContent = `The teacher (${stats.teacher.model}) suggested ${stats.teacher.suggestions} ` +
        `of ${stats.items} items; it gave no usable suggestion for ${stats.teacher.errors}.`;
    }
    $("stats-note").textContent = `${stats.items} items; agreement counts the items every annotator labeled ` +
      "(a skip is no label).";
    root.dataset.statsVersion = String(Number(root.dataset.statsVersion || 0) + 1);
  }

  async function refreshStats() {
    const query = new URLSearchParams({run: root.dataset.run, queue: root.dataset.queue});
    const response = await fetch(`/api/label/stats?${query}`, {credentials: "same-origin"});
    if (response.ok) showStats(await response.json());
  }

  async function load() {
    const response = await fetch(`/api/label/next?${new URLSearchParams(where())}`, {credentials: "same-origin"});
    if (!response.ok) { errorBox.textContent = await errorMessage(response); return; }
    errorBox.textContent = "";
    show(await response.json());
    refreshStats();
  }

  async function send(url, body) {
    if (busy) return;
    busy = true;
    root.dataset.ready = "false";
    try {
      const response = await postJson(url, {...where(), ...body});
      if (response.ok) {
        const standing = await response.json();
        errorBox.textContent = "";
        show(standing);
        // An undone text answer comes back into the box, to be corrected rather than typed again.
        if (answer && standing.undone && standing.undone.value !== null) answer.value = standing.undone.value;
        refreshStats();
      } else {
        const message = await errorMessage(response);
        if (response.status === 409) await load();  // another tab of this annotator moved on: show where they are
        errorBox.textContent = message;
        root.dataset.ready = "true";
      }
    } finally {
      busy = false;
    }
  }

  function annotate(value) {
    if (current && value.trim()) send("/api/label/annotate", {item_id: current.id, value});
  }

  function skip() {
    if (current) send("/api/label/skip", {item_id: current.id});
  }

  function undo() {
    if (!undoButton.disabled) send("/api/label/undo", {});
  }

  function start(name) {
    annotator = name;
    document.activeElement.blur();  // the name field goes away: keys go to the page's shortcuts from here on
    $("who").hidden = true;
    $("work").hidden = false;
    $("annotator").textContent = name;
    load();
  }

  $("who").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("annotator-name").value.trim();
    if (!name) return;
    localStorage.setItem(NAME_KEY, name);
    start(name);
  });
  $("change-name").addEventListener("click", () => {
    localStorage.removeItem(NAME_KEY);
    annotator = null;
    $("work").hidden = true;
    $("who").hidden = false;
    $("annotator-name").focus();
  });
  choices.forEach((button) => button.addEventListener("click", () => annotate(button.dataset.value)));
  if (answer) {
    $("answer-form").addEventListener("submit", (event) => { event.preventDefault(); annotate(answer.value); });
    answer.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        annotate(answer.value);
      }
    });
  }
  $("skip").addEventListener("click", skip);
  undoButton.addEventListener("click", undo);
  document.addEventListener("keydown", (event) => {
    if (!annotator || event.target.closest("textarea, input, select")) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const picked = /^[1-9]$/.test(event.key) ? choices[Number(event.key) - 1] : undefined;
    if (picked) { event.preventDefault(); annotate(picked.dataset.value); }
    else if (event.key === "s") { event.preventDefault(); skip(); }
    else if (event.key === "u") { event.preventDefault(); undo(); }
  });

  if (annotator) start(annotator); else { $("who").hidden = false; $("annotator-name").focus(); }
  refreshStats();
})();
