// The review page: keys 1-4 (or the buttons) judge, u undoes. The server keeps where the reviewer stands, so after
// each change the page reloads and shows the next unjudged item (a reload or another browser resumes the same way).
"use strict";
(function () {
  const root = document.getElementById("review");
  const errorBox = document.getElementById("review-error");
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

  async function send(url, body) {
    if (busy) return;
    busy = true;
    const response = await postJson(url, {run: root.dataset.run, reviewer: root.dataset.reviewer, ...body});
    if (response.ok) { window.location.reload(); return; }
    errorBox.textContent = await errorMessage(response);
    busy = false;
  }

  function judge(verdict) {
    if (!root.dataset.item) return;
    const comment = document.getElementById("comment");
    send("/api/review/judge", {item_id: Number(root.dataset.item), verdict, comment: comment ? comment.value : "",
                               scores_a: scores("a"), scores_b: scores("b")});
  }

  verdicts.forEach((button) => button.addEventListener("click", () => judge(button.dataset.verdict)));
  undoButton.addEventListener("click", () => send("/api/review/undo", {}));
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("textarea, input, select") || event.ctrlKey || event.metaKey || event.altKey) return;
    const index = ["1", "2", "3", "4"].indexOf(event.key);
    if (index >= 0 && verdicts[index]) { event.preventDefault(); judge(verdicts[index].dataset.verdict); }
    if (event.key === "u" && !undoButton.disabled) { event.preventDefault(); send("/api/review/undo", {}); }
  });
  root.dataset.ready = "true";  // keys and buttons answer from here on (the browser tests wait for it)
})();
