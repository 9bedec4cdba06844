// The reviewers' page: sign in (Cognito managed login, authorization code with PKCE), see how many
// tasks wait, claim the next, answer it, submit or skip it; the lease is renewed while the reviewer
// works. The task arrives rendered by the API from the A2I templates (every value escaped there);
// this script only inserts it. Served with a CSP that allows no inline script or style.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const store = window.sessionStorage;
  let config = null;
  let current = null; // {taskId, leaseExpiresAt, leaseSeconds, rows}
  let renewTimer = null;
  let activeSinceRenewal = false;

  // -- sign-in -----------------------------------------------------------------------------

  const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const randomString = () => b64url(crypto.getRandomValues(new Uint8Array(32)));

  async function signIn() {
    const verifier = randomString();
    const state = randomString();
    store.setItem("pkce_verifier", verifier);
    store.setItem("pkce_state", state);
    const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    const query = new URLSearchParams({
      response_type: "code", client_id: config.clientId, redirect_uri: config.redirectUri,
      scope: config.scopes || "openid", state, code_challenge: challenge, code_challenge_method: "S256",
    });
    window.location.assign(`${config.domain}/oauth2/authorize?${query}`);
  }

  async function finishSignIn(params) {
    const verifier = store.getItem("pkce_verifier");
    const expected = store.getItem("pkce_state");
    store.removeItem("pkce_verifier");
    store.removeItem("pkce_state");
    window.history.replaceState(null, "", config.redirectUri);
    if (!verifier || params.get("state") !== expected) throw new Error("the sign-in answer does not match this page's request: sign in again");
    const response = await fetch(`${config.domain}/oauth2/token`, {
      method: "POST",
      headers: {"Content-Type": "application/x-www-form-urlencoded"},
      body: new URLSearchParams({grant_type: "authorization_code", client_id: config.clientId, code: params.get("code"),
                                 redirect_uri: config.redirectUri, code_verifier: verifier}),
    });
    if (!response.ok) throw new Error(`sign-in failed (${response.status})`);
    const tokens = await response.json();
    store.setItem("access_token", tokens.access_token);
    store.setItem("token_expires", String(Date.now() + tokens.expires_in * 1000));
  }

  function token() {
    const value = store.getItem("access_token");
    return value && Number(store.getItem("token_expires")) > Date.now() + 30_000 ? value : null;
  }

  function claims() {
    try {
      return JSON.parse(atob(token().split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    } catch (error) {
      return {};
    }
  }

  function signOut() {
    store.clear();
    const query = new URLSearchParams({client_id: config.clientId, logout_uri: config.redirectUri});
    window.location.assign(`${config.domain}/logout?${query}`);
  }

  // -- the API -----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super(body.message || `the server answered ${status}`);
      this.status = status;
      this.field = body.field;
    }
  }

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: {Authorization: `Bearer ${token()}`, ...(body ? {"Content-Type": "application/json"} : {})},
      body: body ? JSON.stringify(body) : undefined,
    });
    const answer = await response.json().catch(() => ({}));
    if (response.status === 401) {
      store.removeItem("access_token");
      showSignIn("Your session ended: sign in again.");
    }
    if (!response.ok) throw new ApiError(response.status, answer);
    return answer;
  }

  // -- the page ----------------------------------------------------------------------------

  function say(text, error = false) {
    $("status").textContent = text;
    $("status").classList.toggle("error", error);
  }

  function showSignIn(text) {
    $("task").hidden = true;
    $("next").hidden = true;
    $("sign-out").hidden = true;
    $("sign-in").hidden = false;
    $("waiting").textContent = text;
  }

  async function refreshCount() {
    const {waiting} = await api("GET", "/api/tasks");
    $("waiting").textContent = waiting === 1 ? "1 task waits for review." : `${waiting} tasks wait for review.`;
    $("next").disabled = current !== null;
  }

  // Each attribution bar's width comes as data (the API turns the templates' style attribute,
  // which this page's CSP would not apply, into data-width) and is set through the CSSOM.
  function sizeBars(root) {
    for (const bar of root.querySelectorAll(".bar[data-width]")) {
      const width = Number(bar.dataset.width);
      if (Number.isFinite(width)) bar.style.width = `${Math.min(100, Math.max(0, width))}%`;
    }
  }

  // Agreeing keeps the model's label: a record's label choice is offered (and required) only once
  // its reviewer chooses Disagree. A disabled input is not part of the form's data.
  function labelChoice(key) {
    const first = document.getElementsByName(`${key}-label`)[0];
    return first ? first.closest("fieldset") : null;
  }

  function showLabelChoice(key) {
    const fieldset = labelChoice(key);
    if (!fieldset) return;
    const verdict = new FormData($("task")).get(`${key}-verdict`);
    const disagree = verdict === "disagree";
    fieldset.hidden = !disagree;
    for (const input of fieldset.querySelectorAll("input")) {
      input.disabled = !disagree;
      input.required = disagree;
      if (!disagree) input.checked = false;
    }
  }

  function prepareAnswers(rows) {
    for (const key of rows) {
      showLabelChoice(key);
      for (const input of document.getElementsByName(`${key}-verdict`)) {
        input.addEventListener("change", () => showLabelChoice(key));
      }
    }
  }

  // A refused answer is said next to its field, which is scrolled into view and focused (the
  // status line at the top may be far above).
  function clearFieldErrors() {
    for (const error of $("task-body").querySelectorAll(".field-error")) error.remove();
    for (const input of $("task-body").querySelectorAll("[aria-invalid]")) {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    }
  }

  function showFieldError(field, message) {
    const inputs = [...document.getElementsByName(field)].filter((input) => $("task-body").contains(input));
    if (inputs.length === 0) return false;
    const group = inputs[0].closest("fieldset") || inputs[0].closest("p") || inputs[0];
    group.hidden = false;
    for (const input of inputs) input.disabled = false;
    const error = document.createElement("p");
    error.className = "field-error";
    error.id = `${field}-error`;
    error.setAttribute("role", "alert");
    error.textContent = message;
    group.after(error);
    for (const input of inputs) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", error.id);
      input.addEventListener("change", () => { error.remove(); input.removeAttribute("aria-invalid"); }, {once: true});
    }
    group.scrollIntoView({block: "center"});
    inputs[0].focus({preventScroll: true});
    return true;
  }

  function leaseText() {
    if (!current) return;
    const until = new Date(current.leaseExpiresAt * 1000);
    $("lease").textContent = `This task is yours until ${until.toLocaleTimeString()}; it is renewed while you work.`;
  }

  function show(task) {
    current = {taskId: task.taskId, leaseExpiresAt: task.leaseExpiresAt, leaseSeconds: task.leaseSeconds, rows: task.rows};
    store.setItem("task", task.taskId); // a reload comes back to it while the lease lasts
    const body = $("task-body");
    body.innerHTML = task.html; // the API's rendering of the A2I templates, every value escaped there
    sizeBars(body);
    prepareAnswers(task.rows);
    $("task-id").textContent = task.taskId;
    $("task").hidden = false;
    $("next").disabled = true;
    leaseText();
    activeSinceRenewal = false;
    clearInterval(renewTimer);
    // Renew a little after a third of the lease (the API takes a renewal at most every third),
    // and only while the reviewer is working on the page.
    renewTimer = setInterval(renew, Math.max(10, task.leaseSeconds / 3 + 5) * 1000);
    $("task-title").focus();
  }

  function close(text, error = false) {
    clearInterval(renewTimer);
    current = null;
    store.removeItem("task");
    $("task").hidden = true;
    $("task-body").replaceChildren();
    say(text, error);
    $("next").disabled = false;
    refreshCount().catch((e) => say(e.message, true));
    $("next").focus();
  }

  async function next() {
    say("");
    $("next").disabled = true;
    try {
      const {task} = await api("POST", "/api/tasks/next");
      if (task) {
        show(task);
        refreshCount().catch((e) => say(e.message, true)); // the claimed task no longer waits
      } else {
        close("No task is waiting for you now.");
      }
    } catch (error) {
      $("next").disabled = false;
      say(error.message, true);
    }
  }

  async function renew() {
    if (!current || !activeSinceRenewal) return;
    activeSinceRenewal = false;
    try {
      const {leaseExpiresAt} = await api("POST", `/api/tasks/${encodeURIComponent(current.taskId)}/renew`);
      current.leaseExpiresAt = leaseExpiresAt;
      leaseText();
    } catch (error) {
      if (error.status === 409) close(`${error.message}`, true);
      else if (error.status === 429) activeSinceRenewal = true; // renewed lately: the next tick tries again
    }
  }

  function answers() {
    const form = new FormData($("task"));
    const values = {};
    for (const key of current.rows) {
      for (const part of ["verdict", "label", "reason"]) {
        const value = form.get(`${key}-${part}`);
        if (value !== null && value !== "") values[`${key}-${part}`] = String(value);
      }
    }
    return values;
  }

  async function submit(event) {
    event.preventDefault();
    if (!current) return;
    clearFieldErrors();
    if (!$("task").reportValidity()) return;
    $("submit").disabled = true;
    try {
      await api("POST", `/api/tasks/${encodeURIComponent(current.taskId)}/answers`, {answers: answers()});
      close("Thank you: your answers are saved.");
    } catch (error) {
      if (error.status === 400 && error.field) {
        say(`Your answers were not saved. ${error.message}`, true);
        showFieldError(error.field, error.message);
      } else if (error.status === 409) {
        close(error.message, true);
      } else {
        say(error.message, true);
      }
    } finally {
      $("submit").disabled = false;
    }
  }

  async function release() {
    if (!current) return;
    try {
      await api("POST", `/api/tasks/${encodeURIComponent(current.taskId)}/release`);
      close("Task skipped: another reviewer can take it.");
    } catch (error) {
      close(error.message, error.status !== 409);
    }
  }

  async function start() {
    config = await (await fetch("config.json", {cache: "no-store"})).json();
    $("sign-in").addEventListener("click", () => signIn().catch((e) => say(e.message, true)));
    $("sign-out").addEventListener("click", signOut);
    $("next").addEventListener("click", next);
    $("release").addEventListener("click", release);
    $("task").addEventListener("submit", submit);
    for (const type of ["input", "change", "keydown", "pointerdown"]) {
      $("task").addEventListener(type, () => { activeSinceRenewal = true; });
    }
    const params = new URLSearchParams(window.location.search);
    if (params.has("code")) await finishSignIn(params);
    if (!token()) {
      if (params.has("error")) return showSignIn(`Sign-in failed: ${params.get("error")}`);
      return signIn();
    }
    const who = claims();
    $("who").textContent = `Signed in as ${who.username || who.sub || "a reviewer"}`;
    $("sign-out").hidden = false;
    $("next").hidden = false;
    await refreshCount();
    $("next").disabled = false;
    const held = store.getItem("task");
    if (held) {
      try {
        show((await api("GET", `/api/tasks/${encodeURIComponent(held)}`)).task);
      } catch (error) {
        store.removeItem("task"); // released, answered or expired meanwhile
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => start().catch((error) => say(error.message, true)));
})();
