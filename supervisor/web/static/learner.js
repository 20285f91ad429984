// The learner's page: sign-in, consent, camera, and a supervised study session.
// No build step. The token stays in sessionStorage (never a cookie, so no CSRF).
"use strict";

const $ = (id) => document.getElementById(id);
const S = {
  token: null, me: null, session: null, pc: null, sender: null, channel: null,
  stream: null, mode: null, credited: 0, running: false, tick: null, beat: null,
  beatSeconds: null,
  polling: false, fallbackForced: false,
  // Once End is pressed nothing more is uploaded: in-flight requests are aborted
  // (`aborts`) and awaited (`uploads`) before the session is ended.
  ending: false, aborts: new Set(), uploads: new Set(),
};

// A request that End may cut short: aborted (quietly) when the learner ends.
function abortable() {
  const ctl = new AbortController();
  S.aborts.add(ctl);
  return { signal: ctl.signal, done: () => S.aborts.delete(ctl) };
}

// What a request raced with the end of the session: aborted by End, or refused because
// the session ended meanwhile (409 session_ended). Neither is an error to report.
function endedRace(e) {
  return (e && e.name === "AbortError") || (e && e.status === 409 && (S.ending || e.reason === "session_ended"));
}

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {}, { Authorization: `Bearer ${S.token}` });
  const res = await fetch(`/api/v1${path}`, Object.assign({}, opts, { headers }));
  let body = null;
  const text = await res.text();
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  if (!res.ok) {
    const err = new Error((body && body.message) || `HTTP ${res.status}`);
    err.reason = body && body.reason; err.status = res.status; err.body = body;
    throw err;
  }
  return body;
}

function show(section) {
  for (const id of ["signin", "consent", "study"]) $(id).hidden = id !== section;
}

// -- sign-in and consent ------------------------------------------------------

