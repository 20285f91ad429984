// The inspector's workspace: stepping through a replay, the integrity of its frames,
// and the flags queue. Pages are rendered on the server; this only adds behaviour.
"use strict";

const $ = (id) => document.getElementById(id);
// Messages and times in the page's language and zone (i18n.js, loaded before this).
const { t, time } = window.svI18n;
// Signed in by the session cookie (HttpOnly: this script never sees it, and no token is
// kept in web storage). Every unsafe request repeats the session's CSRF value, which the
// server also puts in the readable CSRF cookie, in the X-CSRF-Token header (double submit).
function csrf() {
  const meta = document.querySelector("meta[name=csrf-token]");
  return meta ? meta.content : "";
}

function postJSON(url, body) {
  return fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body),
  });
}

// What a refusal says: the message of the refusal page, or of a JSON error body. The
// answer is parsed, never inserted: only its text reaches this page.
function refusal(status, body) {
  const page = new DOMParser().parseFromString(body, "text/html").getElementById("error-message");
  if (page) return { reason: page.dataset.reason || "", text: page.textContent };
  try { const b = JSON.parse(body); return { reason: b.reason || "", text: b.message || `HTTP ${status}` }; }
  catch { return { reason: "", text: `HTTP ${status}` }; }
}

// Forms that change something (spot checks, verdicts, sign-out) are sent with the header;
// the server's answer is followed (a redirect) or its refusal shown under the form.
function postForms() {
  for (const form of document.querySelectorAll("form[method=post]")) {
    if (form.id === "login-form") continue;  // no session yet: a plain POST
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      fetch(form.action, {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf() },
        body: new URLSearchParams(new FormData(form)),
      }).then(async (r) => {
        if (r.redirected) { location.assign(r.url); return; }
        const { reason, text } = refusal(r.status, await r.text());
        let out = form.nextElementSibling;
        if (!out || !out.classList.contains("form-refusal")) {
          out = document.createElement("p");
          out.className = "error form-refusal";
          out.setAttribute("role", "alert");
          form.after(out);
        }
        out.dataset.reason = reason;
        out.textContent = text;
      }).catch(() => { location.reload(); });
    });
  }
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
  const body = $("flags").querySelector("tbody");

  function load() {
    fetch("/inspect/flags/open", { credentials: "same-origin" })
      .then((r) => {
        if (r.status === 401) { state.dataset.state = "signed-out"; location.assign("/inspect/login"); throw new Error(t("flags.signed_out")); }
        if (!r.ok) return r.json().then((b) => { throw new Error(b.message || `HTTP ${r.status}`); });
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
    postJSON(`/inspect/flags/${encodeURIComponent(id)}/decision`, { status, note }).then((r) => r.json().then((b) => {
      if (!r.ok) throw new Error(b.message || `HTTP ${r.status}`);
      state.className = "ok"; state.textContent = t(`flags.decided_${status}`, { id }); load();
    })).catch((e) => { state.className = "bad"; state.textContent = e.message; });
  }
  load();
}

function appealsPage() {
  const state = $("appeals-state");
  const body = $("appeals").querySelector("tbody");

  function subject(a) {
    if (a.subject === "flag") return t("appeals.subject_flag", { id: a.flag_id });
    return t(`appeals.subject_${a.subject}`, { chain: a.chain_id, seq: a.seq });
  }

  function load() {
    fetch("/inspect/appeals/open", { credentials: "same-origin" })
      .then((r) => {
        if (r.status === 401) { state.dataset.state = "signed-out"; location.assign("/inspect/login"); throw new Error(t("flags.signed_out")); }
        if (!r.ok) return r.json().then((b) => { throw new Error(b.message || `HTTP ${r.status}`); });
        return r.json();
      })
      .then((appeals) => {
        body.innerHTML = "";
        state.dataset.state = "loaded";
        state.textContent = t("appeals.count", { n: appeals.length });
        for (const a of appeals) {
          const tr = document.createElement("tr");
          tr.dataset.appeal = a.id;
          for (const text of [a.id, a.learner_id, subject(a), a.filed_at_local, a.statement]) tr.appendChild(cell(text));
          const td = document.createElement("td");
          const note = document.createElement("input"); note.placeholder = t("flags.note"); note.maxLength = 2000; note.className = "appeal-note";
          td.appendChild(note);
          for (const upheld of [true, false]) {
            const b = document.createElement("button"); b.type = "button"; b.textContent = t(upheld ? "appeals.uphold" : "appeals.dismiss");
            b.className = upheld ? "appeal-uphold" : "appeal-dismiss";
            b.addEventListener("click", () => decide(a.id, upheld, note.value));
            td.appendChild(b);
          }
          tr.appendChild(td);
          body.appendChild(tr);
        }
      })
      .catch((e) => { state.className = "bad"; state.textContent = e.message; });
  }

  function decide(id, upheld, note) {
    postJSON(`/inspect/appeals/${encodeURIComponent(id)}/decision`, { upheld, note }).then((r) => r.json().then((b) => {
      if (!r.ok) throw new Error(b.message || `HTTP ${r.status}`);
      state.className = "ok"; state.textContent = t(upheld ? "appeals.decided_upheld" : "appeals.decided_dismissed", { id }); load();
    })).catch((e) => { state.className = "bad"; state.textContent = e.message; });
  }
  load();
}

document.addEventListener("DOMContentLoaded", () => window.svI18n.ready.then(() => {
  const page = document.body.dataset.page;
  postForms();
  if (page === "replay") replayPage();
  else if (page === "flags") flagsPage();
  else if (page === "appeals") appealsPage();
}));
