// emofuse web page: upload a file or type text, draw the answer with plain SVG / canvas.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = {
  neutral: "#98a2b3", calm: "#66c2a5", happy: "#fdb022", sad: "#2e90fa", angry: "#f04438",
  fear: "#7a5af8", disgust: "#12b76a", surprise: "#ee46bc", contempt: "#b54708",
  boredom: "#667085", excited: "#f79009", frustrated: "#d92d20", love: "#f670c7",
  other: "#475467", speech: "#3b5bdb", face: "#f79009", text: "#12b76a",
};
const PALETTE = ["#3b5bdb", "#f79009", "#12b76a", "#f04438", "#7a5af8", "#ee46bc", "#2e90fa"];
let limits = { max_upload_bytes: Infinity };
let previewURL = null;

const $ = (id) => document.getElementById(id);

function color(name, i) {
  return COLORS[name] || PALETTE[i % PALETTE.length];
}

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Horizontal bar chart of [name, value in 0..1] pairs.
function barChart(entries, { id = "", kind = "bar" } = {}) {
  const rowH = 24, labelW = 96, valueW = 56, width = 420;
  const barW = width - labelW - valueW;
  const svg = el("svg", { viewBox: `0 0 ${width} ${entries.length * rowH + 4}`, role: "img",
                          "data-chart": kind, id });
  entries.forEach(([name, value], i) => {
    const y = i * rowH + 2;
    svg.appendChild(el("text", { x: labelW - 6, y: y + 16, "text-anchor": "end" }, name));
    svg.appendChild(el("rect", { x: labelW, y: y + 3, width: barW, height: rowH - 8,
                                 rx: 3, fill: "#f2f4f7" }));
    const bar = el("rect", { x: labelW, y: y + 3, width: Math.max(0, value) * barW,
                             height: rowH - 8, rx: 3, fill: color(name, i),
                             "data-label": name, "data-value": value.toFixed(4),
                             class: kind });
    bar.appendChild(el("title", {}, `${name}: ${(100 * value).toFixed(1)}%`));
    svg.appendChild(bar);
    svg.appendChild(el("text", { x: width - 4, y: y + 16, "text-anchor": "end" },
                       `${(100 * value).toFixed(1)}%`));
  });
  return svg;
}

// One panel per modality: a step line per label over time.
function timelineChart(segments) {
  const box = document.createElement("div");
  const byModality = {};
  for (const s of segments) (byModality[s.modality] ||= []).push(s);
  const tMax = Math.max(...segments.map((s) => s.end), 0.001);
  for (const [modality, segs] of Object.entries(byModality)) {
    const W = 640, H = 170, L = 40, R = 110, T = 18, B = 26;
    const x = (t) => L + (t / tMax) * (W - L - R);
    const y = (p) => T + (1 - p) * (H - T - B);
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "data-chart": "timeline",
                            "data-modality": modality });
    const noun = segs.length === 1 ? "segment" : "segments";
    svg.appendChild(el("text", { x: L, y: 12 }, `${modality} (${segs.length} ${noun})`));
    for (const p of [0, 0.5, 1]) {
      svg.appendChild(el("line", { x1: L, x2: W - R, y1: y(p), y2: y(p), class: "grid-line" }));
      svg.appendChild(el("text", { x: L - 4, y: y(p) + 4, "text-anchor": "end" }, p.toFixed(1)));
    }
    svg.appendChild(el("line", { x1: L, x2: W - R, y1: y(0), y2: y(0), class: "axis" }));
    const ticks = 5;
    for (let i = 0; i <= ticks; i++) {
      const t = (tMax * i) / ticks;
      svg.appendChild(el("text", { x: x(t), y: H - 8, "text-anchor": "middle" },
                         `${t.toFixed(1)} s`));
    }
    const labels = Object.keys(segs[0].probabilities);
    labels.forEach((label, i) => {
      let d = "";
      for (const s of segs) {
        const p = s.probabilities[label] || 0;
        d += `M${x(s.start).toFixed(1)},${y(p).toFixed(1)}H${x(s.end).toFixed(1)}`;
      }
      const path = el("path", { d, stroke: color(label, i), "stroke-width": 2.5, fill: "none",
                                "data-label": label, class: "series" });
      svg.appendChild(path);
      svg.appendChild(el("rect", { x: W - R + 10, y: T + i * 16 - 9, width: 10, height: 10,
                                   fill: color(label, i) }));
      svg.appendChild(el("text", { x: W - R + 24, y: T + i * 16 }, label));
    });
    box.appendChild(svg);
  }
  return box;
}

function drawFaces(result) {
  const box = $("preview-box");
  const face = result.faces.find((f) => f.time === null || f.time === undefined);
  if (!previewURL || result.kind !== "image" || !face) { box.hidden = true; return; }
  const img = new Image();
  img.onload = () => {
    const canvas = $("preview");
    const scale = Math.min(360 / img.width, 360 / img.height, 1);
    canvas.width = Math.round(img.width * scale);
    canvas.height = Math.round(img.height * scale);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    ctx.lineWidth = 3;
    ctx.font = "14px system-ui, sans-serif";
    for (const f of result.faces) {
      const [bx, by, bw, bh] = f.box.map((v) => v * scale);
      ctx.strokeStyle = color(f.label, 0);
      ctx.strokeRect(bx, by, bw, bh);
      ctx.fillStyle = color(f.label, 0);
      ctx.fillText(f.label, bx + 4, Math.max(14, by - 4));
    }
    canvas.dataset.faces = String(result.faces.length);
    box.hidden = false;
  };
  img.src = previewURL;
}