async function signIn(token) {
  S.token = token.trim();
  try {
    S.me = await api("/me");
  } catch (e) {
    $("signin-error").textContent = `Sign-in failed: ${e.message}`;
    return;
  }
  if (S.me.role !== "learner") {
    $("signin-error").textContent = "This page is for learners; use a learner's token.";
    return;
  }
  sessionStorage.setItem("sv-token", S.token);
  const learner = await api(`/learners/${S.me.learner_id}`);
  $("who").textContent = `${learner.full_name} (${learner.id_number_masked})`;
  $("mydata").hidden = false;
  refreshAlternative();
  const consent = await api(`/learners/${S.me.learner_id}/consent`);
  if (!consent.consent || consent.consent.text_version !== consent.current_text_version) {
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
  const table = document.createElement("table");
  addRow(table, head);
  for (const r of rows) addRow(table, r);
  view.appendChild(table);
}

async function showMyData() {
  $("mydata-error").textContent = "";
  try {
    const d = await api(`/learners/${S.me.learner_id}/data`);
    const view = $("mydata-view");
    view.replaceChildren();
    const me = d.learner;
    addTable(view, "Identity", ["name", "ID number", "institution", "registered"],
      [[me.full_name, me.id_number_masked, me.institution.name, me.registered_at]]);
    addTable(view, "Consent", ["event", "text version", "at"],
      d.consents.map((c) => [c.event, c.text_version, c.at]));
    addTable(view, "Face templates (the face numbers themselves are never shown)",
      ["id", "created", "photo hash"],
      d.face_templates.map((t) => [t.id, t.created_at, t.evidence_sha256]));
    addTable(view, "Sessions", ["session", "started", "ended", "checks", "credited minutes"],
      d.sessions.map((x) => [x.session_id, x.started_at, x.ended_at, x.checks,
        (x.credited_seconds / 60).toFixed(1)]));
    addTable(view, "Evidence frames", ["what", "kept until", "deleted at", "hash"],
      d.evidence_frames.map((f) => [f.what, f.retain_until, f.deleted_at, f.sha256]));
    addTable(view, "Flags", ["kind", "status", "raised"],
      d.flags.map((f) => [f.kind, f.status, f.raised_at]));
    addTable(view, "Who read your data", ["when", "who", "role", "what"],
      d.read_by.map((r) => [r.at, r.who, r.role, r.what]));
  } catch (e) {
    $("mydata-error").textContent = e.message;
  }
}

async function withdrawConsent() {
  if (!window.confirm("Withdraw consent? Your face templates are deleted and open sessions end.")) return;
  try {
    const r = await api(`/learners/${S.me.learner_id}/consent`, { method: "DELETE" });
    if (S.running) finish();
    if ($("mydata-view").childElementCount) await showMyData();
    $("mydata-error").textContent =
      `Consent withdrawn: ${r.templates_deleted} face template(s) deleted, ${r.sessions_ended} session(s) ended.`;
  } catch (e) {
    $("mydata-error").textContent = e.message;
  }
}

async function refreshAlternative() {
  try {
    const a = await api(`/learners/${S.me.learner_id}/alternative`);
    $("alt-status").textContent = a.status;
    $("alt-button").disabled = a.status === "requested" || a.status === "approved";
  } catch (e) {
    $("alt-status").textContent = "unknown";
  }
}

async function askAlternative() {
  const reason = $("alt-reason").value.trim() || "I prefer not to use face recognition.";
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

// -- camera ---------------------------------------------------------------------

async function openCamera() {
  if (S.stream) return S.stream;
  S.stream = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
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
    $("study-error").textContent = `The camera could not be opened: ${e.name} ${e.message}`;
  }
  const courses = await api("/courses");
  const select = $("course");
  select.innerHTML = "";
  for (const c of courses) {
    const o = document.createElement("option");
    o.value = c.id; o.textContent = `${c.name} (${c.required_hours} h)`;
    select.appendChild(o);
  }
  $("start-button").disabled = courses.length === 0;
  if (!courses.length) $("study-error").textContent = "No course is open to you yet.";
  document.body.dataset.ready = "1";
  const resume = new URLSearchParams(location.hash.slice(1)).get("session");
  if (resume) {
    S.session = resume;
    enterSession();
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
  const form = new FormData();
  form.append("course_id", $("course").value);
  S.fallbackForced = $("force-fallback").checked || !window.RTCPeerConnection;
  form.append("mode", S.fallbackForced ? "upload" : "webrtc");
  form.append("device", deviceFingerprint());
  setState("checking", "identity check");
  // A short burst, as the server asks for it: passive liveness looks at the frames.
  const burst = await api("/sessions/sign-in");
  for (let i = 0; i < burst.frames; i++) {
    if (i) await new Promise((r) => setTimeout(r, burst.spacing_s * 1000));
    form.append("frame", await grabFrame(), `frame${i}.jpg`);
  }
  try {
    const res = await api("/sessions", { method: "POST", body: form });
    S.session = res.session.session_id;
    S.credited = 0;
    showResult(res.check);
  } catch (e) {
    const verdicts = ["no_face", "multiple_faces", "low_quality", "mismatch"];
    if (verdicts.includes(e.reason)) setState("attention", "the sign-in check did not pass");
    else setState("not started", "");
    $("study-error").textContent = `${e.message}${e.reason ? ` (${e.reason})` : ""}`;
    if (e.body && e.body.issues) showAdvice(e.body.issues.map(adviceFor));
    if (e.reason === "not_enrolled") $("enrol-button").hidden = false;
    return;
  }
  enterSession();
  await connect();
}

function enterSession() {
  S.ending = false;
  $("start-controls").hidden = true;
  $("end-button").hidden = false;
  document.body.dataset.session = S.session;
}

async function connect() {
  S.fallbackForced = S.fallbackForced || $("force-fallback").checked || !window.RTCPeerConnection;
  if (!S.fallbackForced) {
    try {
      await connectWebRTC();
      return;
    } catch (e) {
      console.warn("WebRTC failed, using still frames", e);
      if (e.reason === "session_ended" || e.reason === "session_already_open") {
        $("study-error").textContent = e.message; return;
      }
      closePeer();
    }
  }
  await connectFallback();
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
    const t = setTimeout(() => reject(new Error("WebRTC did not connect")), 10000);
    const check = () => {
      if (pc.connectionState === "connected") { clearTimeout(t); resolve(); }
      if (pc.connectionState === "failed") { clearTimeout(t); reject(new Error("WebRTC failed")); }
    };
    pc.addEventListener("connectionstatechange", check);
    check();
  });
  pc.addEventListener("connectionstatechange", () => {
    if (["failed", "closed", "disconnected"].includes(pc.connectionState)) {
      setState("paused", "connection lost");
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
  params.encodings[0].active = !!on;
  if (fps) params.encodings[0].maxFramerate = fps;
  params.encodings[0].scaleResolutionDownBy = Math.max(1, width / (maxWidth || 640));
  params.degradationPreference = "maintain-resolution";
  try { await S.sender.setParameters(params); } catch (e) { console.warn("setParameters", e); }
}

function closePeer() {
  if (S.beat) { clearInterval(S.beat); S.beat = null; }
  if (S.pc) { try { S.pc.close(); } catch (_) { /* closed */ } }
  S.pc = null; S.sender = null; S.channel = null;
}

async function connectFallback() {
  await api(`/sessions/${S.session}/live`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ mode: "upload" }),
  });
  setMode("upload");
  sendSignals();
  S.polling = true;
  pollLoop();
}

