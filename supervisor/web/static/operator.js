// The operators' live view: a server-sent-events stream read with fetch(), so the
// token travels in the Authorization header and never in a URL. Messages and times
// come from i18n.js (the page's language and `web.timezone`).
"use strict";

const $ = (id) => document.getElementById(id);
const { t, time } = window.svI18n;
const label = (group, code) => (code ? t(`${group}.${code}`) : "–");
let controller = null;

function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

function fmt(seconds) {
  const s = Math.floor(Number(seconds) || 0);
  return `${String(Math.floor(s / 3600)).padStart(2, "0")}:${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

function render(snap) {
  $("updated").textContent = time(snap.at);
  $("count").textContent = snap.sessions.length;
  $("flags").textContent = snap.flags_open;
  const q = snap.queue || {};
  $("queue").textContent = q.error ? q.error : t("operator.queue", { length: q.length, lag: q.lag_seconds });
  $("workers").textContent = q.workers_alive ?? "–";
  const body = $("sessions").querySelector("tbody");
  body.innerHTML = "";
  for (const s of snap.sessions) {
    const tr = document.createElement("tr");
    tr.dataset.session = s.session_id;
    tr.className = `state-${s.state}`;
    const state = label("state", s.state);
    for (const text of [s.learner_name, s.session_id.slice(0, 8), s.mode || "–", s.note ? `${state} (${s.note})` : state,
      label("verdict", s.last_verdict), fmt(s.credited_seconds), time(s.updated_at)]) tr.appendChild(cell(text));
    body.appendChild(tr);
  }
  const list = $("flag-list"); list.innerHTML = "";
  for (const f of snap.flags) {
    const li = document.createElement("li");
    li.textContent = t("operator.flag", { id: f.id, kind: label("flag", f.kind), learner: f.learner_id, at: time(f.created_at) });
    list.appendChild(li);
  }
  document.body.dataset.sessions = String(snap.sessions.length);
}

async function stream(token, institution) {
  if (controller) controller.abort();
  controller = new AbortController();
  const qs = institution ? `?institution_id=${encodeURIComponent(institution)}` : "";
  const res = await fetch(`/api/v1/live/stream${qs}`, {
    headers: { Authorization: `Bearer ${token}` }, signal: controller.signal,
  });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new Error(body.message || `HTTP ${res.status}`);
  }
  $("signin").hidden = true; $("live").hidden = false;
  $("stream-state").textContent = t("operator.stream_live");
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let idx;
    while ((idx = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, idx); buffer = buffer.slice(idx + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data) render(JSON.parse(data));
    }
  }
  $("stream-state").textContent = t("operator.stream_closed");
}

window.addEventListener("DOMContentLoaded", () => window.svI18n.ready.then(() => {
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("signin-error").textContent = "";
    const token = $("token").value.trim();
    sessionStorage.setItem("sv-operator-token", token);
    try { await stream(token, $("institution").value); }
    catch (e) { if (e.name !== "AbortError") $("signin-error").textContent = e.message; }
  });
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token") || sessionStorage.getItem("sv-operator-token");
  if (token) {
    $("token").value = token;
    if (params.get("institution")) $("institution").value = params.get("institution");
    stream(token, $("institution").value).catch((e) => { $("signin-error").textContent = e.message; });
  }
}));
