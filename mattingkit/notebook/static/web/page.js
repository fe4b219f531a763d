// page.js: the exported page's controls (`mattingkit export --web`). Camera frames are
// matted in this browser (MattingkitWeb + onnxruntime-web) and drawn here; nothing is sent
// anywhere. The page's state is in <body data-*> attributes (state, backend, model-source,
// frames-seen, frames-matted, output-size), for people and tests alike.
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("mk-config").textContent);
  const $ = (selector) => document.querySelector(selector);
  const ui = {
    start: $(".mk-start"), plate: $(".mk-plate"), size: $(".mk-size"),
    background: $(".mk-background"), colour: $(".mk-colour"), picture: $(".mk-picture"),
    status: $(".mk-status"), stats: $(".mk-stats"), video: $(".mk-video"),
    plateView: $(".mk-plate-view"), output: $(".mk-output"),
  };
  const COLOURS = { green: [120, 255, 155], white: [255, 255, 255] };
  const state = {
    session: null, backend: "", stream: null, running: false,
    plate: null, // the plate at camera resolution (a canvas), resized per output size
    plateInputs: new Map(), backgrounds: new Map(), picture: null,
    seen: 0, matted: 0, times: [], runMs: [], recent: [], keep: 0, wantPlate: false, modelMs: 0,
  };
  const work = document.createElement("canvas"); // frames at the output size
  const workContext = work.getContext("2d", { willReadFrequently: true });

  function setStatus(text, kind = "info") {
    ui.status.textContent = text;
    ui.status.dataset.kind = kind;
  }

  function mark(name, value) {
    document.body.dataset[name] = String(value);
  }

  function outputSize() {
    const [height, width] = ui.size.value.split("x").map(Number);
    return { height, width };
  }

  for (const [height, width] of config.sizes) {
    const option = new Option(`${width}×${height}`, `${height}x${width}`);
    ui.size.add(option);
  }

  // --- the model --------------------------------------------------------------------
  async function init() {
    mark("state", "loading");
    try {
      const model = await MattingkitWeb.loadModel(config.model.url, {
        sha256: config.model.sha256,
        onProgress: (loaded, total) =>
          setStatus(`Loading the model: ${(loaded / 1e6).toFixed(1)} of ${((total || config.model.bytes) / 1e6).toFixed(1)} MB…`),
      });
      mark("modelSource", model.source);
      setStatus("Starting the runtime…");
      const prefer = new URLSearchParams(location.search).get("backend") === "wasm" ? "wasm" : "auto";
      const { session, backend, threads, note } = await MattingkitWeb.createSession(model.bytes, {
        prefer, wasmPaths: config.runtime.path,
      });
      state.session = session;
      state.backend = backend;
      mark("backend", backend);
      mark("threads", threads);
      mark("state", "ready");
      const name = backend === "webgpu" ? "WebGPU" : `WebAssembly, ${threads} thread${threads > 1 ? "s" : ""}`;
      setStatus(`Ready: the model (${config.model.precision} weights, ${(config.model.bytes / 1e6).toFixed(1)} MB, ` +
        `${model.source === "cache" ? "from this browser's cache" : "downloaded"}) runs on ${name}` +
        `${note ? ` (${note})` : ""}. Start the camera.`);
    } catch (error) {
      mark("state", "error");
      setStatus(`Could not start: ${error.message || error}`, "error");
      console.error(error);
    }
  }

  // --- the camera -------------------------------------------------------------------
  async function startCamera() {
    if (state.running) return stopCamera();
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
      });
    } catch (error) {
      setStatus(`No camera: ${error.message || error}`, "error");
      return;
    }
    ui.video.srcObject = state.stream;
    await ui.video.play();
    state.running = true;
    ui.start.textContent = "Stop camera";
    ui.plate.disabled = false;
    mark("state", "running");
    setStatus(state.plate ? "Matting." : "Step out of view and press Capture plate.");
    countCameraFrames();
    loop();
  }

  // Every frame the camera presents, matted or not (the loop skips those that come while
  // the model runs): seen − matted is what the model had no time for.
  function countCameraFrames() {
    if (!ui.video.requestVideoFrameCallback) return;
    const tick = () => {
      if (!state.running) return;
      state.seen += 1;
      mark("framesSeen", state.seen);
      ui.video.requestVideoFrameCallback(tick);
    };
    ui.video.requestVideoFrameCallback(tick);
  }

  function stopCamera() {
    state.running = false;
    if (state.stream) state.stream.getTracks().forEach((track) => track.stop());
    state.stream = null;
    ui.start.textContent = "Start camera";
    ui.plate.disabled = true;
    mark("state", "ready");
    setStatus("Camera stopped.");
  }

  function nextVideoFrame() {
    return new Promise((resolve) => {
      if (ui.video.requestVideoFrameCallback) ui.video.requestVideoFrameCallback(() => resolve());
      else requestAnimationFrame(() => resolve());
    });
  }

  // One frame at a time: frames that come while the model runs are skipped (seen, not matted).
  async function loop() {
    while (state.running) {
      await nextVideoFrame();
      if (!state.running) break;
      if (!ui.video.requestVideoFrameCallback) mark("framesSeen", ++state.seen);
      try {
        await step();
      } catch (error) {
        setStatus(`Matting failed: ${error.message || error}`, "error");
        console.error(error);
        stopCamera();
      }
    }
  }

  async function step() {
    const { height, width } = outputSize();
    if (work.width !== width || work.height !== height) {
      work.width = width;
      work.height = height;
    }
    if (state.wantPlate) capturePlate();
    workContext.drawImage(ui.video, 0, 0, width, height);
    const frame = workContext.getImageData(0, 0, width, height);
    if (ui.output.width !== width || ui.output.height !== height) {
      ui.output.width = width;
      ui.output.height = height;
    }
    const out = ui.output.getContext("2d");
    if (!state.plate) {
      out.putImageData(frame, 0, 0); // the camera as it is, until there is a plate
      return;
    }
    const started = performance.now();
    const { pha, fgr } = await MattingkitWeb.matte(state.session, frame.data, plateInput(height, width), height, width);
    const ran = performance.now() - started;
    const picture = new ImageData(width, height);
    MattingkitWeb.composite(picture.data, pha, fgr, background(height, width), height, width);
    out.putImageData(picture, 0, 0);
    state.matted += 1;
    state.modelMs += ran;
    mark("modelMsTotal", state.modelMs.toFixed(1));
    state.runMs.push(ran);
    state.times.push(performance.now());
    if (state.times.length > 30) state.times.shift();
    if (state.runMs.length > 30) state.runMs.shift();
    if (state.keep) {
      state.recent.push({ src: frame.data, pha: Float32Array.from(pha), height, width });
      while (state.recent.length > state.keep) state.recent.shift();
    }
    mark("framesMatted", state.matted);
    mark("outputSize", `${width}x${height}`);
    showStats();
  }

  function showStats() {
    const t = state.times;
    const rate = t.length > 1 ? (1000 * (t.length - 1)) / (t[t.length - 1] - t[0]) : 0;
    const ms = state.runMs.reduce((a, b) => a + b, 0) / Math.max(1, state.runMs.length);
    ui.stats.textContent = `${state.backend}: model ${ms.toFixed(0)} ms/frame, ${rate.toFixed(1)} composites/s; ` +
      `camera frames seen ${state.seen}, matted ${state.matted}`;
    mark("msPerFrame", ms.toFixed(1));
    mark("compositesPerSecond", rate.toFixed(2));
  }

  // --- plate and background ---------------------------------------------------------
  function capturePlate() {
    state.wantPlate = false;
    const canvas = document.createElement("canvas");
    canvas.width = ui.video.videoWidth;
    canvas.height = ui.video.videoHeight;
    canvas.getContext("2d").drawImage(ui.video, 0, 0);
    state.plate = canvas;
    state.plateInputs.clear();
    ui.plateView.width = canvas.width;
    ui.plateView.height = canvas.height;
    ui.plateView.getContext("2d").drawImage(canvas, 0, 0);
    mark("plate", "yes");
    setStatus("Plate captured: step back in.");
  }

  function plateInput(height, width) {
    const key = `${height}x${width}`;
    if (!state.plateInputs.has(key)) {
      const canvas = document.createElement("canvas");
      canvas.width = width;
      canvas.height = height;
      const context = canvas.getContext("2d");
      context.drawImage(state.plate, 0, 0, width, height);
      const rgba = context.getImageData(0, 0, width, height).data;
      state.plateInputs.set(key, MattingkitWeb.toInput(rgba, height, width));
    }
    return state.plateInputs.get(key);
  }

  function background(height, width) {
    const choice = ui.background.value;
    if (choice === "transparent") return null;
    if (choice === "colour") {
      const hex = ui.colour.value;
      return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    }
    if (choice === "picture" && state.picture) {
      const key = `${height}x${width}`;
      if (!state.backgrounds.has(key)) {
        const canvas = document.createElement("canvas");
        canvas.width = width;
        canvas.height = height;
        const image = state.picture;
        const scale = Math.max(width / image.width, height / image.height); // cover
        const w = image.width * scale, h = image.height * scale;
        const context = canvas.getContext("2d");
        context.drawImage(image, (width - w) / 2, (height - h) / 2, w, h);
        state.backgrounds.set(key, context.getImageData(0, 0, width, height).data);
      }
      return state.backgrounds.get(key);
    }
    return COLOURS[choice] || COLOURS.green;
  }

  ui.start.addEventListener("click", startCamera);
  ui.plate.addEventListener("click", () => { state.wantPlate = true; });
  ui.background.addEventListener("change", () => {
    ui.colour.hidden = ui.background.value !== "colour";
    if (ui.background.value === "picture") ui.picture.click();
    ui.picture.hidden = ui.background.value !== "picture";
  });
  ui.picture.addEventListener("change", async () => {
    const file = ui.picture.files[0];
    if (!file) return;
    try {
      state.picture = await createImageBitmap(file);
      state.backgrounds.clear();
    } catch (error) {
      setStatus(`Not a picture this browser can read: ${file.name}`, "error");
    }
  });

  // For tests and curious readers: keep the last n frames and their alpha.
  function toBase64(bytes) {
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(text);
  }
  window.mattingkitPage = {
    config,
    keepRecent(n) { state.keep = n; state.recent = []; },
    recent() {
      return state.recent.map((r) => ({
        height: r.height, width: r.width,
        src: toBase64(new Uint8Array(r.src.buffer, r.src.byteOffset, r.src.byteLength)),
        pha: toBase64(new Uint8Array(r.pha.buffer)),
      }));
    },
    resetPlate() { state.plate = null; state.plateInputs.clear(); delete document.body.dataset.plate; },
  };

  init();
})();
