// What every page's script shares: a JSON POST that carries the session's CSRF token, and one error message.
"use strict";

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrfToken()},
    body: JSON.stringify(body),
  });
  return response;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error || body.detail || JSON.stringify(body);
  } catch (error) {
    return `${response.status} ${response.statusText}`;
  }
}
