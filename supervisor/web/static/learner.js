// The learner's page: sign-in, consent, camera, and a supervised study session.
// No build step. The token stays in sessionStorage (never a cookie, so no CSRF).
//
// Every word shown comes from /static/i18n/<lang>.json through svI18n.t (i18n.js):
// the page's elements name their key in data-i18n, and every state is a sentence
// that says what happened and what to do next, never a raw code. The clock shows
// the credited time the server reports (the ledger's figure), never a local timer,
// and never moves backwards. When the page goes to the background (a locked screen,
// another app) it tells the server, which pauses the session; when it comes back it
// reconnects and the server resumes the session after an identity check.
"use strict";

const $ = (id) => document.getElementById(id);
const t = (key, params) => (window.svI18n ? window.svI18n.t(key, params) : key);
const S = {
  token: null, me: null, session: null, pc: null, sender: null, channel: null,
  stream: null, mode: null, credited: 0, running: false, beat: null,
  beatSeconds: null, pollGen: 0,
  polling: false, fallbackForced: false,
  ending: false,   // End was pressed: nothing more is uploaded for this session
  resuming: false, // back on the page, waiting for the identity check that resumes it
  away: false,     // the page is in the background; the session is paused for it
  lastResult: null,
};

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {}, { Authorization: `Bearer ${S.token}` });
  const res = await fetch(`/api/v1${path}`, Object.assign({}, opts, { headers }));
  let body = null;
  const text = await res.text();
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  if (!res.ok) {
    // The server words `message` in the page's language (the same cookie and
    // Accept-Language); `reason` is the stable code the page acts on.
    const err = new Error((body && body.message) || t("learner.error.http", { status: res.status }));
    err.reason = body && body.reason; err.status = res.status; err.body = body;
    throw err;
  }
  return body;
}

function show(section) {
  for (const id of ["signin", "consent", "study"]) $(id).hidden = id !== section;
}

// The words of the static page, from the message file.
function translatePage() {
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  document.title = t("learner.title");
  // The switch keeps the token and session in the fragment, so a learner who changes
  // language mid-session comes back to the same session.
  for (const a of document.querySelectorAll("#lang-switch a")) {
    a.addEventListener("click", () => { if (location.hash) a.href = a.href.split("#")[0] + location.hash; });
  }
}

// -- sign-in and consent ------------------------------------------------------

async function signIn(token) {
  S.token = token.trim();
  $("signin-error").textContent = "";
  try {
    S.me = await api("/me");
  } catch (e) {
    $("signin-error").textContent = e.status === 401
      ? t("learner.signin.bad_token") : t("learner.signin.failed", { message: e.message });
    return;
  }
  if (S.me.role !== "learner") {
    $("signin-error").textContent = t("learner.signin.not_learner");
    return;
  }
  sessionStorage.setItem("sv-token", S.token);
  const learner = await api(`/learners/${S.me.learner_id}`);
  $("who").textContent = `${learner.full_name} (${learner.id_number_masked})`;
  $("mydata").hidden = false;
  $("appeals").hidden = false;
  refreshAlternative();
  refreshAppeals();
  const consent = await api(`/learners/${S.me.learner_id}/consent`);
  // Consent to a translation of the version in force (2026-11-v1-zh-CN) is consent to it.
  const base = (v) => String(v || "").replace(/-(zh-CN|en)$/, "");
  if (!consent.consent || base(consent.consent.text_version) !== base(consent.current_text_version)) {
    await showConsent();
  } else {
    await showStudy();
  }
}

async function showConsent() {
  const res = await fetch("/api/v1/consent-text");
  const body = await res.json();
  $("consent-text").textContent = body.text;
  $("consent-version").textContent = body.version;
  $("consent-button").dataset.version = body.version;
  show("consent");
}

async function giveConsent() {
  try {
    await api(`/learners/${S.me.learner_id}/consent`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ text_version: $("consent-button").dataset.version }),
    });
    await showStudy();
  } catch (e) {
    $("consent-error").textContent = e.message;
  }
}

// -- your data: see it, withdraw consent, ask for the non-face path -----------------

function addRow(table, cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = c === null || c === undefined ? "" : String(c);  // never innerHTML
    tr.appendChild(td);
  }
  table.appendChild(tr);
}

function addTable(view, title, head, rows) {
  const h = document.createElement("h3");
  h.textContent = `${title} (${rows.length})`;
  view.appendChild(h);
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  const table = document.createElement("table");
  addRow(table, head);
  for (const r of rows) addRow(table, r);
  wrap.appendChild(table);
  view.appendChild(wrap);
}

