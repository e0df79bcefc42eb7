// The playground: one question to both panes, each answer streamed (server-sent events read from a fetch body).
// Each pane keeps its own history, so each model sees its own earlier answers. Text goes in with textContent only.
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
  const panes = {tuned: document.getElementById("pane-tuned"), base: document.getElementById("pane-base")};
  const history = {tuned: [], base: []};
  let runTemplate = "";

  async function load() {
    // A POST with the CSRF token: loading a model changes the server's state, which no GET may do.
    const response = await postJson("/api/playground/load", {run});
    if (!response.ok) { status.textContent = "cannot load the model: " + await errorMessage(response); return; }
    const info = await response.json();
    panes.tuned.querySelector(".model-name").textContent = info.tuned;
    panes.base.querySelector(".model-name").textContent = info.base;
    system.value = info.system_prompt;
    template.value = runTemplate = info.template;
    status.textContent = `${info.task} model loaded; greedy decoding.`;
    input.disabled = send.disabled = false;
    root.dataset.ready = "true";
    input.focus();
  }

  function addTurn(pane, role, text) {
    const turn = document.createElement("div");
    turn.className = "turn " + role;
    turn.textContent = text;
    pane.querySelector(".transcript").appendChild(turn);
    return turn;
  }

  async function ask(side, question) {
    const pane = panes[side];
    history[side].push({role: "user", content: question});
    addTurn(pane, "user", question);
    const answer = addTurn(pane, "assistant", "");
    answer.dataset.state = "streaming";
    const response = await postJson("/api/playground/chat", {
      run, side, messages: history[side], system: system.value,
      template: template.value === runTemplate ? null : template.value, max_tokens: Number(maxTokens.value),
    });
    if (!response.ok) {
      answer.textContent = "error: " + await errorMessage(response);
      answer.dataset.state = "error";
      history[side].pop();
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
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
        answer.title = `${event.tokens} tokens, ended by ${event.done}`;
      }
    }
    history[side].push({role: "assistant", content: answer.textContent});
  }

  document.getElementById("chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question) return;
    input.value = "";
    send.disabled = true;
    await Promise.all([ask("tuned", question), ask("base", question)]);
    send.disabled = false;
    input.focus();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); send.click(); }
  });
  document.getElementById("clear").addEventListener("click", () => {
    for (const side of Object.keys(panes)) {
      history[side] = [];
      panes[side].querySelector(".transcript").replaceChildren();
    }
  });
  load();
})();
