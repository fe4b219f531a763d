// Browser half of mattingkit.webcam.WebcamMatting (chapter 08).
//
// The browser owns the camera, the kernel owns the model. Every camera frame is drawn,
// downscaled, onto a hidden canvas, JPEG-encoded and sent to the kernel as a binary
// buffer. At most `max_in_flight` frames wait for an answer: newer camera frames are
// simply not sent (latest frame wins), so nothing piles up when the model is slow.
// Each answer (a JPEG) is drawn on the visible canvas and acknowledged with the time
// it took, which gives the kernel the whole latency budget.

const CHOICES = {
  background: ["green", "blue", "white", "black", "blur", "image"],
  mode: ["composite", "alpha"],
  weights: ["mattingkit", "mobilenetv2", "resnet50", "resnet101"],
  preset: ["auto", "hd", "4k"],
};

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
  el.classList.add("mk-webcam");
  const bar = element("div", { class: "mk-webcam-controls" });
  const startButton = element("button", { type: "button", class: "mk-start" }, "Start camera");
  const plateButton = element("button", { type: "button", class: "mk-plate" }, "Capture plate");
  const resetButton = element("button", { type: "button", class: "mk-reset" }, "Forget plate");
  bar.append(startButton, plateButton, resetButton);
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
  }
  const status = element("div", { class: "mk-webcam-status", role: "status" });
  const stats = element("div", { class: "mk-webcam-stats" });
  const output = element("canvas", { class: "mk-webcam-output" });
  const video = element("video", { class: "mk-webcam-video", playsinline: "", muted: "" });
  video.muted = true;
  el.append(bar, status, output, stats, video);
  const showStatus = () => (status.textContent = model.get("status"));
  model.on("change:status", showStatus);
  showStatus();

  const grab = document.createElement("canvas"); // hidden, holds the downscaled frame
  const state = {
    stream: null,
    nextId: 1,
    inFlight: new Map(), // id -> time sent (performance.now())
    cameraFrames: [], // times of recent camera frames
    results: [], // times of recent answers
    lastRoundTrip: 0, // ms
    sending: false,
    closed: false,
  };

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
    const cameraFps = rate(state.cameraFrames);
    const mattingFps = rate(state.results);
    stats.textContent =
      `camera ${cameraFps.toFixed(1)} fps · matting ${mattingFps.toFixed(1)} fps · ` +
      `round trip ${state.lastRoundTrip.toFixed(0)} ms · in flight ${state.inFlight.size} · dropped ${model.get("frames_dropped")}`;
    if (model.get("source") === "browser") {
      model.set("camera_fps", Math.round(cameraFps * 10) / 10);
      model.set("matting_fps", Math.round(mattingFps * 10) / 10);
      model.save_changes();
    }
  }
  const statsTimer = setInterval(showStats, 1000);

  async function sendFrame() {
    // Called for every new camera frame; sends it only if the kernel has room for it.
    const now = performance.now();
    for (const [id, sentAt] of state.inFlight) if (now - sentAt > 3000) state.inFlight.delete(id); // kernel busy (a cell is running): give up on it
    if (state.sending || state.inFlight.size >= model.get("max_in_flight") || video.readyState < 2) return;
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
      model.send({ type: "frame", id, capture_ms: sentAt - start }, undefined, [buffer]);
    } finally {
      state.sending = false;
    }
  }

  function onCameraFrame() {
    if (!state.stream || state.closed) return;
    state.cameraFrames.push(performance.now());
    sendFrame();
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onCameraFrame);
    else requestAnimationFrame(onCameraFrame);
  }

  async function startCamera() {
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
    setState("starting", "Starting the camera…");
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: model.get("width") }, height: { ideal: model.get("height") } },
        audio: false,
      });
    } catch (error) {
      state.stream = null;
      setState(...cameraProblem(error));
      return;
    }
    video.srcObject = state.stream;
    await video.play();
    startButton.textContent = "Stop camera";
    setState("on", model.get("plate_captured") ? "" : "Camera on. Step out of the frame, then click Capture plate.");
    onCameraFrame();
  }

  function stopCamera() {
    if (state.stream && state.stream.getTracks) state.stream.getTracks().forEach((track) => track.stop());
    state.stream = null;
    video.srcObject = null;
    startButton.textContent = "Start camera";
    setState("off", "");
  }

  model.on("msg:custom", async (message, buffers) => {
    if (message.type === "dropped") {
      state.inFlight.delete(message.id);
      return;
    }
    if (message.type !== "result") return;
    const arrived = performance.now();
    const sentAt = state.inFlight.get(message.id);
    state.inFlight.delete(message.id);
    const bitmap = await createImageBitmap(new Blob([buffers[0]], { type: "image/jpeg" }));
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
    sendFrame(); // room for the next frame now
  });

  startButton.addEventListener("click", startCamera);
  plateButton.addEventListener("click", () => model.send({ type: "capture_plate" }));
  resetButton.addEventListener("click", () => model.send({ type: "reset_plate" }));
  if (model.get("autostart")) startCamera();

  return () => {
    state.closed = true;
    clearInterval(statsTimer);
    if (model.get("source") === "browser") stopCamera();
  };
}

export default { render };
