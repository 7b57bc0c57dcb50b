// proxyAI demo page: key, upload, progress, transcript with playback, speaker names, export, history.
// Plain JavaScript, no build step, no network beyond this server. Text from the server is only ever
// put into the page as text (textContent), never as HTML.
"use strict";

const KEY_STORAGE = "proxyai.apiKey";
const COLOURS = 8;
const state = { key: localStorage.getItem(KEY_STORAGE) || "", job: null, result: null, names: {}, audioUrl: null, poll: null, stopAt: null };
const $ = (id) => document.getElementById(id);

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

function say(id, text, isError = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function api(path, options = {}) {
  const headers = Object.assign({ "X-API-Key": state.key }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  return response;
}

async function problem(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch (_) {
    return `the server answered ${response.status}`;
  }
}

function explain(status, detail) {
  if (status === 401) return "This API key is not valid. Check it, or ask your administrator for one.";
  if (status === 413) return "The file is too large for this server.";
  if (status === 415) return "This file is not audio or video with sound, so it cannot be transcribed.";
  if (status === 429) return "Too many requests from this computer. Wait a minute and try again.";
  if (status === 0) return "The server cannot be reached.";
  return detail || `Something went wrong (${status}).`;
}

// ---- key ---------------------------------------------------------------------------------------
async function checkKey() {
  if (!state.key) {
    showSignedIn(false);
    say("key-status", "Enter your API key to start.");
    return;
  }
  let response;
  try {
    response = await api("/jobs?limit=20");
  } catch (_) {
    say("key-status", explain(0), true);
    return;
  }
  if (!response.ok) {
    showSignedIn(false);
    say("key-status", explain(response.status, await problem(response)), true);
    return;
  }
  showSignedIn(true);
  say("key-status", "Key accepted.");
  renderHistory((await response.json()).items);
}

function showSignedIn(on) {
  $("upload-section").hidden = !on;
  $("history-section").hidden = !on;
  if (!on) $("job-section").hidden = true;
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("key-input").value.trim();
  localStorage.setItem(KEY_STORAGE, state.key);
  checkKey();
});

$("key-forget").addEventListener("click", () => {
  localStorage.removeItem(KEY_STORAGE);
  state.key = "";
  $("key-input").value = "";
  showSignedIn(false);
  say("key-status", "The key is forgotten on this computer.");
});

// ---- upload ------------------------------------------------------------------------------------
const drop = $("drop");
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file-input").click(); } });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files.length) {
    $("file-input").files = e.dataTransfer.files;
    showFileName();
  }
});
$("file-input").addEventListener("change", showFileName);

function showFileName() {
  const file = $("file-input").files[0];
  $("file-name").textContent = file ? `${file.name} (${(file.size / 1e6).toFixed(1)} MB)` : "";
}

$("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("file-input").files[0];
  if (!file) {
    say("upload-status", "Choose a file first.", true);
    return;
  }
  const form = new FormData();
  form.append("file", file);
  if ($("language").value) form.append("language", $("language").value);
  if ($("speakers").value) form.append("num_speakers", $("speakers").value);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/upload/");
  xhr.setRequestHeader("X-API-Key", state.key);
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) {
      const share = Math.round((100 * e.loaded) / e.total);
      $("upload-bar").style.width = `${share}%`;
      say("upload-status", `Uploading… ${share}%`);
    }
  };
  xhr.onerror = () => say("upload-status", explain(0), true);
  xhr.onload = () => {
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status !== 200) {
      $("upload-bar").style.width = "0";
      say("upload-status", explain(xhr.status, body.detail), true);
      return;
    }
    say("upload-status", "Uploaded.");
    openJob(body.upload_id);
    refreshHistory();
  };
  $("upload-bar").style.width = "0";
  say("upload-status", "Uploading…");
  xhr.send(form);
});