const when = (iso) => (iso && window.svI18n ? window.svI18n.time(iso) : iso);
// A code of the record (an event, a status, a role) in words where the message file has
// them; a flag's kind by its own words; anything else as recorded.
function word(code) {
  for (const key of [`learner.code.${code}`, `flag.${code}`]) {
    if (t(key) !== key) return t(key);
  }
  return code;
}

async function showMyData() {
  $("mydata-error").textContent = "";
  try {
    const d = await api(`/learners/${S.me.learner_id}/data`);
    const view = $("mydata-view");
    view.replaceChildren();
    const me = d.learner;
    addTable(view, t("learner.data.identity"),
      [t("learner.data.name"), t("learner.data.id_number"), t("learner.data.institution"), t("learner.data.registered")],
      [[me.full_name, me.id_number_masked, me.institution.name, when(me.registered_at)]]);
    addTable(view, t("learner.data.consent"),
      [t("learner.data.event"), t("learner.data.text_version"), t("learner.data.at")],
      d.consents.map((c) => [word(c.event), c.text_version, when(c.at)]));
    addTable(view, t("learner.data.templates"),
      [t("learner.data.id"), t("learner.data.created"), t("learner.data.photo_hash")],
      d.face_templates.map((x) => [x.id, when(x.created_at), x.evidence_sha256]));
    addTable(view, t("learner.data.sessions"),
      [t("learner.data.session"), t("learner.data.started"), t("learner.data.ended"), t("learner.data.checks"), t("learner.data.credited_minutes")],
      d.sessions.map((x) => [x.session_id, when(x.started_at), when(x.ended_at), x.checks,
        (x.credited_seconds / 60).toFixed(1)]));
    addTable(view, t("learner.data.frames"),
      [t("learner.data.what"), t("learner.data.kept_until"), t("learner.data.deleted_at"), t("learner.data.hash")],
      d.evidence_frames.map((f) => [(f.kinds || []).map(word).join("、") || f.what,
        when(f.retain_until), when(f.deleted_at), f.sha256]));
    addTable(view, t("learner.data.flags"),
      [t("learner.data.kind"), t("learner.data.status"), t("learner.data.raised")],
      d.flags.map((f) => [word(f.kind), word(f.status), when(f.raised_at)]));
    addTable(view, t("learner.data.read_by"),
      [t("learner.data.when"), t("learner.data.who"), t("learner.data.role"), t("learner.data.what")],
      d.read_by.map((r) => [when(r.at), r.who, word(r.role), word(r.what)]));
  } catch (e) {
    $("mydata-error").textContent = e.message;
  }
}

async function withdrawConsent() {
  if (!window.confirm(t("learner.withdraw.confirm"))) return;
  try {
    const r = await api(`/learners/${S.me.learner_id}/consent`, { method: "DELETE" });
    if (S.session && !S.ending) {
      S.ending = true; setState("ended", t("learner.ended.consent_withdrawn")); finish();
    }
    if ($("mydata-view").childElementCount) await showMyData();
    $("mydata-error").textContent = t("learner.withdraw.done",
      { templates: r.templates_deleted, sessions: r.sessions_ended });
  } catch (e) {
    $("mydata-error").textContent = e.message;
  }
}

async function refreshAlternative() {
  try {
    const a = await api(`/learners/${S.me.learner_id}/alternative`);
    $("alt-status").textContent = t(`learner.alt.${a.status}`);
    $("alt-button").disabled = a.status === "requested" || a.status === "approved";
  } catch (e) {
    $("alt-status").textContent = t("learner.alt.unknown");
  }
}

async function askAlternative() {
  const reason = $("alt-reason").value.trim() || t("learner.alt.default_reason");
  try {
    await api(`/learners/${S.me.learner_id}/alternative`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ reason }),
    });
  } catch (e) {
    $("mydata-error").textContent = e.message;
  }
  await refreshAlternative();
}

// -- appeals: dispute a flag, a failed check or a missed roll call ------------------------
// The server gives every time also in Beijing time (`*_local`); the page shows those.

function subjectLabel(a) {
  if (a.subject === "flag") return t("learner.appeal.subject_flag", { id: a.flag_id });
  return t(`learner.appeal.subject_${a.subject}`);
}

function verdictLabel(verdict) {
  const key = `learner.failed.${verdict}`;
  return t(key) !== key ? t(key) : verdict;
}

