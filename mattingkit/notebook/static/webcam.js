// Browser half of mattingkit.notebook.webcam.WebcamMatting (chapter 08).
//
// The browser owns the camera, the kernel owns the model. Every camera frame is drawn,
// downscaled, onto a hidden canvas, JPEG-encoded and sent to the kernel as a binary
// buffer. At most `max_in_flight` frames wait for an answer: newer camera frames are
// simply not sent (latest frame wins), so nothing piles up when the model is slow.
// Each answer (a JPEG) is drawn on the visible canvas and acknowledged with the time
// it took, which gives the kernel the whole latency budget.
//
// Browser engine (engine = "browser"): the model runs in this page instead (onnxruntime-web,
// WebGPU where offered, WebAssembly otherwise; MattingkitWeb, prepended to this file). The
// kernel sends the runtime (unless the CDN serves it, checked by its hash) and the model
// once, in pieces under 1 MB, and the page keeps both in its Cache Storage; then each
// frame is matted and drawn here and the kernel sees none.
//
// Counting: every camera frame is answered (drawn), dropped (not sent because a frame
// was in flight, replaced in the kernel's mailbox, or given up on) or still in flight,
// so seen = answered + dropped + in flight at every moment. The numbers are on the
// element's data attributes too (data-frames-seen, ...), for tests and the curious.

