// The cai labeling page: ask for a task, show it, send the pick, repeat.
// Every pick is stored by the server before the next task is shown; the page holds no state
// worth keeping, so reloading it (or restarting the server) resumes where the labeling stands.
// The only thing it remembers is which tasks this rater labeled since the page opened, for undo.
"use strict";

const NAME_KEY = "cai-humans-labeler";
const $ = (id) => document.getElementById(id);
const state = { labeler: "", task: null, shownAt: 0, busy: false, lease: 120, poll: null, heartbeat: null,
                history: [] };

function setState(name, message) {
  document.body.dataset.state = name;
  $("status").textContent = message || "";
}

function setProgress(p) {
  if (!p) return;
  let text = `${p.labeled} of ${p.total} labeled`;
  if (p.raters_per_task > 1) text += ` by ${p.raters_per_task} raters`;
  if (state.labeler) text += ` · ${p.mine} by you`;
  if (p.skipped) text += ` · ${p.skipped} skipped`;
  $("progress").textContent = text;
  $("unskip").hidden = !p.skipped;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  init.cache = "no-store";
  const response = await fetch(path, init);
  let data = {};
  try { data = await response.json(); } catch (e) { /* plain-text errors */ }
  return { ok: response.ok, status: response.status, data };
}

function renderMessages(container, messages) {
  container.replaceChildren();
  for (const m of messages) {
    const box = document.createElement("div");
    box.className = `msg ${m.role}`;
    const role = document.createElement("div");
    role.className = "role";
    role.textContent = m.role === "user" ? "Human" : m.role === "assistant" ? "Assistant" : "System";
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = m.content;  // never innerHTML: the text is data
    box.append(role, text);
    container.append(box);
  }
}

function showGuideline(g) {
  $("guideline").hidden = !g;
  if (!g) return;
  $("guideline-title").textContent = g.title;
  // Markdown rendered by the server with raw HTML escaped; the page's CSP allows no inline script.
  $("guideline-text").innerHTML = g.html;
  $("guideline-link").href = `guidelines/${encodeURIComponent(g.hash)}`;
}

function show(task) {
  state.task = task;
  state.shownAt = performance.now();
  $("comment").value = "";
  showGuideline(task.guideline);
  $("task").dataset.taskId = task.id;
  $("task").dataset.n = task.n;
  renderMessages($("conversation"), task.prompt);
  renderMessages($("response-a").querySelector(".body"), task.a);
  renderMessages($("response-b").querySelector(".body"), task.b);
  $("task").hidden = false;
  setBusy(false);
  setState("task", "");
  window.scrollTo(0, 0);
}

function setBusy(busy) {
  state.busy = busy;
  for (const id of ["pick-a", "pick-b", "pick-tie", "skip", "undo"]) $(id).disabled = busy;
  $("undo").hidden = state.history.length === 0;
}

function stopTimers() {
  clearTimeout(state.poll);
  state.poll = null;
}

function noTask(progress) {
  state.task = null;
  $("task").hidden = true;
  delete $("task").dataset.taskId;
  setBusy(false);
  const left = progress.total - progress.labeled;
  if (left === 0) {
    setState("done", `All ${progress.total} tasks are labeled. Thank you!`);
  } else if (progress.left_for_me === progress.skipped && progress.skipped) {
    setState("done", `Only tasks you skipped are left (${progress.skipped}).`);
  } else if (progress.left_for_me === 0) {
    setState("done", `You have labeled every task you can; the ${left} left wait for other raters. Thank you!`);
  } else {
    setState("waiting", `The ${left} unlabeled tasks are with other labelers right now; checking again shortly…`);
    state.poll = setTimeout(next, 3000);
  }
}