function show(result) {
  $("error").hidden = true;
  $("label").textContent = result.label;
  $("confidence").textContent = `${(100 * result.confidence).toFixed(1)}%`;
  const parts = [`${result.kind}`, `from ${Object.keys(result.modalities).join(" + ")}`];
  if (result.duration_s) parts.push(`${result.duration_s.toFixed(1)} s long`);
  parts.push(`answered in ${(1000 * result.seconds).toFixed(0)} ms`);
  $("meta").textContent = `${result.source}: ` + parts.join(", ");
  const warn = $("warnings");
  warn.replaceChildren(...result.warnings.map((w) => {
    const li = document.createElement("li"); li.textContent = w; return li;
  }));
  $("probs").replaceChildren(barChart(Object.entries(result.probabilities), { id: "probs-svg" }));
  $("weights").replaceChildren(barChart(Object.entries(result.weights),
                                        { id: "weights-svg", kind: "weight" }));
  const per = $("per-modality");
  per.replaceChildren();
  for (const [m, probs] of Object.entries(result.modalities)) {
    const div = document.createElement("div");
    div.className = "chart";
    const h = document.createElement("h3");
    h.textContent = `${m}${result.models[m] ? ` (model ${result.models[m]})` : ""}`;
    div.append(h, barChart(Object.entries(probs), { id: `modality-${m}`, kind: "modality" }));
    per.appendChild(div);
  }
  const tl = $("timeline-box");
  if (result.timeline.length) {
    $("timeline-chart").replaceChildren(timelineChart(result.timeline));
    tl.hidden = false;
  } else {
    tl.hidden = true;
  }
  drawFaces(result);
  $("json").textContent = JSON.stringify(result, null, 2);
  $("result").hidden = false;
}

function fail(message) {
  $("result").hidden = true;
  const e = $("error");
  e.textContent = message;
  e.hidden = false;
}

let answers = 0;  // body[data-answers] counts finished requests (tests wait on it)

async function send(url, options) {
  for (const b of document.querySelectorAll("button")) b.disabled = true;
  $("busy").hidden = false;
  try {
    const r = await fetch(url, options);
    let body = null;
    try { body = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) {
      const detail = body && (typeof body.detail === "string" ? body.detail
                                                              : JSON.stringify(body.detail));
      fail(`Error ${r.status}: ${detail || r.statusText}`);
      return;
    }
    show(body);
  } catch (err) {
    fail(`The service did not answer (${err.message}).`);
  } finally {
    for (const b of document.querySelectorAll("button")) b.disabled = false;
    $("busy").hidden = true;
    document.body.dataset.answers = String(++answers);
  }
}

$("file-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const file = $("file").files[0];
  if (!file) { fail("Choose a file first."); return; }
  if (file.size === 0) { fail(`${file.name}: the file is empty.`); return; }
  if (file.size > limits.max_upload_bytes) {
    fail(`${file.name}: ${(file.size / 1e6).toFixed(1)} MB is over the ` +
         `${(limits.max_upload_bytes / 1e6).toFixed(0)} MB limit.`);
    return;
  }
  if (previewURL) URL.revokeObjectURL(previewURL);
  previewURL = file.type.startsWith("image/") ? URL.createObjectURL(file) : null;
  const data = new FormData();
  data.append("file", file, file.name);
  send(`/predict?timeline=${$("timeline").checked}`, { method: "POST", body: data });
});

$("text-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("text").value.trim();
  if (!text) { fail("Type some text first."); return; }
  previewURL = null;
  send("/predict", { method: "POST", headers: { "Content-Type": "application/json" },
                     body: JSON.stringify({ text }) });
});

const zone = $("dropzone");
$("file").addEventListener("change", () => {
  const f = $("file").files[0];
  $("file-name").textContent = f ? `${f.name} (${(f.size / 1e3).toFixed(0)} kB)`
                                 : "Drop a file here or click to choose";
});
zone.addEventListener("dragover", (ev) => { ev.preventDefault(); zone.classList.add("over"); });
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (ev) => {
  ev.preventDefault();
  zone.classList.remove("over");
  if (ev.dataTransfer.files.length) {
    $("file").files = ev.dataTransfer.files;
    $("file").dispatchEvent(new Event("change"));
  }
});

fetch("/health").then((r) => r.json()).then((h) => {
  limits = h.limits || limits;
  const models = Object.entries(h.models).map(([m, n]) => `${m}: ${n}`).join(", ");
  $("status").textContent = `emofuse ${h.version} · models ${models || "none"} · ` +
    `uploads up to ${(limits.max_upload_bytes / 1e6).toFixed(0)} MB`;
  document.body.dataset.ready = "1";
}).catch(() => { $("status").textContent = "the service is not reachable"; });