const CHOICES = {
  background: ["green", "blue", "white", "black", "blur", "image"],
  mode: ["composite", "alpha"],
  weights: ["mattingkit", "mobilenetv2", "resnet50", "resnet101"],
  preset: ["auto", "hd", "4k"],
};
const COLOURS = { green: [120, 255, 155], blue: [25.5, 76.5, 229.5], white: [255, 255, 255], black: [0, 0, 0] };
const RUNTIME_FILES = ["ort.min.js", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm"];
const PLATE_MESSAGE = "Plate captured. Step back into the frame.";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const asBytes = (buffer) =>
  buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
const GIVE_UP_MS = 3000; // an answer this late is not waited for (a cell keeps the kernel busy)
const KERNEL_GONE =
  "The kernel restarted (or stopped), so this widget is no longer connected and the camera " +
  "is off. Run the notebook's cells again (Run → Run All Cells) for a new one.";

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function cameraProblem(error) {
  // Turn getUserMedia's errors into something a student can act on.
  const name = error && error.name;
  if (name === "NotAllowedError" || name === "SecurityError")
    return ["denied", "Camera permission was denied. Allow the camera for this page (the icon in the address bar) and click Start camera again."];
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError")
    return ["no-camera", "No camera was found. Plug one in, or run the demo on a kernel with a camera: WebcamMatting(camera=0)."];
  if (name === "NotReadableError")
    return ["error", "The camera is busy (another application or tab is using it)."];
  return ["error", `The camera could not start: ${name || "Error"}: ${(error && error.message) || error}`];
}

function render({ model, el }) {
  // The engine in the class too: a page (chapter 08) may hold one widget of each engine.
  el.classList.add("mk-webcam", `mk-engine-${model.get("engine")}`);
  const bar = element("div", { class: "mk-webcam-controls" });
  const startButton = element("button", { type: "button", class: "mk-start" }, "Start camera");
  const plateButton = element("button", { type: "button", class: "mk-plate" }, "Capture plate");
  const resetButton = element("button", { type: "button", class: "mk-reset" }, "Forget plate");
  bar.append(startButton, plateButton, resetButton);
  const selects = [];
  for (const [trait, options] of Object.entries(CHOICES)) {
    const label = element("label", {}, trait === "mode" ? "view " : `${trait} `);
    const select = element("select", { class: `mk-${trait}` });
    for (const option of options) select.append(element("option", { value: option }, option));
    select.value = model.get(trait);
    select.addEventListener("change", () => {
      model.set(trait, select.value);
      model.save_changes();
    });
    model.on(`change:${trait}`, () => (select.value = model.get(trait)));
    label.append(select);
    bar.append(label);
    selects.push(select);
  }
  // The background picture: shown while the background is "image".
  const pictureLabel = element("label", { class: "mk-picture-label" }, "picture… ");
  const pictureInput = element("input", { type: "file", accept: "image/*", class: "mk-picture" });
  pictureLabel.append(pictureInput);
  bar.append(pictureLabel);
  const showPicture = () => (pictureLabel.style.display = model.get("background") === "image" ? "" : "none");
  model.on("change:background", showPicture);
  showPicture();
  pictureInput.addEventListener("change", async () => {
    const file = pictureInput.files && pictureInput.files[0];
    if (!file) return;
    const buffer = await file.arrayBuffer();
    engine.picture = await createImageBitmap(new Blob([buffer])).catch(() => null);
    engine.backgrounds.clear();
    model.send({ type: "background_image", name: file.name }, undefined, [buffer]);
    pictureInput.value = ""; // the same file can be chosen again
  });

  const status = element("div", { class: "mk-webcam-status", role: "status" });
  const stats = element("div", { class: "mk-webcam-stats" });
  const output = element("canvas", { class: "mk-webcam-output" });
  const video = element("video", { class: "mk-webcam-video", playsinline: "", muted: "" });
  video.muted = true;
  el.append(bar, status, output, stats, video);
  const showStatus = () => {
    if (!state.gone) status.textContent = model.get("status");
  };
  model.on("change:status", () => showStatus());

  const grab = document.createElement("canvas"); // hidden, holds the downscaled frame
  const state = {
    stream: null,
    nextId: 1,
    inFlight: new Map(), // id -> time sent (performance.now())
    givenUp: new Set(), // ids no longer waited for (counted as dropped)
    cameraFrames: [], // times of recent camera frames
    results: [], // times of recent answers
    lastRoundTrip: 0, // ms
    sending: false,
    closed: false,
    gone: false,
    loop: 0, // the running frame loop's number; an older loop sees a newer one and ends
    liveLoops: new Set(),
    pending: null, // the scheduled callback of the running loop
    seen: 0,
    answered: 0,
    dropped: 0,
    matted: 0,
    lastSkipped: false, // the newest camera frame was not sent: send it when room frees up
  };
  showStatus();

  function counters() {
    el.dataset.framesSeen = state.seen;
    el.dataset.framesAnswered = state.answered;
    el.dataset.framesDropped = state.dropped;
    el.dataset.framesMatted = state.matted;
    el.dataset.inFlight = state.inFlight.size;
    el.dataset.givenUp = state.givenUp.size;
    el.dataset.frameLoops = state.liveLoops.size;
    el.dataset.outputSize = `${output.width}x${output.height}`;
  }

  function setState(cameraState, message) {
    model.set("camera_state", cameraState);
    if (message) model.set("status", message);
    model.save_changes();
  }

  function rate(times) {
    const now = performance.now();
    while (times.length && now - times[0] > 2000) times.shift();
    return times.length >= 2 ? (1000 * (times.length - 1)) / (times[times.length - 1] - times[0]) : 0;
  }

  function showStats() {
    if (state.gone) return;
    const cameraFps = rate(state.cameraFrames);
    const mattingFps = rate(state.results);
    stats.textContent =
      `camera ${cameraFps.toFixed(1)} fps · matting ${mattingFps.toFixed(1)} fps · ` +
      `round trip ${state.lastRoundTrip.toFixed(0)} ms · in flight ${state.inFlight.size} · ` +
      `seen ${model.get("source") === "browser" ? state.seen : model.get("frames_seen")} · ` +
      `dropped ${model.get("source") === "browser" ? state.dropped : model.get("frames_dropped")}`;
    if (model.get("engine") === "browser" && engine.session) {
      const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
      const budget = {};
      for (const [stage, values] of Object.entries(engine.budget)) if (values.length) budget[stage] = median(values);
      model.send({ type: "browser_stats", budget });
      model.set("frames_matted", state.matted);
    }
    if (model.get("source") === "browser") {
      model.set("camera_fps", Math.round(cameraFps * 10) / 10);
      model.set("matting_fps", Math.round(mattingFps * 10) / 10);
      model.set("frames_seen", state.seen);
      model.set("frames_dropped", state.dropped);
      model.save_changes();
    }
    counters();
  }
  const statsTimer = setInterval(showStats, 1000);

  function giveUpOldFrames() {
    const now = performance.now();
    for (const [id, sentAt] of state.inFlight) {
      if (now - sentAt > GIVE_UP_MS) {
        state.inFlight.delete(id);
        state.givenUp.add(id);
        state.dropped += 1;
      }
    }
  }

  async function sendFrame() {
    // Sends the current camera frame if the kernel has room for it; says whether it did.
    giveUpOldFrames();
    if (state.sending || state.inFlight.size >= model.get("max_in_flight") || video.readyState < 2) return false;
    state.sending = true;
    try {
      const start = performance.now();
      grab.width = model.get("width");
      grab.height = model.get("height");
      grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
      const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", model.get("jpeg_quality") / 100));
      const buffer = await blob.arrayBuffer();
      const id = state.nextId++;
      const sentAt = performance.now();
      state.inFlight.set(id, sentAt);
      const delay = model.get("simulated_delay_ms") / 2; // a remote kernel, one way
      if (delay > 0) await sleep(delay);
      model.send({ type: "frame", id, capture_ms: sentAt - start }, undefined, [buffer]);
      return true;
    } finally {
      state.sending = false;
    }
  }

  async function onCameraFrame() {
    state.cameraFrames.push(performance.now());
    state.seen += 1;
    const sent = model.get("engine") === "browser" ? await browserFrame() : await sendFrame();
    state.lastSkipped = !sent;
    if (!sent) state.dropped += 1; // the model had no time for it: latest frame wins
    counters();
  }

  function startLoop() {
    // One loop per camera start: a loop whose number is not the current one ends itself.
    stopLoop();
    const number = ++state.loop;
    state.liveLoops.add(number);
    const useVideoFrames = !!video.requestVideoFrameCallback;
    const step = () => {
      state.pending = null;
      if (number !== state.loop || !state.stream || state.closed) {
        state.liveLoops.delete(number);
        counters();
        return;
      }
      onCameraFrame();
      schedule();
    };
    const schedule = () => {
      state.pending = useVideoFrames
        ? { cancel: video.cancelVideoFrameCallback.bind(video), handle: video.requestVideoFrameCallback(step), number }
        : { cancel: cancelAnimationFrame, handle: requestAnimationFrame(step), number };
    };
    schedule();
    counters();
  }

  function stopLoop() {
    state.loop += 1; // any callback still on its way ends its loop
    if (state.pending) {
      state.pending.cancel(state.pending.handle);
      state.liveLoops.delete(state.pending.number);
      state.pending = null;
    }
    counters();
  }

  async function startCamera() {
    if (state.gone) return;
    if (model.get("source") !== "browser") {
      model.send({ type: state.stream ? "stop" : "start" });
      state.stream = state.stream ? null : "kernel";
      startButton.textContent = state.stream ? "Stop camera" : "Start camera";
      return;
    }
    if (state.stream) return stopCamera();
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setState("unsupported", "This page cannot use a camera: browsers allow it only over https or on localhost.");
      return;
    }
    startButton.disabled = true; // one start at a time
    setState("starting", "Starting the camera…");
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: model.get("width") }, height: { ideal: model.get("height") } },
        audio: false,
      });
      video.srcObject = state.stream;
      await video.play();
    } catch (error) {
      if (state.stream && state.stream.getTracks) state.stream.getTracks().forEach((track) => track.stop());
      state.stream = null;
      setState(...cameraProblem(error));
      return;
    } finally {
      startButton.disabled = state.gone;
    }
    if (state.gone) return stopCamera();
    startButton.textContent = "Stop camera";
    setState(
      "on",
      model.get("plate_captured")
        ? "Camera on: matting against the plate captured before (Forget plate to take a new one)."
        : "Camera on. Step out of the frame, then click Capture plate."
    );
    startLoop();
  }

  function stopCamera(message = "Camera off. Click Start camera to go on.") {
    stopLoop();
    if (state.stream && state.stream.getTracks) state.stream.getTracks().forEach((track) => track.stop());
    const wasOn = !!state.stream;
    state.stream = null;
    video.srcObject = null;
    startButton.textContent = "Start camera";
    if (!state.gone && model.get("source") === "browser") setState("off", wasOn ? message : "");
  }

  function kernelGone() {
    // The model on the other end no longer exists: say so, free the camera, stop waiting.
    if (state.gone) return;
    state.gone = true;
    stopCamera();
    for (const node of [startButton, plateButton, resetButton, pictureInput, ...selects]) node.disabled = true;
    state.inFlight.clear();
    el.classList.add("mk-webcam-gone");
    status.textContent = KERNEL_GONE;
    stats.textContent = "";
    const context = output.getContext("2d");
    context.fillStyle = "#444";
    context.fillRect(0, 0, output.width, output.height);
    counters();
  }

  // JupyterLab and Notebook 7 tell their widget manager about the kernel; VS Code and
  // Colab do not (there the widget simply stays as it is).
  const kernel = model.widget_manager && model.widget_manager.kernel;
  const onStatus = (_kernel, kernelStatus) => {
    if (["restarting", "autorestarting", "dead", "terminating"].includes(kernelStatus)) kernelGone();
  };
  if (kernel && kernel.statusChanged && kernel.statusChanged.connect) kernel.statusChanged.connect(onStatus);

  model.on("msg:custom", async (message, buffers) => {
    if (state.gone) return;
    if (message.type === "web_manifest") {
      engine.manifest = message;
      engine.manifestWaiters.splice(0).forEach((resolve) => resolve(message));
      return;
    }
    if (message.type === "web_chunk" || message.type === "web_file_missing") {
      const waiting = engine.waiting.get(message.name);
      if (!waiting) return;
      if (message.type === "web_file_missing") {
        engine.waiting.delete(message.name);
        waiting.reject(new Error(`the kernel has no ${message.name}`));
        return;
      }
      waiting.pieces[message.index] = asBytes(buffers[0]).slice();
      waiting.got += 1;
      if (waiting.got === message.count) {
        engine.waiting.delete(message.name);
        const size = waiting.pieces.reduce((total, piece) => total + piece.length, 0);
        const bytes = new Uint8Array(size);
        let offset = 0;
        for (const piece of waiting.pieces) {
          bytes.set(piece, offset);
          offset += piece.length;
        }
        waiting.resolve(bytes);
      }
      return;
    }
    if (message.type === "dropped") {
      // Counted once: now, or already when the browser gave up waiting for it.
      if (state.inFlight.delete(message.id)) state.dropped += 1;
      state.givenUp.delete(message.id);
      counters();
      return;
    }
    if (message.type !== "result") return;
    const delay = model.get("simulated_delay_ms") / 2;
    if (delay > 0) await sleep(delay); // the way back from a remote kernel
    const arrived = performance.now();
    const sentAt = state.inFlight.get(message.id);
    state.inFlight.delete(message.id);
    if (state.givenUp.delete(message.id)) state.dropped -= 1; // answered after all
    state.answered += 1;
    if (message.kind === "matte") state.matted += 1;
    const bitmap = await createImageBitmap(new Blob([buffers[0]], { type: "image/jpeg" }));
    if (state.gone) {
      // The kernel went away while the frame was decoded: keep the grey "gone" canvas.
      bitmap.close();
      return;
    }
    if (output.width !== bitmap.width || output.height !== bitmap.height) {
      output.width = bitmap.width;
      output.height = bitmap.height;
    }
    output.getContext("2d").drawImage(bitmap, 0, 0);
    bitmap.close();
    const drawn = performance.now();
    if (message.kind === "matte") state.results.push(drawn);
    const report = { type: "drawn", id: message.id, draw_ms: drawn - arrived };
    if (sentAt !== undefined) {
      report.round_trip_ms = state.lastRoundTrip = arrived - sentAt;
    }
    model.send(report);
    // Room for a frame now: the newest camera frame, if it was not sent, goes after all.
    if (state.lastSkipped && state.stream && (await sendFrame())) {
      state.lastSkipped = false;
      state.dropped -= 1;
    }
    counters();
  });

  // --- the browser engine: the model runs in this page ------------------------------
  const engine = {
    starting: null, // the promise of the session being loaded
    session: null,
    manifest: null,
    manifestWaiters: [],
    waiting: new Map(), // file name -> the pieces arriving from the kernel
    plate: null, // a canvas at camera resolution, scaled per frame size
    plateInputs: new Map(),
    wantPlate: false,
    picture: null,
    backgrounds: new Map(),
    busy: false,
    budget: { capture: [], inference: [], draw: [] },
    recent: [],
    keep: 0,
  };

  function say(text) {
    model.set("status", text);
    model.save_changes();
  }

  function askManifest() {
    if (engine.manifest) return Promise.resolve(engine.manifest);
    return new Promise((resolve) => {
      engine.manifestWaiters.push(resolve);
      model.send({ type: "web_manifest" });
    });
  }

  function fromKernel(name) {
    return new Promise((resolve, reject) => {
      engine.waiting.set(name, { pieces: [], got: 0, resolve, reject });
      model.send({ type: "web_file", name });
    });
  }

  async function runtimeFile(manifest, name) {
    // The pinned version from the CDN (the browser checks its SRI hash), or the kernel's
    // local copy (`npm ci`) where the page has no internet; cached either way.
    const runtime = manifest.runtime;
    const info = runtime.files[name];
    const key = `${location.origin}/mattingkit-cache/${runtime.package}/${runtime.version}/${name}`;
    return MattingkitWeb.cachedBytes(key, async () => {
      try {
        const response = await fetch(runtime.cdn + name, { integrity: info.integrity, credentials: "omit" });
        if (response.ok) return { bytes: new Uint8Array(await response.arrayBuffer()), source: "cdn" };
      } catch (error) {
        // offline, blocked, or not the pinned file: the kernel's copy
      }
      if (!runtime.local.includes(name)) {
        throw new Error(`onnxruntime-web is neither reachable on the CDN nor installed next to the kernel: ${runtime.missing}`);
      }
      return { bytes: await fromKernel(name), source: "kernel" };
    }, { sha256: info.sha256 });
  }

  async function startEngine() {
    say("Browser engine: asking the kernel for the model…");
    const manifest = await askManifest();
    say(`Browser engine: loading onnxruntime-web ${manifest.runtime.version}…`);
    const files = [];
    for (const name of RUNTIME_FILES) files.push(await runtimeFile(manifest, name));
    await MattingkitWeb.startRuntime(files[0].bytes, files[1].bytes, files[2].bytes);
    say(`Browser engine: loading the model (${(manifest.model.bytes / 1e6).toFixed(1)} MB)…`);
    const key = `${location.origin}/mattingkit-cache/models/${manifest.model.name}`;
    const modelFile = await MattingkitWeb.cachedBytes(
      key, async () => ({ bytes: await fromKernel("model"), source: "kernel" }), { sha256: manifest.model.sha256 });
    const { session, backend, threads, note } = await MattingkitWeb.createSession(modelFile.bytes);
    engine.session = session;
    const sources = [...new Set(files.map((file) => file.source))].join("+");
    model.set("backend", backend);
    model.set("runtime_source", sources);
    model.set("model_source", modelFile.source);
    el.dataset.backend = backend;
    const where = backend === "webgpu" ? "WebGPU" : `WebAssembly (${threads} thread${threads > 1 ? "s" : ""}${note ? `; ${note}` : ""})`;
    say(`Matting in this browser on ${where}; runtime from ${sources}, model from ${modelFile.source}. ` +
      (engine.plate ? "" : "Step out of the frame, then click Capture plate."));
    return session;
  }

  function forgetBrowserPlate() {
    engine.plate = null;
    engine.plateInputs.clear();
    engine.backgrounds.clear();
    model.set("plate_captured", false);
    say("No plate yet: step out of the frame, then click “Capture plate”.");
  }

  function keepPlate() {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    engine.plate = canvas;
    engine.plateInputs.clear();
    engine.backgrounds.clear();
    engine.wantPlate = false;
    model.set("plate_captured", true);
    say(PLATE_MESSAGE);
  }

  function scaled(source, height, width, filter = "none") {
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.filter = filter;
    const scale = Math.max(width / source.width, height / source.height); // cover
    const w = source.width * scale, h = source.height * scale;
    context.drawImage(source, (width - w) / 2, (height - h) / 2, w, h);
    return context.getImageData(0, 0, width, height).data;
  }

  function plateInput(height, width) {
    const key = `${height}x${width}`;
    if (!engine.plateInputs.has(key)) {
      engine.plateInputs.set(key, MattingkitWeb.toInput(scaled(engine.plate, height, width), height, width));
    }
    return engine.plateInputs.get(key);
  }

  function backgroundPixels(height, width) {
    const choice = model.get("background");
    if (COLOURS[choice]) return COLOURS[choice];
    if (choice.startsWith("#")) return [1, 3, 5].map((i) => parseInt(choice.slice(i, i + 2), 16));
    const key = `${choice} ${height}x${width}`;
    if (!engine.backgrounds.has(key)) {
      // "blur": the plate, blurred; "image": the chosen picture (the blurred plate until then)
      const picture = choice === "image" && engine.picture;
      const pixels = picture
        ? scaled(engine.picture, height, width)
        : scaled(engine.plate, height, width, `blur(${Math.max(2, Math.round(width / 40))}px)`);
      engine.backgrounds.set(key, pixels);
    }
    return engine.backgrounds.get(key);
  }

  async function browserFrame() {
    // Matte the current camera frame here; says whether it was taken (false: the model was busy).
    if (!engine.starting) {
      engine.starting = startEngine().catch((error) => {
        say(`⚠ The browser engine could not start: ${error.message || error}`);
        console.error(error);
        return null;
      });
    }
    if (engine.busy || !engine.session || video.readyState < 2) return false;
    engine.busy = true;
    try {
      const t0 = performance.now();
      const width = model.get("width"), height = model.get("height");
      grab.width = width;
      grab.height = height;
      const context = grab.getContext("2d", { willReadFrequently: true });
      context.drawImage(video, 0, 0, width, height);
      const frame = context.getImageData(0, 0, width, height);
      if (engine.wantPlate) keepPlate();
      if (output.width !== width || output.height !== height) {
        output.width = width;
        output.height = height;
      }
      if (!engine.plate) {
        output.getContext("2d").putImageData(frame, 0, 0); // the camera as it is
        state.answered += 1;
        return true;
      }
      const t1 = performance.now();
      const { pha, fgr } = await MattingkitWeb.matte(engine.session, frame.data, plateInput(height, width), height, width);
      const t2 = performance.now();
      const picture = new ImageData(width, height);
      if (model.get("mode") === "alpha") {
        for (let p = 0; p < pha.length; p++) {
          picture.data.fill(pha[p] * 255, 4 * p, 4 * p + 3); // grey: the alpha
          picture.data[4 * p + 3] = 255;
        }
      } else {
        MattingkitWeb.composite(picture.data, pha, fgr, backgroundPixels(height, width), height, width);
      }
      output.getContext("2d").putImageData(picture, 0, 0);
      const t3 = performance.now();
      state.answered += 1;
      state.matted += 1;
      state.results.push(t3);
      for (const [stage, ms] of [["capture", t1 - t0], ["inference", t2 - t1], ["draw", t3 - t2]]) {
        engine.budget[stage].push(ms);
        if (engine.budget[stage].length > 30) engine.budget[stage].shift();
      }
      if (engine.keep) {
        engine.recent.push({ src: frame.data, pha: Float32Array.from(pha), height, width });
        while (engine.recent.length > engine.keep) engine.recent.shift();
      }
      return true;
    } finally {
      engine.busy = false;
    }
  }

  // For tests and the curious: the last n frames matted here with their alpha, and the plate.
  const base64 = (bytes) => {
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(text);
  };
  el.mattingkitEngine = {
    keepRecent(n) { engine.keep = n; engine.recent = []; },
    recent: () => engine.recent.map((r) => ({
      height: r.height, width: r.width,
      src: base64(new Uint8Array(r.src.buffer, r.src.byteOffset, r.src.byteLength)),
      pha: base64(new Uint8Array(r.pha.buffer)),
    })),
    plate: () => {
      if (!engine.plate) return null;
      const data = engine.plate.getContext("2d").getImageData(0, 0, engine.plate.width, engine.plate.height).data;
      return { width: engine.plate.width, height: engine.plate.height, rgba: base64(new Uint8Array(data.buffer)) };
    },
    forgetPlate: forgetBrowserPlate,
  };

  startButton.addEventListener("click", startCamera);
  plateButton.addEventListener("click", () => {
    if (model.get("engine") === "browser") engine.wantPlate = true;
    else model.send({ type: "capture_plate" });
  });
  resetButton.addEventListener("click", () => {
    if (model.get("engine") === "browser") forgetBrowserPlate();
    else model.send({ type: "reset_plate" });
  });
  counters();
  if (model.get("autostart")) startCamera();

  return () => {
    state.closed = true;
    clearInterval(statsTimer);
    if (kernel && kernel.statusChanged && kernel.statusChanged.disconnect) kernel.statusChanged.disconnect(onStatus);
    if (model.get("source") === "browser") stopCamera();
  };
}

export default { render };
