// imagegate playground: holds the state (settings, workload, simulated host
// answers), asks the engine (wasm-bindgen module in ./pkg) for its report on
// every change, renders it, and keeps the state in the URL fragment.
// Only textContent is used: pasted text is never HTML.
import init, { evaluate, gallery } from "./pkg/imagegate_playground.js";

const $ = (id) => document.getElementById(id);

// The state a share link carries; `answers` by call id (see simulated.rs).
const state = { settings: "", workload: "", answers: {} };
let examples = [];
let lastReport = null;
const ANSWERS_HINT = $("answers-hint").textContent;

// ---- share links: the state as JSON in the fragment, deflated when large.
// `#s=<base64url JSON>` or `#z=<base64url deflate-raw JSON>`.
const COMPRESS_ABOVE = 1024;

function toBase64url(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromBase64url(text) {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

async function through(bytes, stream) {
  return new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(stream)).arrayBuffer());
}

// Only the answers of calls the engine made for this state go in the link.
function shareableState() {
  const live = new Set((lastReport?.hostCalls ?? []).map((c) => c.id));
  const answers = Object.fromEntries(Object.entries(state.answers).filter(([id]) => live.has(id)));
  return { settings: state.settings, workload: state.workload, answers };
}

async function encodeState() {
  const raw = new TextEncoder().encode(JSON.stringify(shareableState()));
  if (raw.length > COMPRESS_ABOVE && "CompressionStream" in window) {
    const deflated = await through(raw, new CompressionStream("deflate-raw"));
    if (deflated.length < raw.length) return "z=" + toBase64url(deflated);
  }
  return "s=" + toBase64url(raw);
}

async function decodeState(fragment) {
  const [kind, data] = [fragment.slice(0, 2), fragment.slice(2)];
  let raw;
  if (kind === "s=") raw = fromBase64url(data);
  else if (kind === "z=") raw = await through(fromBase64url(data), new DecompressionStream("deflate-raw"));
  else throw new Error("not an imagegate playground link");
  const s = JSON.parse(new TextDecoder().decode(raw));
  return {
    settings: String(s.settings ?? ""),
    workload: String(s.workload ?? ""),
    answers: s.answers && typeof s.answers === "object" ? s.answers : {},
  };
}

let writingFragment = Promise.resolve();
function saveFragment() {
  // In order: a slow compression must not overwrite a later state.
  writingFragment = writingFragment.then(async () => {
    const fragment = await encodeState();
    history.replaceState(null, "", "#" + fragment);
    $("share-link").value = location.href;
  });
  return writingFragment;
}

// ---- rendering

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

function renderErrors(report) {
  const settings = $("settings-errors");
  const list = document.createElement("ul");
  for (const e of report.settingsErrors ?? []) {
    const li = list.appendChild(document.createElement("li"));
    if (e.path) {
      const code = li.appendChild(document.createElement("code"));
      code.textContent = e.path;
      li.append(": ");
    }
    li.append(e.message);
  }
  settings.replaceChildren(...(list.children.length ? [list] : []));
  $("settings").setAttribute("aria-invalid", String(list.children.length > 0));
  const workload = report.workloadError ?? "";
  $("workload-error").textContent = workload;
  $("workload").setAttribute("aria-invalid", String(workload !== ""));
}

const CHOICES = {
  signature: [
    ["valid", "signature valid for digest"],
    ["invalid", "signature invalid"],
    ["unreachable", "registry unreachable"],
  ],
  digestLookup: [
    ["valid", "resolves to digest"],
    ["invalid", "image not found"],
    ["unreachable", "registry unreachable"],
  ],
  labels: [
    ["valid", "image has the labels"],
    ["invalid", "image not found"],
    ["unreachable", "registry unreachable"],
  ],
};