// ---- a job -------------------------------------------------------------------------------------
function openJob(id) {
  clearInterval(state.poll);
  state.job = id;
  state.result = null;
  $("job-section").hidden = false;
  $("result-block").hidden = true;
  $("job-error").hidden = true;
  $("progress-block").hidden = false;
  $("segments").replaceChildren();
  if (state.audioUrl) URL.revokeObjectURL(state.audioUrl);
  state.audioUrl = null;
  $("player").removeAttribute("src");
  pollStatus();
  state.poll = setInterval(pollStatus, 1000);
}

async function pollStatus() {
  const id = state.job;
  const response = await api(`/status/${id}`);
  if (id !== state.job) return;
  if (!response.ok) {
    clearInterval(state.poll);
    showJobError(explain(response.status, await problem(response)));
    return;
  }
  const s = await response.json();
  $("job-bar").style.width = `${s.progress}%`;
  $("job-progress").setAttribute("aria-valuenow", String(s.progress));
  say("job-stage", `${s.filename}: ${s.stage} — ${s.progress}%`);
  if (s.status === "failed") {
    clearInterval(state.poll);
    showJobError(`The job failed: ${s.error || "no reason given"}`);
  } else if (s.status === "done") {
    clearInterval(state.poll);
    await loadResult(id);
  }
  if (s.status === "done" || s.status === "failed") refreshHistory();
}

function showJobError(text) {
  $("progress-block").hidden = true;
  const el = $("job-error");
  el.textContent = text;
  el.hidden = false;
}

async function loadResult(id) {
  const response = await api(`/results/${id}`);
  if (!response.ok) {
    showJobError(explain(response.status, await problem(response)));
    return;
  }
  state.result = await response.json();
  state.names = {};
  for (const s of state.result.speakers) state.names[s.id] = s.label;
  $("progress-block").hidden = true;
  $("result-block").hidden = false;
  renderSpeakers();
  renderSegments();
  loadAudio(id);
}

async function loadAudio(id) {
  const response = await api(`/audio/${id}`);
  if (!response.ok || id !== state.job) return;
  state.audioUrl = URL.createObjectURL(await response.blob());
  $("player").src = state.audioUrl;
}

function colourOf(speaker) {
  const index = state.result.speakers.findIndex((s) => s.id === speaker);
  return `speaker-${(index < 0 ? 0 : index) % COLOURS}`;
}

function renderSpeakers() {
  const list = $("speaker-list");
  list.replaceChildren();
  for (const s of state.result.speakers) {
    const li = document.createElement("li");
    li.className = colourOf(s.id);
    const label = document.createElement("label");
    label.textContent = `${s.id} `;
    const input = document.createElement("input");
    input.type = "text";
    input.maxLength = 100;
    input.value = state.names[s.id];
    input.dataset.speaker = s.id;
    input.setAttribute("aria-label", `Name for ${s.id}`);
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); saveName(s.id, input.value); } });
    input.addEventListener("change", () => saveName(s.id, input.value));
    label.append(input);
    li.append(label);
    list.append(li);
  }
}

