// mnistserve web page: draw (or upload) a digit, POST it to /predict_all, show every model's answer.
// Plain JavaScript, no build step, nothing fetched from outside this service. URLs are relative to
// /ui, so the page also works behind a path prefix. When the service asks for an API key (a 401), the page
// shows a field for it, keeps it in sessionStorage (this tab only) and sends it as `Authorization: Bearer`.
"use strict";

const DEBOUNCE_MS = 250; // after a stroke ends, wait this long for the next one before asking
const LATENCY_EVERY_MS = 3000; // refresh of the live latency table
const PEN = 18; // stroke width on the 280x280 canvas: about MNIST's stroke once scaled to 20x20
const TOKEN_KEY = "mnistserve.apiKey"; // sessionStorage: forgotten when the tab closes
const STATUS_WORDS = { 400: "Not a usable image", 401: "API key needed", 404: "Not found", 413: "Too large", 415: "Unsupported upload",
  422: "Nothing to read", 503: "Service unavailable" };

const $ = (id) => document.getElementById(id);
let pad, pen, drawing = false, last = null, timer = null, asked = 0, inFlight = null, lastStatus = 0;

// The page's state, for people (status line) and for tests (body[data-state]):
// idle, drawing, waiting (debounce), asking, answered, error.
function setState(state) {
  document.body.dataset.state = state;
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// -- the API key --------------------------------------------------------------------------------

function storedToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (_) { return ""; } // storage may be off
}

// fetch() with the stored key, if any; a 401 opens the key field.
async function authFetch(url, options = {}) {
  const token = storedToken();
  const headers = { ...(options.headers || {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) };
  const response = await fetch(url, { ...options, headers });
  if (response.status === 401) askForToken(token ? "That key was refused; enter a valid one." :
    "This service needs an API key.");
  return response;
}

function askForToken(note) {
  const opening = $("auth").hidden; // focus the field once, not on every refused refresh
  $("auth").hidden = false;
  $("auth-note").textContent = note;
  if (opening) $("token").focus();
}

function useToken(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* kept nowhere: ask again next time */ }
  $("token").value = "";
  $("auth-note").textContent = "Key kept for this tab.";
  reloadAll();
}

function forgetToken() {
  try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* nothing kept */ }
  $("auth-note").textContent = "Key forgotten.";
}

function reloadAll() {
  loadComparison();
  loadPlots();
  loadLatency();
  if (lastStatus === 401) askCanvas(); // the drawing that was refused
}

// -- drawing -------------------------------------------------------------------------------------

function clearPad() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, pad.width, pad.height);
}

function point(event) {
  const box = pad.getBoundingClientRect(); // CSS pixels -> canvas pixels
  return { x: (event.clientX - box.left) * (pad.width / box.width),
           y: (event.clientY - box.top) * (pad.height / box.height) };
}

function stroke(from, to) {
  pen.strokeStyle = "#fff";
  pen.lineWidth = PEN;
  pen.lineCap = pen.lineJoin = "round";
  pen.beginPath();
  pen.moveTo(from.x, from.y);
  pen.lineTo(to.x, to.y);
  pen.stroke();
}

function startStroke(event) {
  event.preventDefault();
  clearTimeout(timer); // a new stroke: the digit is not finished yet,
  forget(); // and an answer to the unfinished one is not worth showing
  setState("drawing");
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  last = point(event);
  stroke(last, last); // a tap leaves a dot
}

function moveStroke(event) {
  if (!drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) {
    const next = point(e);
    stroke(last, next);
    last = next;
  }
}

function endStroke() {
  if (!drawing) return;
  drawing = false;
  clearTimeout(timer);
  setState("waiting");
  timer = setTimeout(askCanvas, DEBOUNCE_MS);
}

function askCanvas() {
  clearTimeout(timer);
  pad.toBlob((blob) => ask(blob, "canvas.png"), "image/png");
}

// -- asking the models ---------------------------------------------------------------------------

function forget() {
  asked++; // an answer still on its way is dropped when it comes
  if (inFlight) inFlight.abort();
  inFlight = null;
}

async function ask(blob, filename) {
  forget(); // only the latest drawing matters
  const mine = asked;
  inFlight = new AbortController();
  setState("asking");
  const body = new FormData();
  body.append("image", blob, filename);
  $("status").textContent = `Asking every model about ${filename}...`;
  const start = performance.now();
  try {
    const response = await authFetch("predict_all", { method: "POST", body, signal: inFlight.signal });
    const text = await response.text();
    if (mine !== asked) return;
    lastStatus = response.status;
    let data = null;
    try { data = JSON.parse(text); } catch (_) { /* not JSON: shown as text below */ }
    if (!response.ok) {
      showError(response.status, data && data.error ? data.error : text || response.statusText);
      return;
    }
    showAnswers(data, performance.now() - start);
    loadLatency();
  } catch (error) {
    if (error.name === "AbortError" || mine !== asked) return;
    showError(0, `cannot reach the service: ${error.message}`);
  }
}