async function refreshAppeals() {
  const list = $("appeal-list");
  try {
    const mine = await api("/appeals");
    list.replaceChildren();
    if (!mine.length) {
      const li = document.createElement("li");
      li.textContent = t("learner.appeal.mine_none");
      list.appendChild(li);
    }
    for (const a of mine.slice().reverse()) {
      const li = document.createElement("li");
      li.dataset.appeal = a.id; li.dataset.status = a.status;
      const head = document.createElement("div");
      head.textContent = t("learner.appeal.item", { id: a.id, subject: subjectLabel(a), at: a.filed_at_local });
      const status = document.createElement("strong");
      status.textContent = t(`learner.appeal.${a.status}`);
      li.append(head, status);
      if (a.decision) {
        const d = document.createElement("div");
        d.className = "small";
        d.textContent = t("learner.appeal.decision", { at: a.decision.decided_at_local, note: a.decision.note });
        li.appendChild(d);
      }
      list.appendChild(li);  // textContent only: a statement or a note is never markup
    }
  } catch (e) {
    $("appeal-error").textContent = e.message;
  }
}

async function loadAppealable() {
  $("appeal-error").textContent = "";
  let found;
  try {
    found = await api(`/learners/${S.me.learner_id}/appealable`);
  } catch (e) {
    $("appeal-error").textContent = e.message;
    return;
  }
  const select = $("appeal-subject");
  select.replaceChildren();
  const open = (x) => !x.appeal || x.appeal.status === "dismissed";
  for (const f of found.flags.filter(open)) {
    const o = document.createElement("option");
    const kind = t(`flag.${f.kind}`) !== `flag.${f.kind}` ? t(`flag.${f.kind}`) : f.kind;
    o.textContent = t("learner.appeal.flag", { id: f.flag_id, kind, at: f.raised_at_local });
    o.value = JSON.stringify({ subject: "flag", flag_id: f.flag_id });
    select.appendChild(o);
  }
  for (const f of found.failures.filter(open)) {
    const o = document.createElement("option");
    o.textContent = f.subject === "roll_call"
      ? t("learner.appeal.roll_call", { at: f.at_local })
      : t("learner.appeal.check", { verdict: verdictLabel(f.verdict), at: f.at_local });
    o.value = JSON.stringify({ subject: f.subject, chain_id: f.chain_id, seq: f.seq });
    select.appendChild(o);
  }
  const none = select.childElementCount === 0;
  $("appeal-form").hidden = false;
  $("appeal-none").hidden = !none;
  select.hidden = none;
  $("appeal-submit").disabled = none;
}

async function fileAppeal() {
  $("appeal-error").textContent = ""; $("appeal-done").textContent = "";
  const statement = $("appeal-statement").value.trim();
  if (!statement) { $("appeal-error").textContent = t("learner.appeal.empty"); return; }
  const subject = JSON.parse($("appeal-subject").value);
  $("appeal-submit").disabled = true;
  try {
    const a = await api("/appeals", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify(Object.assign(subject, { statement })),
    });
    $("appeal-statement").value = "";
    $("appeal-done").textContent = t("learner.appeal.filed", { id: a.id });
  } catch (e) {
    $("appeal-error").textContent = e.message;
  } finally {
    $("appeal-submit").disabled = false;
  }
  await loadAppealable();
  await refreshAppeals();
}

// -- camera ---------------------------------------------------------------------

async function openCamera() {
  const live = S.stream && S.stream.getVideoTracks().some((x) => x.readyState === "live");
  if (live) return S.stream;
  // The front camera, in portrait on a phone: the learner looks at the screen.
  S.stream = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
  });
  $("preview").srcObject = S.stream;
  await new Promise((resolve) => {
    const v = $("preview");
    if (v.readyState >= 2) resolve(); else v.onloadeddata = () => resolve();
  });
  return S.stream;
}

function grabFrame() {
  const v = $("preview"), c = $("grab");
  c.width = v.videoWidth || 640; c.height = v.videoHeight || 480;
  c.getContext("2d").drawImage(v, 0, 0, c.width, c.height);
  return new Promise((resolve) => c.toBlob(resolve, "image/jpeg", 0.85));
}

