// imagegate playground: calls the engine (wasm-bindgen module in ./pkg) and
// renders its JSON answer. Only textContent is used: pasted text is never HTML.
import init, { evaluate } from "./pkg/imagegate_playground.js";

const $ = (id) => document.getElementById(id);

const EXAMPLE_SETTINGS = `exemptNamespaces: ["kube-system"]
rules:
  - name: corporate
    images: ["registry.corp.example/**"]
    tags: {deny: ["latest"]}
    message: "see https://wiki.corp.example/images"
`;

const EXAMPLE_WORKLOAD = `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers:
    - {name: app, image: "registry.corp.example/shop/web:2.1"}
    - {name: debug, image: "registry.corp.example/shop/web:latest"}
`;

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

function render(answer) {
  const result = $("result");
  const status = $("status");
  const images = $("images").tBodies[0];
  const calls = $("host-calls").tBodies[0];
  images.replaceChildren();
  calls.replaceChildren();
  status.className = "";
  if (answer.settingsError !== undefined || answer.workloadError !== undefined) {
    result.hidden = true;
    status.className = "error";
    status.textContent = answer.settingsError !== undefined
      ? `Settings error: ${answer.settingsError}`
      : `Workload error: ${answer.workloadError}`;
    return;
  }
  status.textContent = "";
  result.hidden = false;
  const verdict = $("verdict");
  verdict.textContent = answer.allowed ? "Admitted" : "Rejected";
  verdict.className = answer.allowed ? "allowed" : "denied";
  const notes = [];
  if (answer.message) notes.push(answer.message);
  for (const w of answer.warnings) notes.push(`warning: ${w}`);
  $("message").textContent = notes.join("\n");
  for (const r of answer.images) {
    const row = images.insertRow();
    row.dataset.decision = r.decision;
    cell(row, r.container);
    cell(row, r.image, "image");
    cell(row, r.normalized, "image");
    cell(row, r.decision, r.decision);
    cell(row, r.rule);
    cell(row, r.reason);
    cell(row, r.pinned, "image");
  }
  for (const c of answer.hostCalls) {
    const row = calls.insertRow();
    cell(row, c.capability);
    cell(row, JSON.stringify(c.payload), "payload");
  }
}

function run() {
  render(JSON.parse(evaluate($("settings").value, $("workload").value)));
}

await init();
$("settings").value ||= EXAMPLE_SETTINGS;
$("workload").value ||= EXAMPLE_WORKLOAD;
$("evaluate").disabled = false;
$("evaluate").addEventListener("click", run);
$("status").textContent = "Ready.";
