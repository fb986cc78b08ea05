// emofuse web page, "Live" tab: microphone and camera (getUserMedia) streamed to /stream
// (16-bit PCM + JPEG frames over a WebSocket), the updates drawn as a scrolling timeline per
// modality plus the fused label. Colours: color() of app.js (the shared palette).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SPAN_S = 30;                 // seconds of history on the chart
  const ROWS = ["fused", "speech", "face"];
  const FRAME_MS = 100;              // 10 frames a second
  const MAX_BUFFERED = 512 * 1024;   // bytes waiting in the socket: skip frames beyond this
  let ws = null, media = null, audioCtx = null, frameTimer = null, ready = false;
  let history = [], sentFrames = 0, skippedFrames = 0, sentChunks = 0, stopping = false;

  function setTab(name) {
    for (const b of document.querySelectorAll(".tab")) {
      b.classList.toggle("active", b.dataset.tab === name);
      b.setAttribute("aria-selected", String(b.dataset.tab === name));
    }
    $("predict").hidden = name !== "predict";
    $("live").hidden = name !== "live";
  }

  function status(text) { $("live-status").textContent = text; }

  function liveError(text) {
    const e = $("live-error");
    e.textContent = text;
    e.hidden = !text;
  }

  function top(probs) {
    let best = null;
    for (const [k, v] of Object.entries(probs || {})) if (!best || v > best[1]) best = [k, v];
    return best;
  }

  function showUpdate(u) {
    history.push(u);
    const cutoff = u.time - SPAN_S - 5;
    while (history.length && history[0].time < cutoff) history.shift();
    const label = $("live-label");
    label.textContent = u.label ? `${u.label} ${(100 * u.confidence).toFixed(0)}%` : "listening…";
    label.style.color = u.label ? color(u.label, 0) : "";
    label.dataset.label = u.label || "";
    for (const m of ["speech", "face"]) {
      const t = top(u.modalities[m]);
      const node = $(`live-${m}`);
      node.textContent = t ? `${m}: ${t[0]} ${(100 * t[1]).toFixed(0)}%` : `${m}: –`;
      node.style.color = t ? color(t[0], 0) : "";
    }
    const c = u.counters || {};
    const parts = [`${u.time.toFixed(1)} s`, `voice ${(100 * u.voice).toFixed(0)}%`];
    if (c.frames_received) {
      parts.push(`frames ${c.frames_processed}/${c.frames_received} (${c.frames_dropped} ` +
                 `dropped by the server, ${skippedFrames} skipped here)`);
    }
    if (c.hops_merged || u.updates_merged) {
      parts.push(`late hops merged ${c.hops_merged || 0}, updates merged ${u.updates_merged || 0}`);
    }
    $("live-counters").textContent = parts.join(" · ");
    draw();
  }

  // Rows of bars: one bar per update, coloured by its top label, as tall as its probability.
  function draw() {
    const canvas = $("live-chart");
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, L = 64, rowH = (H - 24) / ROWS.length;
    ctx.clearRect(0, 0, W, H);
    ctx.font = "12px system-ui, sans-serif";
    const now = history.length ? history[history.length - 1].time : 0;
    const t0 = Math.max(0, now - SPAN_S);
    const x = (t) => L + ((t - t0) / SPAN_S) * (W - L - 8);
    let bars = 0;
    const seen = new Set();
    ROWS.forEach((row, r) => {
      const y0 = r * rowH + 4;
      ctx.fillStyle = "#f2f4f7";
      ctx.fillRect(L, y0, W - L - 8, rowH - 8);
      ctx.fillStyle = "#1d2430";
      ctx.fillText(row, 4, y0 + rowH / 2);
      for (const u of history) {
        if (u.time < t0) continue;
        const best = row === "fused" ? (u.label ? [u.label, u.confidence] : null)
                                     : top(u.modalities[row]);
        if (!best) continue;
        const h = (rowH - 8) * (row === "fused" ? 1 : Math.max(0.08, best[1]));
        ctx.fillStyle = color(best[0], 0);
        ctx.fillRect(x(Math.max(u.start, t0)), y0 + (rowH - 8) - h,
                     Math.max(1, x(u.time) - x(Math.max(u.start, t0)) - 1), h);
        bars += 1;
        seen.add(row);
      }
    });
    ctx.fillStyle = "#667085";
    for (let i = 0; i <= 6; i++) {
      const t = t0 + (SPAN_S * i) / 6;
      ctx.fillText(`${t.toFixed(0)} s`, x(t) - 8, H - 6);
    }
    canvas.dataset.updates = String(history.length);
    canvas.dataset.bars = String(bars);
    canvas.dataset.rows = [...seen].join(",");
  }

  function toInt16(f32) {
    const out = new Int16Array(f32.length);
    for (let i = 0; i < f32.length; i++) {
      const s = Math.max(-1, Math.min(1, f32[i]));
      out[i] = s < 0 ? s * 32768 : s * 32767;
    }
    return out.buffer;
  }

  function startAudio() {
    audioCtx = new AudioContext();
    const src = audioCtx.createMediaStreamSource(media);
    const proc = audioCtx.createScriptProcessor(2048, 1, 1);
    proc.onaudioprocess = (e) => {
      if (!ready || !ws || ws.readyState !== WebSocket.OPEN) return;
      ws.send(toInt16(e.inputBuffer.getChannelData(0)));  // audio is never skipped
      sentChunks += 1;
    };
    const mute = audioCtx.createGain();
    mute.gain.value = 0;
    src.connect(proc);
    proc.connect(mute);
    mute.connect(audioCtx.destination);
    return audioCtx.sampleRate;
  }

  function startFrames() {
    const video = $("live-video");
    video.srcObject = media;
    video.hidden = false;
    const grab = document.createElement("canvas");
    frameTimer = setInterval(() => {
      if (!ready || !ws || ws.readyState !== WebSocket.OPEN || !video.videoWidth) return;
      if (ws.bufferedAmount > MAX_BUFFERED) { skippedFrames += 1; return; }
      const s = Math.min(1, 320 / video.videoWidth);
      grab.width = Math.round(video.videoWidth * s);
      grab.height = Math.round(video.videoHeight * s);
      grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
      grab.toBlob((blob) => {
        if (!blob || !ws || ws.readyState !== WebSocket.OPEN) return;
        blob.arrayBuffer().then((buf) => { ws.send(buf); sentFrames += 1; });
      }, "image/jpeg", 0.75);
    }, FRAME_MS);
  }

  function release() {
    if (frameTimer) clearInterval(frameTimer);
    frameTimer = null;
    if (audioCtx) audioCtx.close();
    audioCtx = null;
    if (media) for (const t of media.getTracks()) t.stop();
    media = null;
    ready = false;
    $("live-video").hidden = true;
    $("live-start").disabled = false;
    $("live-stop").disabled = true;
  }

  async function start() {
    liveError("");
    const wantAudio = $("live-mic").checked, wantVideo = $("live-cam").checked;
    if (!wantAudio && !wantVideo) { liveError("Choose the microphone, the camera or both."); return; }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      liveError("This browser gives no access to a microphone or camera here (it needs " +
                "https or localhost).");
      return;
    }
    $("live-start").disabled = true;
    try {
      media = await navigator.mediaDevices.getUserMedia({
        audio: wantAudio ? { channelCount: 1, echoCancellation: false } : false,
        video: wantVideo ? { width: 640, height: 360 } : false });
    } catch (err) {
      liveError(`No access to the ${wantAudio && wantVideo ? "microphone or camera"
                : wantAudio ? "microphone" : "camera"} (${err.name}: ${err.message}).`);
      release();
      return;
    }
    history = []; sentFrames = 0; skippedFrames = 0; sentChunks = 0; stopping = false;
    draw();
    const rate = media.getAudioTracks().length ? startAudio() : 16000;
    if (media.getVideoTracks().length) startFrames();
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/stream`);
    ws.binaryType = "arraybuffer";
    status("connecting…");
    ws.onopen = () => ws.send(JSON.stringify({ type: "start", rate, channels: 1,
                                               format: "s16le" }));
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { return; }
      if (m.type === "ready") {
        ready = true;
        $("live-stop").disabled = false;
        status(`streaming ${m.modalities.join(" + ")} · an update every ${m.hop} s · ` +
               `${m.active} of ${m.limit} streams in use`);
      } else if (m.type === "update") {
        showUpdate(m);
      } else if (m.type === "error") {
        liveError(`${m.error}: ${m.detail}`);
        if (m.error === "TooManyStreams") status("refused: the service is busy");
      } else if (m.type === "end") {
        status(`ended: ${history.length} updates, ${sentChunks} audio chunks and ` +
               `${sentFrames} frames sent`);
      }
    };
    ws.onclose = () => {
      if (!stopping && ready) status("the service closed the stream");
      release();
      ws = null;
    };
    ws.onerror = () => liveError("The live stream failed (is the service still running?).");
  }

  function stop() {
    stopping = true;
    ready = false;
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop" }));
    else release();
    $("live-stop").disabled = true;
  }

  for (const b of document.querySelectorAll(".tab")) {
    b.addEventListener("click", () => setTab(b.dataset.tab));
  }
  $("live-start").addEventListener("click", start);
  $("live-stop").addEventListener("click", stop);
  window.addEventListener("beforeunload", () => { if (ws) ws.close(); });
  if (location.hash === "#live") setTab("live");
  draw();
})();