async function showStudy() {
  show("study");
  try {
    await openCamera();
  } catch (e) {
    $("study-error").textContent = t("learner.camera.failed", { error: `${e.name || ""} ${e.message || ""}`.trim() });
  }
  const courses = await api("/courses");
  const select = $("course");
  select.replaceChildren();
  for (const c of courses) {
    const o = document.createElement("option");
    o.value = c.id; o.textContent = t("learner.course.option", { name: c.name, hours: c.required_hours });
    select.appendChild(o);
  }
  $("start-button").disabled = courses.length === 0;
  if (!courses.length) $("study-error").textContent = t("learner.no_course");
  document.body.dataset.ready = "1";
  const resume = new URLSearchParams(location.hash.slice(1)).get("session");
  if (resume) {
    S.session = resume;
    enterSession();
    S.resuming = true;
    setState("checking", t("learner.state.reattaching"));
    await connect();
  }
}

// What this device looks like to the service. Only a keyed hash of it is kept, to see
// one device (or one room) studying for many learners.
function deviceFingerprint() {
  const n = navigator;
  const s = window.screen || {};
  return [n.userAgent, n.language, (n.languages || []).join(","), n.platform,
    n.hardwareConcurrency, n.deviceMemory, s.width, s.height, s.colorDepth,
    window.devicePixelRatio, Intl.DateTimeFormat().resolvedOptions().timeZone,
    n.maxTouchPoints].join("|").slice(0, 2000);
}

// -- the session ------------------------------------------------------------------

async function start() {
  $("study-error").textContent = "";
  showAdvice([]);
  $("start-button").disabled = true;
  try {
    await startSession();
  } finally {
    $("start-button").disabled = false;
  }
}

async function startSession() {
  delete document.body.dataset.refused;
  try { await openCamera(); } catch (e) {
    $("study-error").textContent = t("learner.camera.failed", { error: `${e.name || ""} ${e.message || ""}`.trim() });
    return;
  }
  const form = new FormData();
  form.append("course_id", $("course").value);
  S.fallbackForced = $("force-fallback").checked || !window.RTCPeerConnection;
  form.append("mode", S.fallbackForced ? "upload" : "webrtc");
  form.append("device", deviceFingerprint());
  setState("checking", t("learner.state.signing_in"));
  // A short burst, as the server asks for it: passive liveness looks at the frames.
  let res;
  try {
    const burst = await api("/sessions/sign-in");
    for (let i = 0; i < burst.frames; i++) {
      if (i) await new Promise((r) => setTimeout(r, burst.spacing_s * 1000));
      form.append("frame", await grabFrame(), `frame${i}.jpg`);
    }
    res = await api("/sessions", { method: "POST", body: form });
  } catch (e) {
    signInRefused(e);
    return;
  }
  S.session = res.session.session_id;
  S.credited = 0; S.ending = false; S.away = false;
  renderClock(0);
  enterSession();
  showResult(res.check);
  await connect();
}

// A refused sign-in: what happened, and what to do next.
function signInRefused(e) {
  document.body.dataset.refused = e.reason || "error";  // the code, for scripts only
  const verdictKey = `learner.verdict.${e.reason}`;
  const known = e.reason && t(verdictKey) !== verdictKey;
  if (e.reason === "not_enrolled" || e.reason === "reenrolment_needed") {
    setState("attention", t("learner.signin.not_enrolled"));
    $("enrol-button").hidden = false;
  } else if (known) {
    setState("attention", t("learner.signin.refused", { what: t(verdictKey) }));
  } else if (e.reason === "no_consent") {
    setState("idle", t("learner.state.not_started"));
    showConsent();
  } else {
    setState("idle", t("learner.state.not_started"));
    $("study-error").textContent = e.message;
  }
  if (e.body && e.body.issues) showAdvice(adviceFor(e.body.issues));
}

function enterSession() {
  $("start-controls").hidden = true;
  $("end-button").hidden = false;
  $("enrol-button").hidden = true;
  document.body.dataset.session = S.session;
  // The session id in the fragment: a reload or a language switch comes back to it.
  const params = new URLSearchParams(location.hash.slice(1));
  params.set("session", S.session);
  params.delete("token");
  history.replaceState(null, "", `#${params.toString()}`);
}