async function pollLoop() {
  while (S.polling && S.session && !S.ending) {
    let messages = [];
    const req = abortable();
    try {
      messages = await api(`/sessions/${S.session}/messages?wait=20`, { signal: req.signal });
    } catch (e) {
      if (S.ending || endedRace(e)) { S.polling = false; break; }
      if (e.reason === "not_live" || e.status === 409 || e.status === 403) { S.polling = false; break; }
      await new Promise((r) => setTimeout(r, 2000));
      continue;
    } finally { req.done(); }
    for (const m of messages) { if (!S.ending) await handle(m); }
  }
}

function sendFrames(m) {
  const sending = uploadFrames(m).finally(() => {
    S.uploads.delete(sending);
    if (!S.uploads.size) delete document.body.dataset.uploading;
  });
  S.uploads.add(sending);
  document.body.dataset.uploading = m.check_id;
  return sending;
}

async function uploadFrames(m) {
  const session = S.session;
  const req = abortable();
  try {
    const form = new FormData();
    form.append("check_id", m.check_id);
    form.append("nonce", m.nonce);
    const count = m.count || 1;
    for (let i = 0; i < count; i++) {
      if (S.ending) return;
      form.append("frames", await grabFrame(), `f${i}.jpg`);
      if (i + 1 < count) await new Promise((r) => setTimeout(r, (m.spacing || 0.5) * 1000));
    }
    if (S.ending || S.session !== session) return;
    await api(`/sessions/${session}/frames`, { method: "POST", body: form, signal: req.signal });
  } catch (e) {
    if (!endedRace(e)) console.warn("frames", e);
  } finally { req.done(); }
}

async function handle(m) {
  switch (m.type) {
    case "capture":
      if (S.mode === "upload") { if (m.on && m.check_id && !S.ending) sendFrames(m); }
      else await setSending(m.on, m.fps, m.max_width);
      break;
    case "hello":
      if (m.heartbeat_s > 0) {
        S.beatSeconds = m.heartbeat_s;
        if (S.beat) beatEvery(m.heartbeat_s);
      }
      break;
    case "checking": setState("checking", `${m.kind} check`); break;
    case "result": showResult(m); break;
    case "prompt": $("prompt").textContent = m.message || ""; break;
    case "challenge": showChallenge(m); break;
    case "state": applyState(m); break;
    default: break;
  }
}

// -- liveness: challenges and the page's own signals -------------------------------

function showChallenge(m) {
  const el = $("challenge");
  el.textContent = m.prompt;
  el.hidden = false;
  document.body.dataset.challenge = m.kind;
  setState("checking", "follow the instruction");
  setTimeout(() => { el.hidden = true; delete document.body.dataset.challenge; },
    (m.time_limit_s || 5) * 1000 + 500);
}

function signals() {
  const track = S.stream && S.stream.getVideoTracks()[0];
  const st = track ? track.getSettings() : {};
  return {
    type: "signals",
    label: track ? track.label : null,
    settings: { width: st.width, height: st.height, frameRate: st.frameRate },
    hidden: document.visibilityState === "hidden",
  };
}