async function next() {
  stopTimers();
  if (!state.labeler) {
    $("task").hidden = true;
    setState("name", "Type your name above to start labeling.");
    $("labeler").focus();
    return;
  }
  setBusy(true);
  let r;
  try {
    r = await api(`api/next?labeler=${encodeURIComponent(state.labeler)}`);
  } catch (e) {
    setState("error", "The server does not answer. Reload the page when it is back.");
    return;
  }
  if (!r.ok) {
    setState("error", r.data.error || `Error ${r.status}`);
    return;
  }
  setProgress(r.data.progress);
  if (r.data.task) show(r.data.task);
  else noTask(r.data.progress);
}

async function send(path, body) {
  if (!state.task || state.busy) return;
  setBusy(true);
  setState("saving", "Saving…");
  let r;
  try {
    r = await api(path, { labeler: state.labeler, task: state.task.id, ...body });
  } catch (e) {
    setBusy(false);
    setState("error", "Not saved: the server does not answer. Try again when it is back.");
    return;
  }
  if (r.ok && path === "api/label" && r.data.stored) state.history.push(state.task.id);
  if (r.status === 409) {
    setState("conflict", `${r.data.error}; here is another one.`);
  } else if (!r.ok) {
    setBusy(false);
    setState("error", `Not saved: ${r.data.error || "error " + r.status}`);
    return;
  }
  setProgress(r.data.progress);
  await next();
}

function pick(choice) {
  const seconds = (performance.now() - state.shownAt) / 1000;
  return send("api/label", { choice, seconds: Math.round(seconds * 10) / 10, comment: $("comment").value });
}

async function undo() {
  // Takes back this rater's own last label of this page session and shows that task again.
  if (state.busy || !state.history.length) return;
  stopTimers();
  setBusy(true);
  const id = state.history.pop();
  let r;
  try {
    r = await api("api/undo", { labeler: state.labeler, task: id });
  } catch (e) {
    state.history.push(id);
    setBusy(false);
    setState("error", "Not undone: the server does not answer. Try again when it is back.");
    return;
  }
  if (!r.ok) {
    if (r.status !== 409) state.history.push(id);
    setBusy(false);
    setState("error", `Not undone: ${r.data.error || "error " + r.status}`);
    return;
  }
  setProgress(r.data.progress);
  show(r.data.task);
  setState("task", "Your last label was undone: pick again.");
}

async function heartbeat() {
  if (state.task && !state.busy) {
    try { await api("api/renew", { labeler: state.labeler, task: state.task.id }); } catch (e) { /* next pick tells */ }
  }
}

function useName(name) {
  name = name.trim();
  if (name === state.labeler) return;
  state.labeler = name;
  state.history = [];
  if (name) localStorage.setItem(NAME_KEY, name);
  next();
}

async function start() {
  $("pick-a").addEventListener("click", () => pick("A"));
  $("pick-b").addEventListener("click", () => pick("B"));
  $("pick-tie").addEventListener("click", () => pick("tie"));
  $("skip").addEventListener("click", () => send("api/skip", {}));
  $("undo").addEventListener("click", undo);
  $("unskip").addEventListener("click", async () => {
    await api("api/unskip", { labeler: state.labeler });
    next();
  });
  $("labeler").addEventListener("change", (e) => useName(e.target.value));
  $("labeler").addEventListener("keydown", (e) => { if (e.key === "Enter") e.target.blur(); });
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.target.closest("input, textarea")) return;
    const action = { a: () => pick("A"), b: () => pick("B"), t: () => pick("tie"), s: () => send("api/skip", {}), u: undo }[e.key.toLowerCase()];
    if (action) { e.preventDefault(); action(); }
  });
  let config = { labeler: "", lease_seconds: 120 };
  try {
    const r = await api("api/config");
    if (r.ok) config = r.data;
  } catch (e) { /* next() reports it */ }
  state.lease = config.lease_seconds;
  state.heartbeat = setInterval(heartbeat, Math.max(1, state.lease / 3) * 1000);
  const params = new URLSearchParams(location.search);  // ?rater=NAME: one link per rater
  const name = config.labeler || params.get("rater") || params.get("labeler") || localStorage.getItem(NAME_KEY) || "";
  $("labeler").value = name;
  state.labeler = name.trim();
  next();
}

start();