async function connect() {
  S.fallbackForced = S.fallbackForced || $("force-fallback").checked || !window.RTCPeerConnection;
  try { await openCamera(); } catch (e) {
    $("study-error").textContent = t("learner.camera.failed", { error: `${e.name || ""} ${e.message || ""}`.trim() });
    return;
  }
  // A page back from the background may find its old connection still being closed
  // on the server (`peer_exists`): it tries again a moment later.
  for (let attempt = 0; attempt < 4 && !S.ending && !S.away; attempt++) {
    if (!S.fallbackForced) {
      try {
        await connectWebRTC();
        return;
      } catch (e) {
        closePeer();
        if (await sessionGone(e)) return;
        if (e.reason === "peer_exists" || e.reason === "session_already_open") {
          await new Promise((r) => setTimeout(r, 1500));
          continue;
        }
        console.warn("WebRTC failed, using still frames", e);
      }
    }
    try {
      await connectFallback();
      return;
    } catch (e) {
      if (await sessionGone(e)) return;
      if (e.reason === "session_already_open") {
        await new Promise((r) => setTimeout(r, 1500));
        continue;
      }
      $("study-error").textContent = e.message;
      return;
    }
  }
}

// An error that says the session is over: show why it ended and stop.
async function sessionGone(e) {
  if (e.reason !== "session_ended") return false;
  await showEnded(null);
  return true;
}

function waitIce(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);
  });
}

async function connectWebRTC() {
  const track = S.stream.getVideoTracks()[0];
  const pc = new RTCPeerConnection({ iceServers: [] });
  S.pc = pc;
  // Nothing is sent until the server asks for frames at a check (active: false).
  const tr = pc.addTransceiver(track, {
    direction: "sendonly",
    sendEncodings: [{ active: false, maxFramerate: 2 }],
  });
  S.sender = tr.sender;
  const channel = pc.createDataChannel("supervision");
  S.channel = channel;
  channel.onmessage = (ev) => { try { handle(JSON.parse(ev.data)); } catch (_) { /* ignore */ } };
  channel.onopen = () => {
    channel.send(JSON.stringify({ type: "hello" }));
    channel.send(JSON.stringify(signals()));
  };
  await pc.setLocalDescription(await pc.createOffer());
  await waitIce(pc);
  const answer = await api(`/sessions/${S.session}/webrtc`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }),
  });
  await pc.setRemoteDescription(answer);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("WebRTC did not connect")), 10000);
    const check = () => {
      if (pc.connectionState === "connected") { clearTimeout(timer); resolve(); }
      if (pc.connectionState === "failed") { clearTimeout(timer); reject(new Error("WebRTC failed")); }
    };
    pc.addEventListener("connectionstatechange", check);
    check();
  });
  pc.addEventListener("connectionstatechange", () => {
    if (S.pc !== pc || S.ending || S.away) return;  // closed on purpose
    if (["failed", "closed", "disconnected"].includes(pc.connectionState)) {
      setState("paused", t("learner.paused.connection"));
    }
  });
  setMode("webrtc");
  beatEvery(S.beatSeconds || 10);
}

// Heartbeats on the data channel, as often as the server's hello asks (a third of its
// timeout; the hello may come before or after the connection is up); 10 s until it has.
function beatEvery(seconds) {
  if (S.beat) clearInterval(S.beat);
  S.beat = setInterval(() => {
    if (S.channel && S.channel.readyState === "open") {
      S.channel.send(JSON.stringify({ type: "heartbeat" }));
    }
  }, seconds * 1000);
}

async function setSending(on, fps, maxWidth) {
  if (!S.sender) return;
  const params = S.sender.getParameters();
  if (!params.encodings || !params.encodings.length) params.encodings = [{}];
  const width = (S.stream && S.stream.getVideoTracks()[0].getSettings().width) || 640;
  params.encodings[0].active = !!on && !S.ending;
  if (fps) params.encodings[0].maxFramerate = fps;
  params.encodings[0].scaleResolutionDownBy = Math.max(1, width / (maxWidth || 640));
  params.degradationPreference = "maintain-resolution";
  try { await S.sender.setParameters(params); } catch (e) { console.warn("setParameters", e); }
}

function closePeer() {
  if (S.beat) { clearInterval(S.beat); S.beat = null; }
  const pc = S.pc;
  S.pc = null; S.sender = null; S.channel = null;
  if (pc) { try { pc.close(); } catch (_) { /* closed */ } }
}

async function connectFallback() {
  await api(`/sessions/${S.session}/live`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ mode: "upload" }),
  });
  setMode("upload");
  sendSignals();
  S.polling = true;
  pollLoop(++S.pollGen);
}

