// The inspector's workspace: stepping through a replay, the integrity of its frames,
// and the flags queue. Pages are rendered on the server; this only adds behaviour.
"use strict";

const $ = (id) => document.getElementById(id);
// Messages and times in the page's language and zone (i18n.js, loaded before this).
const { t, time } = window.svI18n;
const TOKEN_KEY = "sv_workspace_token";

function loginPage() {
  // The flags queue talks to the flags API with a bearer token: keep it for this tab only.
  const form = $("login-form");
  if (form) form.addEventListener("submit", () => sessionStorage.setItem(TOKEN_KEY, $("token").value.trim()));
}

function replayPage() {
  const root = $("replay");
  const kind = root.dataset.kind, ident = root.dataset.ident;
  const rows = Array.from(document.querySelectorAll("#checks tr.check"));
  const marks = Array.from(document.querySelectorAll("#timeline .tl-mark"));
  let current = -1, timer = null;

  function show(n) {
    if (!rows.length) return;
    current = Math.max(0, Math.min(rows.length - 1, n));
    const d = rows[current].dataset;
    rows.forEach((r, i) => r.classList.toggle("current", i === current));
    marks.forEach((m) => m.classList.toggle("current", Number(m.dataset.n) === current));
    $("frame-pos").textContent = `${current + 1} / ${rows.length}`;
    const verdict = $("frame-verdict");
    verdict.textContent = d.verdictLabel || d.verdict;
    verdict.className = "verdict " + (rows[current].classList.contains("v-pass") ? "v-pass" : "v-fail");
    $("frame-when").textContent = d.when;
    $("frame-distance").textContent = d.distance ? t("inspect.distance", { distance: d.distance }) + (d.threshold ? " " + t("inspect.threshold", { threshold: d.threshold }) : "") : "";
    $("frame-issues").textContent = d.issues ? t("inspect.quality", { issues: d.issues }) : "";
    $("frame-detail").textContent = d.detail;
    const img = $("frame"), state = $("frame-state");
    if (d.sha && d.status === "retained") {
      state.textContent = t("inspect.frame_loading");
      img.hidden = false;
      img.onerror = () => { img.hidden = true; state.textContent = t("inspect.frame_unshown"); state.className = "small bad"; };
      img.onload = () => { state.textContent = t("inspect.frame", { hash: d.sha.slice(0, 16) }); state.className = "small"; };
      img.src = `/inspect/frames/${kind}/${encodeURIComponent(ident)}/${d.sha}`;
    } else {
      img.removeAttribute("src");
      img.hidden = true;
      state.className = "small";
      state.textContent = d.sha ? t("inspect.frame_gone", { status: d.status, hash: d.sha.slice(0, 16) }) : t("inspect.no_frame");
    }
  }

  function stop() { if (timer) { clearInterval(timer); timer = null; $("play").textContent = "▶ " + t("inspect.play"); } }
  if (rows.length) {
    $("prev").addEventListener("click", () => { stop(); show(current - 1); });
    $("next").addEventListener("click", () => { stop(); show(current + 1); });
    $("play").addEventListener("click", () => {
      if (timer) { stop(); return; }
      $("play").textContent = "❚❚ " + t("inspect.pause");
      timer = setInterval(() => { if (current >= rows.length - 1) stop(); else show(current + 1); }, 800);
    });
    rows.forEach((r, i) => r.addEventListener("click", (e) => { if (e.target.tagName !== "A") { stop(); show(i); } }));
    marks.forEach((m) => m.addEventListener("click", () => { stop(); show(Number(m.dataset.n)); }));
    show(0);
  }

  // Hash every retained frame on the server and say plainly which ones are altered.
  const out = $("integrity-frames");
  fetch(`/inspect/frames-check/${kind}/${encodeURIComponent(ident)}`, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then((result) => {
      const entries = Object.entries(result);
      const bad = entries.filter(([, s]) => s === "altered" || s === "missing");
      const purged = entries.filter(([, s]) => s === "purged").length;
      const ok = entries.filter(([, s]) => s === "ok").length;
      if (bad.length) {
        out.className = "bad";
        out.dataset.state = "altered";
        out.textContent = t("inspect.frames_bad", { list: bad.map(([h, s]) => `${h.slice(0, 16)}… ${t("frame_state." + s)}`).join("; ") });
      } else {
        out.className = "ok";
        out.dataset.state = "intact";
        out.textContent = t("inspect.frames_ok", { ok, purged });
      }
    })
    .catch((e) => { out.className = "bad"; out.dataset.state = "error"; out.textContent = t("inspect.frames_error", { error: e.message }); });
}

function cell(text) { const td = document.createElement("td"); td.textContent = text == null ? "" : String(text); return td; }

function flagsPage() {
  const state = $("flags-state");
  const token = sessionStorage.getItem(TOKEN_KEY);
  const body = $("flags").querySelector("tbody");
  if (!token) { state.textContent = t("flags.no_token"); state.dataset.state = "no-token"; return; }
  const headers = { Authorization: `Bearer ${token}` };

  function load() {
    fetch("/api/v1/flags?status=open", { headers })
      .then((r) => {
        if (r.status === 404) { state.dataset.state = "missing"; throw new Error(t("flags.missing")); }
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        return r.json();
      })
      .then((flags) => {
        body.innerHTML = "";
        state.dataset.state = "loaded";
        state.textContent = t("flags.count", { n: flags.length });
        for (const f of flags) {
          const tr = document.createElement("tr");
          tr.dataset.flag = f.id;
          for (const text of [f.id, t(`flag.${f.kind}`), f.institution_id, f.learner_id, time(f.raised_at), f.summary]) tr.appendChild(cell(text));
          const td = document.createElement("td");
          const note = document.createElement("input"); note.placeholder = t("flags.note"); note.maxLength = 2000; note.className = "flag-note";
          td.appendChild(note);
          for (const status of ["confirmed", "dismissed"]) {
            const b = document.createElement("button"); b.type = "button"; b.textContent = t(status === "confirmed" ? "flags.confirm" : "flags.dismiss");
            b.className = `flag-${status}`;
            b.addEventListener("click", () => decide(f.id, status, note.value));
            td.appendChild(b);
          }
          tr.appendChild(td);
          body.appendChild(tr);
        }
      })
      .catch((e) => { state.className = "bad"; state.textContent = e.message; });
  }

  function decide(id, status, note) {
    fetch(`/api/v1/flags/${encodeURIComponent(id)}/decision`, {
      method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify({ status, note }),
    }).then((r) => r.json().then((b) => {
      if (!r.ok) throw new Error(b.message || `HTTP ${r.status}`);
      state.className = "ok"; state.textContent = t(`flags.decided_${status}`, { id }); load();
    })).catch((e) => { state.className = "bad"; state.textContent = e.message; });
  }
  load();
}

document.addEventListener("DOMContentLoaded", () => window.svI18n.ready.then(() => {
  const page = document.body.dataset.page;
  if (page === "login") loginPage();
  else if (page === "replay") replayPage();
  else if (page === "flags") flagsPage();
}));