async function sendSignals() {
  if (!S.session) return;
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

// -- display ------------------------------------------------------------------

const ADVICE = {
  face_too_small: "Move closer to the camera.",
  too_blurred: "Hold still and make sure the camera is in focus.",
  too_dark: "Turn on a light or face a window.",
  too_bright: "Move away from strong light behind or in front of you.",
  face_cut_off: "Move so that your whole face is inside the picture.",
  face_occluded: "Please take off your mask.",
};
function adviceFor(issue) { return ADVICE[issue] || issue; }

function showAdvice(list) {
  const ul = $("advice"); ul.innerHTML = "";
  for (const a of list || []) { const li = document.createElement("li"); li.textContent = a; ul.appendChild(li); }
}

function showResult(r) {
  $("last-check").textContent = `${r.kind} — ${r.verdict}`;
  showAdvice(r.advice || []);
  if (r.passed) { setState("verified", ""); $("prompt").textContent = ""; }
  else if (r.verdict === "no_face") setState("attention", "please face the camera");
  else setState("attention", r.verdict.replace("_", " "));
}

function setMode(mode) {
  S.mode = mode;
  $("mode").textContent = mode === "webrtc" ? "video (WebRTC)" : "still frames (fallback)";
  document.body.dataset.mode = mode;
}

function setState(kind, why) {
  const el = $("state");
  const label = { verified: "verified", checking: "check in progress", attention: "please face the camera",
    paused: "paused", ended: "ended" }[kind] || kind;
  el.textContent = why && kind !== "verified" ? `${label}: ${why}` : label;
  el.className = `state-${kind}`;
  document.body.dataset.state = kind;
}

function applyState(m) {
  if (typeof m.credited_seconds === "number") S.credited = m.credited_seconds;
  S.running = !!m.clock_running;
  renderClock();
  if (m.state === "ended") { setState("ended", ""); finish(); return; }
  if (m.state === "paused") setState("paused", m.note || "the clock is stopped until an identity check passes");
  else if (m.note === "please_face_the_camera") setState("attention", "please face the camera");
  else if (m.clock_running) setState("verified", "");
}

function renderClock() {
  const s = Math.floor(S.credited);
  const hh = String(Math.floor(s / 3600)).padStart(2, "0");
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  $("clock").textContent = `${hh}:${mm}:${ss}`;
}

async function end() {
  // Stop uploading first: no frame goes out after End, and none in flight races the end.
  S.ending = true; S.polling = false;
  for (const ctl of S.aborts) ctl.abort();
  await Promise.allSettled([...S.uploads]);
  try {
    await api(`/sessions/${S.session}/end`, { method: "POST" });
  } catch (e) {
    if (!(e.status === 409 && e.reason === "session_ended")) console.warn(e);  // already ended: fine
  }
  setState("ended", ""); finish();
}

function finish() {
  S.ending = true; S.polling = false; closePeer();
  for (const ctl of S.aborts) ctl.abort();
  $("end-button").hidden = true; $("start-controls").hidden = false;
}

async function enrolFromCamera() {
  const form = new FormData();
  form.append("photo", await grabFrame(), "photo.jpg");
  try {
    await api(`/learners/${S.me.learner_id}/templates`, { method: "POST", body: form });
    $("enrol-button").hidden = true; $("study-error").textContent = "Enrolled. You can start now.";
  } catch (e) {
    $("study-error").textContent = `Enrolment refused: ${e.message}`;
  }
}

window.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("token").value); });
  $("consent-agree").addEventListener("change", () => { $("consent-button").disabled = !$("consent-agree").checked; });
  $("consent-button").addEventListener("click", giveConsent);
  $("start-button").addEventListener("click", start);
  $("end-button").addEventListener("click", end);
  $("enrol-button").addEventListener("click", enrolFromCamera);
  $("mydata-button").addEventListener("click", showMyData);
  $("withdraw-button").addEventListener("click", withdrawConsent);
  $("alt-button").addEventListener("click", askAlternative);
  document.addEventListener("visibilitychange", sendSignals);
  S.tick = setInterval(() => { if (S.running) { S.credited += 1; renderClock(); } }, 1000);
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  const saved = fromLink || sessionStorage.getItem("sv-token");
  if (saved) { $("token").value = saved; signIn(saved); }
});