async function pollLoop(gen) {
  // One loop per attachment: a loop of an earlier one (the page went away and came
  // back while its long-poll was waiting) stops at its next turn.
  const mine = () => S.polling && S.session && S.pollGen === gen && !S.ending;
  while (mine()) {
    let messages = [];
    try {
      messages = await api(`/sessions/${S.session}/messages?wait=20`);
    } catch (e) {
      if (!mine()) break;
      if (e.reason === "session_ended") { S.polling = false; await showEnded(null); break; }
      if (e.reason === "not_live" || e.status === 409 || e.status === 403) { S.polling = false; break; }
      await new Promise((r) => setTimeout(r, 2000));
      continue;
    }
    if (!mine()) break;
    for (const m of messages) await handle(m);
  }
}

async function sendFrames(m) {
  if (S.ending || S.away) return;
  const form = new FormData();
  form.append("check_id", m.check_id);
  form.append("nonce", m.nonce);
  const count = m.count || 1;
  for (let i = 0; i < count; i++) {
    form.append("frames", await grabFrame(), `f${i}.jpg`);
    if (i + 1 < count) await new Promise((r) => setTimeout(r, (m.spacing || 0.5) * 1000));
    if (S.ending) return;  // End was pressed while the frames were being taken
  }
  try {
    await api(`/sessions/${S.session}/frames`, { method: "POST", body: form });
  } catch (e) {
    // A session ended while the frames were on their way (End raced the check) is not
    // an error to show.
    if (!S.ending && e.reason !== "session_ended") console.warn("frames", e);
  }
}

async function handle(m) {
  if (S.ending && m.type !== "state") return;
  switch (m.type) {
    case "capture":
      if (S.mode === "upload") { if (m.on && m.check_id) sendFrames(m); }
      else await setSending(m.on, m.fps, m.max_width);
      break;
    case "hello":
      if (m.heartbeat_s > 0) {
        S.beatSeconds = m.heartbeat_s;
        if (S.beat) beatEvery(m.heartbeat_s);
      }
      break;
    case "checking":
      setState("checking", t(m.kind === "identity" ? "learner.state.checking_identity" : "learner.state.checking_presence"));
      break;
    case "result": showResult(m); break;
    case "prompt": showPrompt(m); break;
    case "challenge": showChallenge(m); break;
    case "state": await applyState(m); break;
    default: break;
  }
}

// -- liveness: challenges and the page's own signals -------------------------------

function showChallenge(m) {
  const el = $("challenge");
  el.textContent = t(`challenge.${m.kind}`);
  el.hidden = false;
  document.body.dataset.challenge = m.kind;
  setState("checking", t("learner.state.challenge", { action: t(`challenge.${m.kind}`), seconds: m.time_limit_s || 5 }));
  if (S.challengeTimer) clearTimeout(S.challengeTimer);
  S.challengeTimer = setTimeout(() => { el.hidden = true; delete document.body.dataset.challenge; },
    (m.time_limit_s || 5) * 1000 + 500);
}

function signals(hidden) {
  const track = S.stream && S.stream.getVideoTracks()[0];
  const st = track ? track.getSettings() : {};
  return {
    type: "signals",
    label: track ? track.label : null,
    settings: { width: st.width, height: st.height, frameRate: st.frameRate },
    hidden: hidden === undefined ? document.visibilityState === "hidden" : hidden,
  };
}

async function sendSignals() {
  if (!S.session || S.ending) return;
  const body = signals();
  if (S.mode === "webrtc" && S.channel && S.channel.readyState === "open") {
    S.channel.send(JSON.stringify(body));
  } else if (S.mode === "upload") {
    delete body.type;
    try {
      await api(`/sessions/${S.session}/signals`, {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
      });
    } catch (_) { /* reported again on the next change */ }
  }
}

// -- the page in the background -----------------------------------------------------