async function saveName(speaker, name) {
  const clean = name.trim();
  if (!clean || clean === state.names[speaker]) return;
  const response = await api(`/labels/${state.job}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ [speaker]: clean }),
  });
  if (!response.ok) {
    say("label-status", explain(response.status, await problem(response)), true);
    return;
  }
  const body = await response.json();
  Object.assign(state.names, body.labels);
  for (const el of document.querySelectorAll(`.speaker-name[data-speaker="${CSS.escape(speaker)}"]`)) {
    el.textContent = state.names[speaker];
  }
  say("label-status", `${speaker} is now “${state.names[speaker]}”.`);
}

function renderSegments() {
  const list = $("segments");
  list.replaceChildren();
  state.result.transcript.forEach((seg, index) => {
    const li = document.createElement("li");
    li.className = `segment ${colourOf(seg.speaker)}`;
    li.dataset.start = seg.start;
    li.dataset.end = seg.end;
    li.dataset.index = index;
    const play = document.createElement("button");
    play.type = "button";
    play.className = "play";
    play.textContent = "▶";
    play.setAttribute("aria-label", `Play from ${clock(seg.start)}`);
    play.addEventListener("click", () => playSpan(seg.start, seg.end));
    const time = document.createElement("time");
    time.textContent = clock(seg.start);
    const who = document.createElement("span");
    who.className = "speaker-name";
    who.dataset.speaker = seg.speaker || "";
    who.textContent = state.names[seg.speaker] || seg.speaker || "—";
    const text = document.createElement("p");
    text.className = "text";
    const words = seg.words && seg.words.length ? seg.words : [{ start: seg.start, word: seg.text }];
    for (const w of words) {
      const span = document.createElement("span");
      span.className = "word";
      span.textContent = `${w.word} `;
      span.tabIndex = -1;
      span.addEventListener("click", () => seek(w.start));
      text.append(span);
    }
    li.append(play, time, who, text);
    list.append(li);
  });
}

function playSpan(start, end) {
  const player = $("player");
  if (!player.src) return;
  state.stopAt = end;
  player.currentTime = start;
  player.play();
}

function seek(time) {
  const player = $("player");
  if (!player.src) return;
  state.stopAt = null;
  player.currentTime = time;
  player.play();
}

$("player").addEventListener("timeupdate", () => {
  const player = $("player");
  const t = player.currentTime;
  if (state.stopAt !== null && t >= state.stopAt) {
    player.pause();
    state.stopAt = null;
  }
  let current = null;
  for (const li of document.querySelectorAll(".segment")) {
    const on = t >= Number(li.dataset.start) && t < Number(li.dataset.end);
    li.classList.toggle("playing", on);
    if (on) current = li;
  }
  if (current && !player.paused) current.scrollIntoView({ block: "nearest", behavior: "smooth" });
});

// ---- export ------------------------------------------------------------------------------------
for (const button of document.querySelectorAll(".export")) {
  button.addEventListener("click", async () => {
    const format = button.dataset.format;
    const response = await api(`/results/${state.job}?format=${format}`);
    if (!response.ok) {
      say("label-status", explain(response.status, await problem(response)), true);
      return;
    }
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename="([^"]+)"/.exec(disposition);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = match ? match[1] : `transcript.${format}`;
    document.body.append(link);
    link.click();
    link.remove();
  });
}

// ---- history -----------------------------------------------------------------------------------
async function refreshHistory() {
  const response = await api("/jobs?limit=20");
  if (!response.ok) {
    say("history-status", explain(response.status, await problem(response)), true);
    return;
  }
  renderHistory((await response.json()).items);
}

function renderHistory(items) {
  const body = $("history").querySelector("tbody");
  body.replaceChildren();
  say("history-status", items.length ? "" : "No jobs yet.");
  for (const job of items) {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = job.filename;
    const status = document.createElement("td");
    status.textContent = job.status === "processing" ? `${job.stage} ${job.progress}%` : job.status;
    const when = document.createElement("td");
    when.textContent = new Date(job.created_at).toLocaleString();
    const actions = document.createElement("td");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "secondary";
    open.textContent = "Open";
    open.setAttribute("aria-label", `Open ${job.filename}`);
    open.addEventListener("click", () => openJob(job.upload_id));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "danger";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete ${job.filename}`);
    remove.addEventListener("click", async () => {
      if (!confirm(`Delete ${job.filename} and its transcript?`)) return;
      const response = await api(`/results/${job.upload_id}`, { method: "DELETE" });
      if (!response.ok) {
        say("history-status", explain(response.status, await problem(response)), true);
        return;
      }
      if (state.job === job.upload_id) $("job-section").hidden = true;
      refreshHistory();
    });
    actions.append(open, remove);
    tr.append(name, status, when, actions);
    body.append(tr);
  }
}

$("history-refresh").addEventListener("click", refreshHistory);

$("key-input").value = state.key;
checkKey();