function showError(status, message) {
  const box = $("error");
  const word = STATUS_WORDS[status] || (status ? "Error" : "Network error");
  box.textContent = `${word}${status ? ` (${status})` : ""}: ${message}`;
  box.hidden = false;
  setState("error");
  $("status").textContent = "The models could not answer.";
  $("answers").replaceChildren();
  $("skipped").hidden = true;
  drawSeen(null);
}

function showAnswers(data, ms) {
  $("error").hidden = true;
  setState("answered");
  $("answers").replaceChildren(...data.predictions.map(answerCard));
  const skipped = Object.entries(data.skipped || {});
  $("skipped").hidden = skipped.length === 0;
  $("skipped").textContent = "Not served: " + skipped.map(([name, why]) => `${name} (${why})`).join("; ");
  drawSeen(data.input_28x28);
  $("status").textContent = `${data.predictions.length} models answered; the whole request took ${ms.toFixed(0)} ms.`;
}

function answerCard(p) {
  const bars = p.probabilities.map((prob, d) => el("li", { class: d === p.digit ? "top" : "" }, [
    el("span", { text: String(d) }),
    el("span", { class: "track" }, [el("span", { class: "fill", style: `width:${(100 * prob).toFixed(1)}%` })]),
    el("span", { class: "pct", text: `${(100 * prob).toFixed(1)}%` }),
  ]));
  // An answer under the model's own threshold (`uncertain`) is shown as a doubt, with the runner-up.
  const doubt = p.uncertain ? `not sure: ${p.top3.slice(0, 2).map((t) => `${t.digit} (${(100 * t.probability).toFixed(0)}%)`).join(" or ")}` : "";
  return el("article", { class: p.uncertain ? "answer uncertain" : "answer", dataset: { model: p.model, uncertain: String(p.uncertain) } }, [
    el("h4", { text: p.model }),
    el("div", { class: "digit", text: String(p.digit),
      title: p.uncertain ? "uncertain: calibrated probability below the model's threshold" : "predicted digit" }),
    ...(doubt ? [el("div", { class: "doubt", text: doubt })] : []),
    el("div", { class: "meta", text: `${p.inference_ms.toFixed(2)} ms inference, batch ${p.batch_size}` }),
    el("ol", { class: "bars", start: "0", "aria-label": "probability per digit" }, bars),
  ]);
}

function drawSeen(rows) {
  const seen = $("seen"), ctx = seen.getContext("2d");
  const image = ctx.createImageData(28, 28);
  (rows || []).forEach((row, y) => row.forEach((v, x) => {
    const i = 4 * (28 * y + x);
    image.data[i] = image.data[i + 1] = image.data[i + 2] = v;
  }));
  for (let i = 3; i < image.data.length; i += 4) image.data[i] = 255;
  ctx.putImageData(image, 0, 0);
}

// -- the stored comparison, plots and live latency -----------------------------------------------

const fixed = (digits) => (v) => (typeof v === "number" ? v.toFixed(digits) : "");
const pct = (v) => (typeof v === "number" ? `${(100 * v).toFixed(2)}%` : "");
// A model's real-world result on one split. A comparison from before the split holds one set, which choices
// were tuned on: it reads as dev (mnistserve/realworld.py does the same for the CLI and the reports).
const splitOf = (m, split) => {
  const rw = m.realworld;
  if (!rw) return split === "sealed" && m.metrics ? { accuracy: m.metrics.realworld_accuracy } : {};
  return ("accuracy" in rw ? { dev: rw } : rw)[split] || {};
};
const worst = (r) => (r.per_condition ? `${r.worst_condition} ${pct(r.per_condition[r.worst_condition])}` : "");
const COLUMNS = [ // header, value of a comparison row; the sealed split is the headline
  ["model", (m) => m.model],
  ["status", (m) => m.status || "ok"],
  ["MNIST test", (m) => pct(m.metrics && m.metrics.accuracy)],
  ["real-world sealed", (m) => pct(splitOf(m, "sealed").accuracy)],
  ["worst (sealed)", (m) => worst(splitOf(m, "sealed"))],
  ["real-world dev", (m) => pct(splitOf(m, "dev").accuracy)],
  ["worst (dev)", (m) => worst(splitOf(m, "dev"))],
  ["ECE test (training's T)", (m) => pct(m.metrics && m.metrics.ece_test)],
  ["macro-F1", (m) => fixed(4)(m.metrics && m.metrics.macro_f1)],
  ["test loss", (m) => fixed(4)(m.metrics && m.metrics.test_loss)],
  ["train s", (m) => fixed(1)(m.metrics && m.metrics.train_seconds)],
  ["parameters", (m) => (m.metrics && m.metrics.parameters != null ? m.metrics.parameters.toLocaleString("en-US") : "")],
  ["pretrained", (m) => (m.pretrained ? "yes" : "no")],
];