// The screen locked, another app or tab came to the front, or the page is being left:
// a phone stops the camera, so the page tells the server, which pauses the session
// with the reason `page_hidden` (the clock stops), and lets go of its connection.
async function pageAway() {
  if (!S.session || S.ending || S.away || !S.mode) return;
  S.away = true;
  S.polling = false;
  hideChallenge();
  setState("paused", t("learner.paused.page_hidden"));
  $("prompt").textContent = "";
  const body = signals(true);
  delete body.type;
  // keepalive: the report goes out even if the page is frozen or unloaded next.
  const report = fetch(`/api/v1/sessions/${S.session}/signals`, {
    method: "POST", keepalive: true,
    headers: { Authorization: `Bearer ${S.token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  }).catch(() => null);
  await Promise.race([report, new Promise((r) => setTimeout(r, 2000))]);
  closePeer();
}

// The page is in front again: reconnect; the server asks for an identity check
// (with a challenge where the service asks one of a resuming session) before the
// clock runs again.
async function pageBack() {
  if (!S.away) return;
  S.away = false;
  if (!S.session || S.ending) return;
  S.resuming = true;
  setState("checking", t("learner.state.resuming"));
  await connect();
}

function onVisibility() {
  if (document.visibilityState === "hidden") pageAway(); else pageBack();
}

// -- display ------------------------------------------------------------------

function adviceFor(issues) {
  return (issues || []).map((code) => {
    const key = `advice.${code}`;
    const text = t(key);
    return text === key ? t("learner.advice.other") : text;
  });
}

function showAdvice(list) {
  const ul = $("advice"); ul.replaceChildren();
  for (const a of list || []) { const li = document.createElement("li"); li.textContent = a; ul.appendChild(li); }
}

function hideChallenge() {
  $("challenge").hidden = true;
  delete document.body.dataset.challenge;
}

// What a failed check means for the learner, by its verdict: never the code itself.
function failedSentence(r) {
  const key = `learner.failed.${r.verdict}`;
  const text = t(key, { action: r.challenge ? t(`challenge.${r.challenge}`) : t("learner.challenge.generic") });
  return text === key ? t("learner.failed.other") : text;
}

function showResult(r) {
  S.lastResult = r;
  S.resuming = false;
  const kind = t(r.kind === "presence" ? "learner.kind.presence" : "learner.kind.identity");
  const verdictKey = `verdict.${r.verdict}`;
  const verdict = t(verdictKey) === verdictKey ? t("learner.failed.other") : t(verdictKey);
  $("last-check").textContent = t("learner.last_check.value", { kind, verdict, time: window.svI18n ? window.svI18n.time(new Date().toISOString()).slice(11) : "" });
  $("last-check").dataset.verdict = r.verdict;
  // The quality issues by code (their advice in this language); the server's English
  // advice only stands in for a server that sends no codes.
  showAdvice(r.issues ? adviceFor(r.issues) : []);
  if (r.verdict !== "deferred" && r.verdict.startsWith("challenge")) hideChallenge();
  if (r.passed) {
    hideChallenge();
    if (r.verdict === "deferred") setState("verified", t("learner.state.deferred"));
    else setState("verified", t("learner.state.verified"));
    $("prompt").textContent = "";
  } else {
    setState("attention", failedSentence(r));
  }
}

function showPrompt(m) {
  if (!m.message && !m.deadline) { $("prompt").textContent = ""; return; }
  // The deadline is the server's; a phone whose clock is far off gets the plain words.
  const seconds = m.deadline ? Math.round((Date.parse(m.deadline) - Date.now()) / 1000) : NaN;
  $("prompt").textContent = seconds > 0 && seconds <= 600
    ? t("learner.prompt.window", { seconds }) : t("learner.prompt.retry");
}

function setMode(mode) {
  S.mode = mode;
  $("mode").textContent = t(mode === "webrtc" ? "learner.mode.webrtc" : "learner.mode.upload");
  document.body.dataset.mode = mode;
}

// `kind` is what the page's styles and tests key on (verified, checking, attention,
// paused, ended, idle); `sentence` is what the learner reads.
function setState(kind, sentence) {
  const el = $("state");
  el.textContent = sentence;
  el.className = `state state-${kind}`;
  document.body.dataset.state = kind;
}

// Why a session paused, as a sentence (the ledger's reason codes).
function pausedSentence(note) {
  if (!note) return t("learner.paused.other");
  if (note.startsWith("disconnected")) return t("learner.paused.connection");
  if (note.startsWith("check_failed:")) return failedSentence({ verdict: note.slice(13) });
  const key = `learner.paused.${note}`;
  const text = t(key);
  return text === key ? t("learner.paused.other") : text;
}

async function applyState(m) {
  if (typeof m.credited_seconds === "number") renderClock(m.credited_seconds);
  S.running = !!m.clock_running;
  if (m.state === "ended") { await showEnded(m.reason || null); return; }
  if (S.ending || S.away) return;
  // Back on the page, the server's "still paused" (no reason) before the resuming
  // check leaves the sentence that says what comes next.
  if (m.state === "paused" && !m.note && S.resuming) return;
  if (m.state === "paused") setState("paused", pausedSentence(m.note));
  else if (m.note === "please_face_the_camera") {
    const r = S.lastResult;
    setState("attention", r && !r.passed ? failedSentence(r) : t("learner.failed.other"));
  } else if (m.clock_running) setState("verified", t("learner.state.verified"));
}

// The clock: the credited seconds the server reported, never less than shown before
// (the ledger's credited time only grows; a late or reordered message cannot take the
// clock back).
function renderClock(seconds) {
  if (typeof seconds === "number" && seconds > S.credited) S.credited = seconds;
  const s = Math.floor(S.credited);
  const hh = String(Math.floor(s / 3600)).padStart(2, "0");
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  $("clock").textContent = `${hh}:${mm}:${ss}`;
  $("clock").dataset.credited = String(S.credited);
}

// The ledger's credited time of the session, read once more (at the end).
async function refreshCredited() {
  if (!S.session) return;
  try {
    const c = await api(`/sessions/${S.session}/credited`);
    renderClock(c.credited_seconds);
  } catch (_) { /* the figure shown stays */ }
}

// The session is over: say why, with the final credited time.
async function showEnded(reason) {
  let why = reason;
  if (!why && S.session) {
    try { why = (await api(`/sessions/${S.session}`)).end_reason; } catch (_) { why = null; }
  }
  const key = `learner.ended.${why}`;
  const text = why && t(key) !== key ? t(key) : t("learner.ended.other");
  S.ending = true;
  hideChallenge();
  $("prompt").textContent = "";
  setState("ended", text);
  document.body.dataset.endReason = why || "";
  finish();
  await refreshCredited();
}

async function end() {
  // From now on nothing is uploaded: no frames, no signals; the camera is not sent.
  S.ending = true;
  S.polling = false;
  $("end-button").disabled = true;
  await setSending(false);
  closePeer();
  try {
    await api(`/sessions/${S.session}/end`, { method: "POST" });
  } catch (e) {
    // Ended already (a check that failed it, or the server ending it as End was
    // pressed): the reason it ended is shown below, not an error.
    if (e.reason !== "session_ended") $("study-error").textContent = e.message;
  }
  $("end-button").disabled = false;
  await showEnded(null);
}

function finish() {
  S.polling = false; closePeer();
  S.running = false;
  $("end-button").hidden = true; $("start-controls").hidden = false;
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.has("session")) {
    params.delete("session");
    history.replaceState(null, "", params.toString() ? `#${params.toString()}` : location.pathname + location.search);
  }
}

async function enrolFromCamera() {
  $("study-error").textContent = "";
  showAdvice([]);
  try { await openCamera(); } catch (e) {
    $("study-error").textContent = t("learner.camera.failed", { error: `${e.name || ""} ${e.message || ""}`.trim() });
    return;
  }
  const form = new FormData();
  form.append("photo", await grabFrame(), "photo.jpg");
  $("enrol-button").disabled = true;
  try {
    await api(`/learners/${S.me.learner_id}/templates`, { method: "POST", body: form });
    $("enrol-button").hidden = true;
    setState("idle", t("learner.enrol.done"));
  } catch (e) {
    // A photo refused by a quality gate says how to take a better one.
    const key = `learner.enrol.${e.reason}`;
    const what = t(key) !== key ? t(key) : e.message;
    setState("attention", t("learner.enrol.refused", { what }));
    const tips = e.body && e.body.issues && e.body.issues.length ? adviceFor(e.body.issues) : [];
    tips.push(t("learner.enrol.tips"));
    showAdvice(tips);
  } finally {
    $("enrol-button").disabled = false;
  }
}

window.addEventListener("DOMContentLoaded", async () => {
  if (window.svI18n) await window.svI18n.ready;
  translatePage();
  setState("idle", t("learner.state.not_started"));
  $("signin-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("token").value); });
  $("consent-agree").addEventListener("change", () => { $("consent-button").disabled = !$("consent-agree").checked; });
  $("consent-button").addEventListener("click", giveConsent);
  $("start-button").addEventListener("click", start);
  $("end-button").addEventListener("click", end);
  $("enrol-button").addEventListener("click", enrolFromCamera);
  $("mydata-button").addEventListener("click", showMyData);
  $("withdraw-button").addEventListener("click", withdrawConsent);
  $("alt-button").addEventListener("click", askAlternative);
  $("appeal-load").addEventListener("click", loadAppealable);
  $("appeal-submit").addEventListener("click", fileAppeal);
  document.addEventListener("visibilitychange", onVisibility);
  window.addEventListener("pagehide", pageAway);
  window.addEventListener("pageshow", (ev) => { if (ev.persisted) pageBack(); });
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  const saved = fromLink || sessionStorage.getItem("sv-token");
  if (saved) { $("token").value = saved; signIn(saved); }
});
