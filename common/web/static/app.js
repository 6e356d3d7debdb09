// The teacher page's shell: follows the run's state (long poll), shows one question at a time through its
// kind's view (/views/<kind>.js), posts answers, lists this round's answers for revision, and keeps going
// when the connection drops (a resumed run comes back at the same address).
import { h } from "/static/kit.js";

const $ = (sel) => document.querySelector(sel);
const token = document.querySelector('meta[name="exil-token"]')?.content || "";
const baseTitle = document.title;
const tab = sessionStorage.getItem("exil-tab") || newTabId();
const views = new Map(); // kind → module promise

let state = null; // the last /api/state
let version = -1;
let current = null; // the question shown: {q, revise, handler}
let parked = null; // the question put aside while revising another: {q, nodes, handler}
let verify = false; // after a reconnect: check the shown question is still open
let offline = false;
let busy = false; // an answer is being posted
let fresh = false; // a state has come since the connection was last lost
let reviewDeadline = 0;
let shownAt = -Infinity; // when the shown question appeared (the input guard below)

function newTabId() {
  const b = crypto.getRandomValues(new Uint8Array(12));
  const id = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  sessionStorage.setItem("exil-tab", id);
  return id;
}

// ------------------------------------------------------------------ requests
class Offline extends Error {}

async function call(method, path, body, timeoutMs = 15000) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  let res;
  try {
    res = await fetch(path, {
      method, cache: "no-store", signal: ctl.signal, credentials: "same-origin",
      headers: { "X-Exil-Token": token, "X-Exil-Tab": tab, ...(body !== undefined && { "Content-Type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    setOffline(true);
    throw new Offline(String(e));
  } finally {
    clearTimeout(timer);
  }
  setOffline(false);
  let data = {};
  try { data = await res.json(); } catch { /* not JSON */ }
  return { status: res.status, data: data || {} };
}

function setOffline(value) {
  if (value === offline) return;
  offline = value;
  if (value) fresh = false;
  const stage = state?.status?.stage;
  const ended = ["done", "stopped"].includes(stage);
  $("#connection").textContent = stage === "done" ? "the run has finished; its page server is closed"
    : stage === "stopped" ? "the run stopped (Ctrl-C, SIGTERM or an error); when it is resumed (exil loop.resume=<its folder>), this page reconnects"
    : "connection lost — retrying…";
  $("#connection").classList.toggle("ended", ended);
  $("#connection").hidden = !value;
  document.body.classList.toggle("offline", value);
  if (!value) verify = true; // the server is back (maybe a resumed run): is the shown question still open?
}

// Everything that changes the shown question runs one at a time.
let chain = Promise.resolve();
function serial(fn) {
  const p = chain.then(fn);
  chain = p.catch((e) => { if (!(e instanceof Offline)) console.error(e); });
  return p;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function pollLoop() {
  for (;;) {
    try {
      const r = await call("GET", `/api/state?since=${version}&wait=20`, undefined, 30000);
      // a state cut off mid-body (the run killed as it answered) reads as {}: wait for a whole one
      if (r.status === 200 && Array.isArray(r.data.answered)) applyState(r.data);
      else if (r.status === 403) { showError(r.data.error || "this run's token is wrong: open the URL exil printed"); await sleep(5000); }
      else await sleep(1000);
    } catch {
      version = -1; // whatever the server is now, ask for its state at once
      const stage = state?.status?.stage;
      if (stage === "done") return; // a finished run is not resumed: nothing will answer again
      await sleep(stage === "stopped" ? 5000 : 1000); // a stopped run may be resumed: look now and then
    }
  }
}

// --------------------------------------------------------------------- state
function applyState(s) {
  const moved = s.version !== version;
  state = s;
  fresh = true;
  version = s.version;
  drawFacts(s);
  drawAnswered(s);
  drawReview(s);
  if (!current) drawWaiting();
  // a claim of a closed tab lapses without a new version: ask again whenever something is free
  if (moved || verify || (!current && s.open > s.in_other_tabs)) requestSync();
}

let syncQueued = false;
function requestSync() {
  if (syncQueued) return;
  syncQueued = true;
  serial(async () => {
    syncQueued = false;
    await sync();
  });
}

/** Show the question this tab should answer, keeping the one shown if it is still open. */
async function sync() {
  const s = state;
  if (!s || busy) return;
  const answeredIds = new Set(s.answered.map((a) => a.id));
  if (current?.revise) {
    const row = s.answered.find((a) => a.id === current.q.id);
    if (fresh && (!row || !row.revisable)) {
      showError("The model has trained on that answer meanwhile: it can no longer be revised.");
      return leaveRevision();
    }
    if (!verify) return;
    const g = await call("GET", "/api/question/" + encodeURIComponent(current.q.id));
    if (g.status === 200 || s.total > 0) verify = false;
    if (g.status === 404 && s.total > 0) { showError("That question is no longer open: the run has moved on."); await leaveRevision(); }
    return;
  }
  if (current) {
    const gone = answeredIds.has(current.q.id);
    if (!gone && !verify) return;
    const r = await call("POST", "/api/next", { keep: current.q.id });
    const next = r.data.question || null;
    if (next && next.id === current.q.id) { verify = false; return; }
    if (!gone) {
      const g = await call("GET", "/api/question/" + encodeURIComponent(current.q.id));
      if (g.status === 200 && !g.data.question.answered) { verify = false; return; } // keep the person's work
      if (g.status === 404 && s.total === 0) return; // a resumed run has not offered its questions yet
    }
    verify = false;
    showError("That question was answered meanwhile (in another tab?): here is the next one.");
    return show(next);
  }
  verify = false;
  if (s.open > s.in_other_tabs) {
    const r = await call("POST", "/api/next", {});
    if (r.status === 200) return show(r.data.question || null);
  }
}

// ----------------------------------------------------------------- questions
function loadView(kind) {
  if (!views.has(kind)) {
    const p = import("/views/" + encodeURIComponent(kind) + ".js");
    p.catch(() => views.delete(kind));
    views.set(kind, p);
  }
  return views.get(kind);
}

const roundName = (r) => (r == null ? "" : r < 0 ? "initial set" : `round ${r + 1}`);
const KIND_NAMES = {
  label: "label", relevance: "relevance", explain_label: "explanation", correct_explanation: "correction",
  choose_exemplars: "exemplars", contrast_classes: "contrast",
};
const kindName = (k) => KIND_NAMES[k] || k.replace(/_/g, " ");
const keyName = (k) => (/^\d+$/.test(k) ? `item ${k}` : /^round_\d+$/.test(k) ? roundName(+k.slice(6)) : k.replace(/_/g, " "));

async function show(q, revise = false) {
  const box = $("#question");
  if (!q) {
    current = null;
    document.body.classList.remove("has-question");
    box.dataset.id = "";
    box.dataset.kind = "";
    drawWaiting();
    return;
  }
  let mod;
  try {
    mod = await loadView(q.kind);
  } catch (e) {
    if (e instanceof Offline) throw e;
    current = { q, revise, handler: null };
    box.dataset.id = q.id;
    box.dataset.kind = q.kind;
    box.replaceChildren(h("div.panel", {}, h("p", { text: `This page cannot show “${q.kind}” questions (its view did not load).` })));
    showError(`the view of ${q.kind} questions did not load: ${e.message || e}`);
    return;
  }
  const head = h("div.q-head", {},
    h("span.q-where", { text: [roundName(q.round), q.dispute ? "a disagreement to settle" : `question ${q.position} of ${q.of}`,
      q.kind === "explain_label" && q.view?.label == null ? "label and explanation" : kindName(q.kind)].join(" · ") }),
    revise && h("span.q-revising", {}, `Revising your answer (${q.summary || "given"})`,
      h("button.cancel", { type: "button", onclick: () => serial(leaveRevision) }, "cancel")),
    q.dispute && h("p.q-dispute", { text: "The teachers disagree — " + q.dispute.map((d) => `${d.teacher}: ${d.summary}`)
      .join(" · ") + ". Your answer settles it (and is what the model learns)." }));
  const root = h("div.view", { "data-kind": q.kind });
  box.replaceChildren(head, root);
  box.dataset.id = q.id;
  box.dataset.kind = q.kind;
  box.classList.toggle("revising", revise);
  document.body.classList.add("has-question");
  current = { q, revise, handler: null, guard: q.dispute ? DISPUTE_GUARD_MS : GUARD_MS };
  shownAt = performance.now();
  try {
    current.handler = mod.render(root, q, makeApi(q, revise)) || null;
  } catch (e) {
    console.error(e);
    showError(`the ${q.kind} view failed to draw this question: ${e.message || e}`);
  }
  if (!root.contains(document.activeElement)) box.focus({ preventScroll: true });
  if (box.getBoundingClientRect().top < 0) window.scrollTo({ top: 0 });
  drawAnswered(state);
  drawTitle();
}

/** Where a question's unfinished answer is kept through a reload (per run and teacher: the token's first characters). */
const draftKey = (q) => `exil-draft:${token.slice(0, 12)}:${q.id}`;

function makeApi(q, revise) {
  return {
    submit: (answer) => serial(() => submit(q, answer, revise)),
    // an answer being made (typed text, a painted mask, marked segments) survives a reload; not for revisions
    draft: revise ? { get: () => null, set: () => {} } : {
      get: () => { try { return JSON.parse(localStorage.getItem(draftKey(q)) || "null"); } catch { return null; } },
      set: (value) => { try { localStorage.setItem(draftKey(q), JSON.stringify(value)); } catch { /* full or off */ } },
    },
    preview: async (data) => {
      try {
        const r = await call("POST", "/api/preview", { id: q.id, data });
        return r.status === 200 ? r.data : {};
      } catch { return {}; }
    },
  };
}

async function submit(q, answer, revise) {
  if (!current || current.q.id !== q.id) return { ok: false, error: "this question is no longer shown" };
  clearError();
  busy = true;
  document.body.classList.add("busy");
  let r, dropped;
  const seconds = (performance.now() - shownAt) / 1000; // on screen until answered: what the answer cost
  try {
    ({ r, dropped } = await send(q, answer, revise, seconds));
  } finally {
    busy = false;
    document.body.classList.remove("busy");
  }
  if (dropped) clearError();
  if (r.status === 409 && dropped && !revise) r = { status: 200, data: { ...r.data, summary: "" } }; // ours, before the drop
  const d = r.data;
  if (r.status === 200) {
    try { localStorage.removeItem(draftKey(q)); } catch { /* off */ }
    toast(revise ? "revision saved ✓" : "saved ✓");
    if (!revise) {
      sessionStorage.setItem("exil-given", String(given() + 1));
      drawGiven();
    }
    noteAnswered(q, d.summary);
    if (revise) await leaveRevision();
    else await show(d.next || null);
    if (!current) requestSync();
    return { ok: true };
  }
  const error = d.error || `the server refused the answer (${r.status})`;
  if (r.status === 422) showError(error);
  else if (r.status === 409) {
    showError("Someone already answered this question (in another tab?): here is the next one.");
    await show(d.next || null);
  } else if (r.status === 410) {
    showError(`${error}. The revision was not saved.`);
    await leaveRevision();
  } else if (r.status === 404) {
    showError(error);
    if (revise) await leaveRevision(); else await show(null);
    requestSync();
  } else showError(error);
  return { ok: false, error };
}

/** POST an answer; through a lost connection it is kept and sent again every second, also to a resumed run
 * (same address), which may need a moment before it offers the same question again. */
async function send(q, answer, revise, seconds) {
  let dropped = false;
  const since = performance.now();
  for (;;) {
    let r;
    try {
      r = await call("POST", "/api/answer", { id: q.id, answer, revise, seconds });
    } catch {
      dropped = true;
      showError("Connection lost — your answer is kept and will be sent when the run is back.");
      await sleep(1000);
      continue;
    }
    const notYetOffered = !fresh || !state || state.total === 0;
    if (r.status === 404 && dropped && notYetOffered && performance.now() - since < 600_000) {
      await sleep(1000);
      continue;
    }
    return { r, dropped };
  }
}

async function revise(id) {
  clearError();
  const r = await call("GET", "/api/question/" + encodeURIComponent(id));
  if (r.status !== 200) return showError(r.data.error || "that question cannot be revised now");
  const q = r.data.question;
  if (!q.revisable) return showError("This answer is already in use: the model was trained on it.");
  if (current && !current.revise) {
    const box = $("#question");
    parked = { q: current.q, nodes: [...box.childNodes], handler: current.handler };
  }
  await show(q, true);
  // the model would train in a few seconds: wait for the person (the review panel says "train now")
  if (state?.review && !state.review.hold) reviewAction("hold");
}

async function leaveRevision() {
  const answeredIds = new Set((state?.answered || []).map((a) => a.id));
  const p = parked;
  parked = null;
  if (p && !answeredIds.has(p.q.id)) {
    const box = $("#question");
    box.replaceChildren(...p.nodes);
    box.dataset.id = p.q.id;
    box.dataset.kind = p.q.kind;
    box.classList.remove("revising");
    current = { q: p.q, revise: false, handler: p.handler };
    document.body.classList.add("has-question");
    box.focus({ preventScroll: true });
    drawAnswered(state);
    return;
  }
  $("#question").classList.remove("revising");
  await show(null);
  requestSync();
}

// A committed answer shows in the list at once (the next state confirms it).
function noteAnswered(q, summary) {
  if (!state) return;
  const row = state.answered.find((a) => a.id === q.id);
  if (row) row.summary = summary;
  else state.answered.push({ id: q.id, kind: q.kind, key: q.key, round: q.round, summary, revisable: true });
  state.open = Math.max(0, state.open - (row ? 0 : 1));
  drawAnswered(state);
  drawFacts(state);
}

// -------------------------------------------------------------------- header
function drawFacts(s) {
  const st = s.status || {};
  $("#round").textContent = st.stage === "initial" || st.round === -1 ? "initial set"
    : st.stage === "done" ? `finished · ${st.rounds} rounds`
    : st.round == null ? "" : st.round >= st.rounds ? `final model · ${st.rounds} rounds` : `round ${st.round + 1} of ${st.rounds}`;
  const others = (s.in_other_tabs ? ` · ${s.in_other_tabs} open in other tabs` : "")
    + (s.waiting_for_others ? ` · ${s.waiting_for_others} waiting for the other teachers` : "")
    + (s.teacher ? ` · you are ${s.teacher}` : "");
  $("#left").textContent = s.total ? `${s.open} of ${s.total} questions left${others}` : "no questions yet";
  // the labels in use, and this round's answered ones that are not yet (the journal counts them when used)
  const pending = (s.answered || []).filter((a) => a.kind === "label" && a.round >= 0 && a.revisable).length;
  $("#budget").textContent = st.labels == null ? "" : `labels ${st.labels + pending}${st.budget ? " / " + st.budget : ""}`;
  $("#budget").title = "labels the teacher gave in the rounds, of the run's budget (the initial set not counted)";
  drawCurve(st.curve || []);
  const text = s.review ? "reviewing this round's answers" : st.text || st.stage || "";
  const waiting = !current && !["done", "stopped"].includes(st.stage) && !s.open;
  const status = $("#status");
  status.textContent = (text ? text.charAt(0).toUpperCase() + text.slice(1) + (waiting ? "…" : "") : "")
    + (st.message ? ` — ${st.message}` : ""); // what the method or the loop has to say (nothing to correct, a stop)
  status.title = st.message || "";
  status.classList.toggle("working", waiting);
  drawTitle();
}

function drawTitle() {
  const open = state?.open || 0;
  document.title = (open ? `(${open} open) ` : state?.status?.stage === "done" ? "(done) " : "") + baseTitle;
}

function drawCurve(curve) {
  const svg = $("#curve");
  const pts = curve.filter((p) => p && p[1] != null);
  svg.toggleAttribute("hidden", pts.length === 0); // an SVG element has no .hidden property
  if (!pts.length) return;
  const W = 160, H = 36, pad = 3, xs = pts.map((p) => p[0]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const px = (n) => (x1 === x0 ? W - 40 : pad + ((n - x0) / (x1 - x0)) * (W - 40 - 2 * pad));
  const py = (a) => H - pad - a * (H - 2 * pad);
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  };
  const last = pts[pts.length - 1];
  svg.replaceChildren(
    el("line", { x1: pad, x2: W - 40, y1: py(0), y2: py(0), class: "axis" }),
    el("line", { x1: pad, x2: W - 40, y1: py(1), y2: py(1), class: "axis faint" }),
    el("polyline", { points: pts.map((p) => `${px(p[0])},${py(p[1])}`).join(" "), class: "line" }),
    ...pts.map((p) => el("circle", { cx: px(p[0]), cy: py(p[1]), r: 2, class: "dot" })),
  );
  const label = el("text", { x: W - 1, y: H - 7, "text-anchor": "end", class: "value" });
  label.textContent = `${(last[1] * 100).toFixed(0)}%`;
  const caption = el("text", { x: W - 1, y: 11, "text-anchor": "end", class: "caption" });
  caption.textContent = "test acc";
  svg.append(label, caption);
  const t = el("title", {});
  t.textContent = "test accuracy against labels: " + pts.map((p) => `${p[0]}: ${(p[1] * 100).toFixed(1)}%`).join(", ");
  svg.append(t);
}

function drawWaiting() {
  const box = $("#question");
  if (current) return;
  const s = state;
  const st = s?.status || {};
  let title, body, working = true;
  if (!s) [title, body] = ["Connecting…", "Looking for the run."];
  else if (st.stage === "done") [title, body, working] = ["The run has finished.", "Thank you for teaching! You can close this page.", false];
  else if (st.stage === "stopped") [title, body, working] = ["The run stopped.", "If it is resumed at this address, this page picks up where you were.", false];
  else if (s.open && s.in_other_tabs >= s.open) [title, body] = [`The ${s.open} open question${s.open > 1 ? "s are" : " is"} shown in other tabs.`, "Questions left there come back here if nobody answers them."];
  else if (s.review) [title, body] = ["All answered for this round.", "You can still revise any answer on the right before the model trains."];
  else [title, body] = ["Nothing to answer right now.", `${cap(st.text || "the run is working")}. New questions appear here by themselves.`];
  box.dataset.id = "";
  box.dataset.kind = "";
  box.classList.remove("revising");
  box.replaceChildren(h("div.panel.waiting" + (working ? ".working" : ""), {},
    working && h("div.pulse", { "aria-hidden": "true" }, h("span"), h("span"), h("span")),
    h("h2", { text: title }), h("p", { text: body }), st.message && h("p.muted", { text: st.message })));
}

const cap = (t) => t.charAt(0).toUpperCase() + t.slice(1);

function drawAnswered(s) {
  if (!s) return;
  const list = $("#answered");
  const shown = current?.revise ? current.q.id : null;
  const rows = s.answered.slice().reverse();
  const rounds = [...new Set(rows.map((a) => a.round))].sort((a, b) => b - a);
  const items = [];
  for (const r of rounds) {
    const mine = rows.filter((a) => a.round === r);
    if (rounds.length > 1 || !mine.some((a) => a.revisable)) {
      items.push(h("li.round", { text: roundName(r) + (mine.some((a) => a.revisable) ? "" : " · in use (the model trained on these)") }));
    }
    for (const a of mine) items.push(h("li" + (a.id === shown ? ".revising" : ""), { "data-id": a.id },
      h("span.what", {}, a.thumb && h("img.thumb", { src: a.thumb, alt: "", width: 28, height: 28 }),
        `${kindName(a.kind)} · ${keyName(a.key)}`),
      h("span.summary", { text: a.summary || "" }),
      a.revisable && h("button.revise", { type: "button", title: "change this answer", onclick: () => serial(() => revise(a.id)) }, "revise")));
  }
  if (!rows.length) items.push(h("li.empty", { text: "Your answers appear here; you can revise them until the model trains on them." }));
  list.replaceChildren(...items);
  drawGiven();
}

const given = () => Number(sessionStorage.getItem("exil-given") || 0);
function drawGiven() {
  const n = given();
  $("#given").textContent = n ? `${n} answer${n > 1 ? "s" : ""} given in this tab` : "";
}

function drawReview(s) {
  const panel = $("#review");
  const r = s.review;
  panel.hidden = !r;
  if (!r) return;
  reviewDeadline = performance.now() + r.seconds_left * 1000;
  panel.classList.toggle("held", !!r.hold);
  $("#hold").hidden = !!r.hold;
  tickReview();
}

function tickReview() {
  const r = state?.review;
  if (!r || $("#review").hidden) return;
  const left = Math.max(0, Math.ceil((reviewDeadline - performance.now()) / 1000));
  $("#review-text").textContent = r.hold ? "All answered — holding: the model waits until you press “train now”."
    : left > 0 ? `All answered — the model trains in ${left} s` : "All answered — the model is about to train";
}
setInterval(tickReview, 250);

async function reviewAction(action) {
  clearError();
  try {
    const r = await call("POST", "/api/review", { action });
    if (r.status !== 200) showError(r.data.error || "the server refused");
  } catch { showError("connection lost: try again once the page reconnects"); }
}

// ---------------------------------------------------------------- messages
function showError(text) {
  const el = $("#error");
  el.textContent = text;
  el.hidden = false;
}
function clearError() {
  $("#error").hidden = true;
  $("#error").textContent = "";
}
let toastTimer = 0;
function toast(text) {
  const el = $("#saved");
  el.textContent = text;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 1400);
}

// A closed (or reloading) tab gives its question back at once: another tab, or another browser of the same
// person, gets it now rather than when the claim lapses. (keepalive: the request outlives the page.)
window.addEventListener("pagehide", () => {
  try {
    fetch("/api/release", { method: "POST", keepalive: true, credentials: "same-origin", body: "{}",
      headers: { "X-Exil-Token": token, "X-Exil-Tab": tab, "Content-Type": "application/json" } });
  } catch { /* the server is gone: nothing is held */ }
});

// ---------------------------------------------------------------- input guard
// A double-click or a doubled key press must not answer the next question, which the person has not seen yet:
// clicks and keys within GUARD_MS of a new question appearing are dropped.
// A disagreement to settle comes right after the reviewer's own answers, looking like the next item: the keys
// meant for that item must not settle it, so it waits longer before it takes any.
const GUARD_MS = 300;
const DISPUTE_GUARD_MS = 1500;
const tooSoon = () => performance.now() - shownAt < (current?.guard ?? GUARD_MS);
$("#question").addEventListener("click", (e) => {
  if (tooSoon()) { e.stopImmediatePropagation(); e.preventDefault(); }
}, true);

// ---------------------------------------------------------------- keyboard
document.addEventListener("keydown", (e) => {
  if (e.repeat || busy || e.isComposing) return;
  if (tooSoon() && current) { e.preventDefault(); return; }
  const handler = current?.handler;
  if (handler?.keydown && handler.keydown(e)) { e.preventDefault(); return; }
  if (!current && e.key === "Enter" && state?.review && !e.target.closest?.("button, textarea, input")) {
    e.preventDefault();
    reviewAction("train");
  }
});

$("#train-now").addEventListener("click", () => reviewAction("train"));
$("#hold").addEventListener("click", () => reviewAction("hold"));

drawGiven();
drawWaiting();
pollLoop();
