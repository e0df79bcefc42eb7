// The review page: keys 1-4 (or the buttons) judge, u undoes. The server keeps where the reviewer stands, so after
// each change the page loads again and shows the next unjudged item (a reload or another browser resumes the same
// way), with ?saved=<item> (or ?undone=<item>) so it confirms what was stored. A 409 means this page is stale (the
// item was judged or the verdict undone in another tab): the message says so and a button reloads.
"use strict";
(function () {
  const root = document.getElementById("review");
  const errorBox = document.getElementById("review-error");
  const reloadButton = document.getElementById("review-reload");
  const undoButton = document.getElementById("undo");
  const verdicts = Array.from(document.querySelectorAll("button.verdict"));
  let busy = false;

  function scores(side) {
    const picked = {};
    for (const select of document.querySelectorAll(`select[data-side="${side}"]`)) {
      if (select.value) picked[select.dataset.key] = Number(select.value);
    }
    return picked;
  }

  function show(query) {
    window.location.replace(`${window.location.pathname}?${query}`);
  }

  async function send(url, body, after) {
    if (busy) return;
    busy = true;
    const response = await postJson(url, {run: root.dataset.run, reviewer: root.dataset.reviewer, ...body});
    if (response.ok) { show(after(await response.json())); return; }
    errorBox.textContent = await errorMessage(response);
    reloadButton.hidden = response.status !== 409;
    busy = false;
  }

  function judge(verdict) {
    if (!root.dataset.item) return;
    const comment = document.getElementById("comment");
    const item = Number(root.dataset.item);
    send("/api/review/judge", {item_id: item, verdict, comment: comment ? comment.value : "",
                               scores_a: scores("a"), scores_b: scores("b")}, () => `saved=${item}`);
  }

  function undo() {
    send("/api/review/undo", {}, (body) => `undone=${body.undone}`);
  }

  verdicts.forEach((button) => button.addEventListener("click", () => judge(button.dataset.verdict)));
  undoButton.addEventListener("click", undo);
  reloadButton.addEventListener("click", () => window.location.assign(window.location.pathname));
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("textarea, input, select") || event.ctrlKey || event.metaKey || event.altKey) return;
    const index = ["1", "2", "3", "4"].indexOf(event.key);
    if (index >= 0 && verdicts[index]) { event.preventDefault(); judge(verdicts[index].dataset.verdict); }
    if (event.key === "u" && !undoButton.disabled) { event.preventDefault(); undo(); }
  });
  root.dataset.ready = "true";  // keys and buttons answer from here on (the browser tests wait for it)
})();