function labelsText(labels) {
  return Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`).join(", ");
}

function parseLabels(text) {
  const labels = {};
  for (const part of text.split(",")) {
    const [k, ...v] = part.split("=");
    if (k.trim()) labels[k.trim()] = v.join("=").trim();
  }
  return labels;
}

// One fieldset per call, created once per call id and updated in place, so
// focus and typing survive re-evaluation.
function makeCall(call) {
  const set = document.createElement("fieldset");
  set.className = "call";
  set.dataset.id = call.id;
  const legend = set.appendChild(document.createElement("legend"));
  legend.append(document.createElement("span"), " ");
  legend.lastChild.after(Object.assign(document.createElement("span"), { className: "capability" }));
  for (const [value, text] of CHOICES[call.kind]) {
    const row = set.appendChild(document.createElement("div"));
    row.className = "choice";
    const radio = row.appendChild(document.createElement("input"));
    Object.assign(radio, { type: "radio", name: `answer-${call.id}`, value, id: `answer-${call.id}-${value}` });
    const label = row.appendChild(document.createElement("label"));
    label.htmlFor = radio.id;
    label.textContent = text;
    radio.addEventListener("change", () => choose(call.id, call.kind, value));
    if (value === "valid") {
      const input = row.appendChild(document.createElement("input"));
      input.type = "text";
      input.className = "detail";
      input.spellcheck = false;
      input.setAttribute("aria-label", call.kind === "labels" ? "labels, as key=value, comma-separated" : "digest");
      input.addEventListener("input", () => debounce(`detail-${call.id}`, () => choose(call.id, call.kind, "valid"), 300));
    }
  }
  set.appendChild(Object.assign(document.createElement("p"), { className: "outcome" }));
  return set;
}

function updateCall(set, call) {
  const [check, capability] = set.querySelector("legend").children;
  check.textContent = call.check;
  capability.textContent = call.capability;
  for (const radio of set.querySelectorAll("input[type=radio]")) {
    radio.checked = radio.value === call.answer.outcome;
  }
  const detail = set.querySelector("input.detail");
  if (document.activeElement !== detail) {
    detail.value = call.kind === "labels" ? labelsText(call.answer.labels) : (call.digest ?? "");
  }
  const outcome = set.querySelector(".outcome");
  outcome.textContent = ("Ok" in call.result)
    ? `host answers ${JSON.stringify(call.result.Ok)}`
    : `host error: ${call.result.Err}`;
}

function renderCalls(calls) {
  const box = $("answers");
  const existing = new Map([...box.children].map((n) => [n.dataset.id, n]));
  let previous = null;
  const unanswered = [];
  for (const call of calls) {
    if (!CHOICES[call.kind]) {
      unanswered.push(call);
      continue;
    }
    const set = existing.get(call.id) ?? makeCall(call);
    existing.delete(call.id);
    updateCall(set, call);
    const expected = previous ? previous.nextSibling : box.firstChild;
    if (set !== expected) box.insertBefore(set, expected);
    previous = set;
  }
  for (const stale of existing.values()) stale.remove();
  $("unanswered").replaceChildren(...unanswered.map((c) => {
    const li = document.createElement("li");
    li.textContent = `${c.check}: ${c.result.Err}`;
    return li;
  }));
  $("answers-hint").textContent = calls.length ? ANSWERS_HINT
    : "No host call for this request: every decision is made from the settings alone.";
}

function summary(report) {
  const count = (d) => report.images.filter((i) => i.decision === d).length;
  const parts = [];
  const denied = count("denied");
  if (denied) parts.push(`${denied} of ${report.images.length} images denied`);
  const pinned = report.images.filter((i) => i.pinned).length;
  if (report.allowed && pinned) parts.push(`${pinned} pinned`);
  if (report.warnings.length) parts.push(`${report.warnings.length} warning${report.warnings.length > 1 ? "s" : ""}`);
  if (count("exempt")) parts.push(`${count("exempt")} exempt`);
  if (!report.images.length) parts.push("no image checked");
  return `${report.allowed ? "Admitted" : "Rejected"}${parts.length ? ": " + parts.join(", ") : ""}`;
}

function render(report) {
  lastReport = report;
  renderErrors(report);
  const status = $("status");
  const result = $("result");
  if (report.stateError || report.settingsErrors || report.workloadError) {
    result.hidden = true;
    $("response-section").hidden = true;
    status.hidden = false;
    status.className = "error";
    status.textContent = report.stateError ?? "No decision: correct the input above.";
    renderCalls([]);
  } else {
    status.hidden = true;
    result.hidden = false;
    $("response-section").hidden = false;
    const verdict = $("verdict");
    verdict.textContent = summary(report);
    verdict.className = report.allowed ? "allowed" : "denied";
    const rows = $("images").tBodies[0];
    rows.replaceChildren();
    for (const image of report.images) {
      const row = rows.insertRow();
      row.dataset.decision = image.decision;
      cell(row, report.object);
      cell(row, image.container);
      cell(row, image.image, "mono");
      cell(row, image.normalized, "mono");
      cell(row, image.decision, image.decision);
      cell(row, image.rule);
      cell(row, image.reason);
      cell(row, image.pin ?? image.pinned?.split("@").pop(), "mono");
    }
    $("message").textContent = report.message ?? "(none)";
    $("warnings").replaceChildren(...(report.warnings.length ? report.warnings : ["(none)"]).map((w) => {
      const li = document.createElement("li");
      li.textContent = w;
      return li;
    }));
    const audit = Object.entries(report.auditAnnotations);
    $("audit").textContent = audit.length ? audit.map(([k, v]) => `${k}: ${v}`).join("\n") : "(none)";
    $("patch").textContent = report.patch ? JSON.stringify(report.patch, null, 2) : "(none: nothing is rewritten)";
    renderCalls(report.hostCalls);
  }
  document.body.dataset.renders = String(Number(document.body.dataset.renders ?? 0) + 1);
}

function run() {
  render(JSON.parse(evaluate(JSON.stringify(state))));
  saveFragment();
}

// ---- input

const timers = new Map();
function debounce(key, fn, ms) {
  clearTimeout(timers.get(key));
  timers.set(key, setTimeout(fn, ms));
}

function choose(id, kind, outcome) {
  const answer = { outcome };
  if (outcome === "valid") {
    const detail = document.querySelector(`fieldset[data-id="${id}"] input.detail`)?.value.trim() ?? "";
    if (kind === "labels") answer.labels = parseLabels(detail);
    else if (detail) answer.digest = detail;
  }
  state.answers[id] = answer;
  run();
}

function showAbout(example) {
  $("about").hidden = !example;
  if (!example) return;
  $("about-text").textContent = example.about;
  const converted = example.convert;
  $("converted").hidden = !converted;
  if (!converted) return;
  $("converted-summary").textContent = `Converted from the original policy: ${converted.command}`;
  $("converted-sources").replaceChildren(...converted.sources.flatMap((s) => {
    const name = Object.assign(document.createElement("p"), { textContent: s.path });
    const text = Object.assign(document.createElement("pre"), { textContent: s.text, tabIndex: 0 });
    text.setAttribute("aria-label", s.path);
    return [name, text];
  }));
  $("converted-limitations").replaceChildren(...converted.limitations.map((l) => {
    const li = document.createElement("li");
    li.textContent = l;
    return li;
  }));
}

function load(next, exampleId) {
  Object.assign(state, structuredClone(next));
  $("settings").value = state.settings;
  $("workload").value = state.workload;
  const example = examples.find((e) => e.id === exampleId)
    ?? examples.find((e) => e.state.settings === state.settings && e.state.workload === state.workload);
  $("example").value = example?.id ?? "";
  showAbout(example);
  // Calls of the previous state are not this state's.
  $("answers").replaceChildren();
  run();
}

async function loadFragment() {
  const fragment = location.hash.slice(1);
  if (!fragment) return false;
  try {
    load(await decodeState(fragment));
  } catch (e) {
    $("share-status").textContent = `This link cannot be read (${e.message}); showing the first example.`;
    return false;
  }
  return true;
}

await init();
examples = JSON.parse(gallery());
for (const e of examples) {
  $("example").append(new Option(e.title, e.id));
}
$("example").addEventListener("change", () => {
  const example = examples.find((e) => e.id === $("example").value);
  if (example) load(example.state, example.id);
  else showAbout(null);
});
for (const id of ["settings", "workload"]) {
  $(id).addEventListener("input", () => {
    state[id] = $(id).value;
    if ($("example").value) {
      const example = examples.find((e) => e.id === $("example").value);
      if (example.state[id] !== state[id]) $("example").value = "";
    }
    debounce("input", run, 200);
  });
}
$("share").addEventListener("click", async () => {
  await saveFragment();
  try {
    await navigator.clipboard.writeText(location.href);
    $("share-status").textContent = "Link copied.";
  } catch {
    $("share-link").select();
    $("share-status").textContent = "Link selected: copy it with Ctrl+C.";
  }
});
window.addEventListener("hashchange", loadFragment);
if (!(await loadFragment())) load(examples[0].state, examples[0].id);
document.documentElement.dataset.ready = "true";