async function getJSON(url) {
  const response = await authFetch(url, { cache: "no-store" });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${url}: HTTP ${response.status}`);
  return data;
}

async function loadComparison() {
  const table = $("comparison");
  try {
    const comparison = await getJSON("comparison");
    const head = el("tr", {}, [...COLUMNS, ["profile"]].map(([name]) => el("th", { text: name })));
    const rows = (comparison.models || []).map((m) => el("tr", { class: m.status === "failed" ? "failed" : "",
      dataset: { model: m.model } }, [
      ...COLUMNS.map(([, value]) => el("td", { text: value(m) })),
      el("td", { text: m.profile || comparison.profile || "" }),
    ]));
    table.replaceChildren(el("thead", {}, [head]), el("tbody", {}, rows));
    const failed = (comparison.models || []).filter((m) => m.status === "failed");
    $("comparison-note").textContent = [`run ${comparison.run_id || "?"}, profile ${comparison.profile || "?"}`,
      ...failed.map((m) => `${m.model} failed: ${m.error || "no reason stored"}`)].join(". ");
  } catch (error) {
    $("comparison-note").textContent = `No comparison: ${error.message}`;
  }
}

async function loadPlots() {
  try {
    const { plots } = await getJSON("plots");
    // With a key, fetched rather than linked: an <img> cannot send it (GET routes may need one).
    const keyed = Boolean(storedToken());
    const figures = await Promise.all(plots.map(async (url) => {
      const response = keyed ? await authFetch(url) : null;
      const src = response && response.ok ? URL.createObjectURL(await response.blob()) : url;
      return el("figure", {}, [
        el("a", { href: src, target: "_blank" }, [el("img", { src, alt: url, loading: "lazy" })]),
        el("figcaption", { text: url.replace(/^plots\//, "") }),
      ]);
    }));
    $("plots").replaceChildren(...figures);
    if (!plots.length) $("plots").textContent = "No plots were exported.";
  } catch (error) {
    $("plots").textContent = `No plots: ${error.message}`;
  }
}

const ms = (s, key) => fixed(2)(s && s[key]);

async function loadLatency() {
  const table = $("latency");
  try {
    const { models } = await getJSON("latency");
    const head = ["model", "requests", "infer p50", "p90", "p99", "request p50", "p99", "mean batch", "export b1"];
    const rows = Object.entries(models).map(([name, m]) => el("tr", { dataset: { model: name } }, [
      name, String(m.live.inference_ms.count), ms(m.live.inference_ms, "p50"), ms(m.live.inference_ms, "p90"),
      ms(m.live.inference_ms, "p99"), ms(m.live.request_ms, "p50"), ms(m.live.request_ms, "p99"),
      fixed(1)(m.live.batch_size.mean), ms(m.exported, "batch1"),
    ].map((text) => el("td", { text }))));
    table.replaceChildren(el("thead", {}, [el("tr", {}, head.map((text) => el("th", { text })))]),
      el("tbody", {}, rows));
  } catch (error) {
    table.replaceChildren(el("caption", { text: `Latency unavailable: ${error.message}` }));
  }
}

function refreshLatency() {
  if (!document.hidden) loadLatency();
  setTimeout(refreshLatency, LATENCY_EVERY_MS);
}

// -- wiring --------------------------------------------------------------------------------------

function start() {
  pad = $("pad");
  pen = pad.getContext("2d");
  clearPad();
  drawSeen(null);
  setState("idle");
  pad.addEventListener("pointerdown", startStroke);
  pad.addEventListener("pointermove", moveStroke);
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
  $("clear").addEventListener("click", () => {
    clearTimeout(timer);
    forget(); // a late answer must not reappear
    setState("idle");
    clearPad();
    drawSeen(null);
    $("answers").replaceChildren();
    $("error").hidden = $("skipped").hidden = true;
    $("status").textContent = "Draw a digit to start.";
  });
  $("predict").addEventListener("click", askCanvas);
  $("auth").addEventListener("submit", useToken);
  $("forget-token").addEventListener("click", forgetToken);
  if (storedToken()) {
    $("auth").hidden = false;
    $("auth-note").textContent = "Using the key kept for this tab.";
  }
  $("upload").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) ask(file, file.name);
    event.target.value = ""; // the same file may be chosen again
  });
  loadComparison();
  loadPlots();
  refreshLatency();
}

document.addEventListener("DOMContentLoaded", start);
