// The playground: one question to both panes, each answer streamed (server-sent events read from a fetch body).
// Each pane answers on its own: a question waits in that pane's queue only, so a slow pane (a base's long answer)
// never holds the other, and Send stays open. Each pane keeps its own history, so in multi-turn mode each model sees
// its own earlier answers; in single-turn mode (a classification run's default) the server is asked the last
// message alone. Text goes in with textContent only.
"use strict";
(function () {
  const root = document.getElementById("playground");
  const run = root.dataset.run;
  const status = document.getElementById("playground-status");
  const input = document.getElementById("chat-input");
  const send = document.getElementById("send");
  const system = document.getElementById("system-prompt");
  const template = document.getElementById("chat-template");
  const maxTokens = document.getElementById("max-tokens");
  const keepHistory = document.getElementById("playground-history");
  const historyHint = document.getElementById("playground-history-hint");
  const sides = ["tuned", "base"];
  const panes = {tuned: document.getElementById("pane-tuned"), base: document.getElementById("pane-base")};
  // Per pane: the turns it was asked and answered, the questions waiting, and the answer streaming now.
  const state = {};
  for (const side of sides) state[side] = {history: [], queue: [], reader: null, busy: false};
  let runTemplate = "";
  let instruction = "";
  let epoch = 0;  // bumped by Clear: an answer of an earlier epoch is dropped, not added to the new history

  async function load() {
    // A POST with the CSRF token: loading a model changes the server's state, which no GET may do.
    const response = await postJson("/api/playground/load", {run});
    if (!response.ok) { status.textContent = "cannot load the model: " + await errorMessage(response); return; }
    const info = await response.json();
    for (const side of sides) {
      const title = info.titles[side];
      panes[side].querySelector(".model-name").textContent = title.name;
      panes[side].querySelector(".playground-model-detail").textContent = title.detail;
      panes[side].dataset.model = info[side];
    }
    system.value = info.system_prompt;
    template.value = runTemplate = info.template;
    instruction = info.instruction;
    keepHistory.checked = !info.single_turn;
    keepHistory.disabled = false;
    showHint();
    status.textContent = `${info.task} model loaded; greedy decoding.`;
    input.disabled = send.disabled = false;
    root.dataset.ready = "true";
    input.focus();
  }

  function showHint() {
    root.dataset.mode = keepHistory.checked ? "multi-turn" : "single-turn";
    if (keepHistory.checked) {
      historyHint.textContent = "Multi-turn: earlier turns are in the prompt, so each answer depends on the " +
        "conversation so far (a classifier may repeat the label it gave before).";
    } else {
      historyHint.textContent = "Single-turn: each message is answered alone, as evaluation asked each test row; " +
        "earlier turns are not in the prompt." + (instruction ? ` The run's instruction goes before it: “${instruction}”` : "");
    }
  }

  function addTurn(pane, role, text) {
    const turn = document.createElement("div");
    turn.className = "turn " + role;
    turn.textContent = text;
    pane.querySelector(".transcript").appendChild(turn);
    return turn;
  }

  function showState(side) {
    const waiting = state[side].queue.length;
    const pane = panes[side];
    pane.dataset.busy = String(state[side].busy);
    pane.querySelector(".playground-pane-state").textContent =
      state[side].busy ? "answering…" + (waiting ? ` (${waiting} waiting)` : "") : "";
  }

  function submit(question) {
    const singleTurn = !keepHistory.checked;
    for (const side of sides) {
      const user = addTurn(panes[side], "user", question);
      if (singleTurn) user.classList.add("playground-alone");
      const answer = addTurn(panes[side], "assistant", "");
      answer.dataset.state = "queued";
      state[side].queue.push({question, answer, singleTurn, epoch});
      pump(side);
    }
  }

  async function pump(side) {
    // One answer at a time per pane, in order: a multi-turn question needs the pane's previous answer first.
    const pane = state[side];
    if (pane.busy) { showState(side); return; }
    pane.busy = true;
    while (pane.queue.length) {
      const item = pane.queue.shift();
      showState(side);
      if (item.epoch !== epoch) continue;
      try {
        await ask(side, item);
      } catch (error) {  // the request itself failed (the server went away): this answer, not the pane
        item.answer.dataset.state = "error";
        item.answer.textContent = "error: " + error.message;
      }
    }
    pane.busy = false;
    showState(side);
  }

  async function ask(side, {question, answer, singleTurn, epoch: asked}) {
    const pane = state[side];
    answer.dataset.state = "streaming";
    const turn = {role: "user", content: question};
    const response = await postJson("/api/playground/chat", {
      run, side, messages: singleTurn ? [turn] : [...pane.history, turn], single_turn: singleTurn,
      system: system.value, template: template.value === runTemplate ? null : template.value,
      max_tokens: Number(maxTokens.value),
    });
    if (!response.ok) {
      answer.textContent = "error: " + await errorMessage(response);
      answer.dataset.state = "error";
      return;
    }
    if (asked !== epoch) { response.body.cancel(); return; }  // cleared while it was asked: free the row now
    const reader = pane.reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, {stream: true});
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = JSON.parse(buffer.slice(0, end).replace(/^data: /, ""));
          buffer = buffer.slice(end + 2);
          if (event.text !== undefined) { answer.textContent += event.text; continue; }
          answer.dataset.state = event.error ? "error" : "done";
          answer.dataset.tokens = String(event.tokens);
          answer.dataset.promptTokens = String(event.prompt_tokens);
          answer.title = `prompt ${event.prompt_tokens} tokens` + (singleTurn ? " (this message alone)" : "") +
            `; answer ${event.tokens} tokens, ended by ${event.done}`;
        }
      }
    } catch (error) {  // the stream was cancelled (Clear) or broke off
      if (asked === epoch) { answer.dataset.state = "error"; answer.textContent += ` [${error.message}]`; }
      return;
    } finally {
      pane.reader = null;
    }
    if (asked === epoch) pane.history.push(turn, {role: "assistant", content: answer.textContent});
  }

  document.getElementById("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question || send.disabled) return;
    input.value = "";
    submit(question);
    input.focus();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); send.click(); }
  });
  keepHistory.addEventListener("change", showHint);
  document.getElementById("clear").addEventListener("click", () => {
    epoch += 1;
    for (const side of sides) {
      const pane = state[side];
      pane.history = [];
      pane.queue = [];
      if (pane.reader) pane.reader.cancel();  // closing the stream frees the model's row for the next question
      panes[side].querySelector(".transcript").replaceChildren();
      showState(side);
    }
  });
  load();
})();
