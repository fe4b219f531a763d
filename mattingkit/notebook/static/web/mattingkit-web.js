// mattingkit-web.js: Background Matting V2 in the browser with onnxruntime-web (chapter 08).
//
// The pieces a page (the exported one, or chapter 08's widget) needs to matte camera
// frames where the camera is: fetch the model once and keep it in the browser's Cache
// Storage, pick a backend (WebGPU where the browser offers an adapter, WebAssembly
// otherwise, and say which), turn canvas pixels into the model's inputs, and draw the
// composite from its outputs. Needs the global `ort` (onnxruntime-web's ort.min.js).
// Defines the global `MattingkitWeb`; no build step, so it loads from any static folder.
(function (global) {
  "use strict";

  const CACHE_NAME = "mattingkit-web-models-v1";

  /** SHA-256 of bytes as hex; null where the page is not a secure context (no crypto.subtle). */
  async function sha256(bytes) {
    if (!(global.crypto && global.crypto.subtle)) return null;
    const digest = await global.crypto.subtle.digest("SHA-256", bytes);
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /**
   * The model's bytes: from Cache Storage when an earlier visit fetched it (a reload, a
   * re-run, fetches nothing), otherwise from `url`, checked against `sha256` when given and
   * then cached. Returns {bytes, source: "cache" | "network"}. `onProgress(loaded, total)`.
   */
  async function loadModel(url, { sha256: expected = null, onProgress = null } = {}) {
    const absolute = new URL(url, global.location.href).href;
    const cache = global.caches ? await global.caches.open(CACHE_NAME).catch(() => null) : null;
    if (cache) {
      const hit = await cache.match(absolute);
      if (hit) {
        const bytes = new Uint8Array(await hit.arrayBuffer());
        if (!expected || (await sha256(bytes)) === expected) return { bytes, source: "cache" };
        await cache.delete(absolute); // a damaged copy: fetch it again
      }
    }
    const response = await fetch(absolute);
    if (!response.ok) throw new Error(`could not fetch the model ${url}: HTTP ${response.status}`);
    const total = +response.headers.get("content-length") || 0;
    const reader = response.body.getReader();
    const chunks = [];
    let loaded = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.length;
      if (onProgress) onProgress(loaded, total);
    }
    const bytes = new Uint8Array(loaded);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
    const digest = await sha256(bytes);
    if (expected && digest && digest !== expected) {
      throw new Error(`the model ${url} is damaged (SHA-256 ${digest}, expected ${expected})`);
    }
    if (cache) {
      await cache
        .put(absolute, new Response(bytes, { headers: { "content-type": "application/octet-stream" } }))
        .catch(() => {}); // storage full or refused: the page still runs
    }
    return { bytes, source: "network" };
  }

  /**
   * Bytes kept in Cache Storage under `key` (any http(s) URL of this origin, used as a
   * name): from the cache when there and intact, else from `fetcher()` (which returns
   * {bytes, source}), checked against `sha256`, then cached. Returns {bytes, source}.
   */
  async function cachedBytes(key, fetcher, { sha256: expected = null } = {}) {
    const cache = global.caches ? await global.caches.open(CACHE_NAME).catch(() => null) : null;
    if (cache) {
      const hit = await cache.match(key);
      if (hit) {
        const bytes = new Uint8Array(await hit.arrayBuffer());
        if (!expected || (await sha256(bytes)) === expected) return { bytes, source: "cache" };
        await cache.delete(key);
      }
    }
    const { bytes, source } = await fetcher();
    const digest = await sha256(bytes);
    if (expected && digest && digest !== expected) {
      throw new Error(`${key.split("/").pop()} is damaged (SHA-256 ${digest}, expected ${expected})`);
    }
    if (cache) {
      await cache
        .put(key, new Response(bytes, { headers: { "content-type": "application/octet-stream" } }))
        .catch(() => {});
    }
    return { bytes, source };
  }

  /**
   * Start onnxruntime-web from the bytes of its files, no URL needed (a notebook page has
   * no folder to serve them from): ort.min.js as a script, the WebAssembly loader (.mjs)
   * from a blob URL, the .wasm binary handed over as it is.
   */
  async function startRuntime(script, loader, wasm) {
    if (!global.ort) {
      const url = URL.createObjectURL(new Blob([script], { type: "text/javascript" }));
      const define = global.define; // a page with RequireJS would take ort as an AMD module
      global.define = undefined;
      try {
        await new Promise((resolve, reject) => {
          const tag = document.createElement("script");
          tag.src = url;
          tag.onload = resolve;
          tag.onerror = () => reject(new Error("onnxruntime-web (ort.min.js) did not load"));
          document.head.append(tag);
        });
      } finally {
        global.define = define;
      }
    }
    global.ort.env.wasm.wasmPaths = {
      mjs: URL.createObjectURL(new Blob([loader], { type: "text/javascript" })),
    };
    global.ort.env.wasm.wasmBinary = wasm;
    return global.ort;
  }

  /** Whether this browser offers a WebGPU adapter (a GPU the page may use). */
  async function webgpuAvailable() {
    if (!(global.navigator && global.navigator.gpu)) return false;
    try {
      return (await global.navigator.gpu.requestAdapter()) !== null;
    } catch (error) {
      return false;
    }
  }

  /**
   * An inference session on the best backend: WebGPU where offered (unsupported operators
   * fall back to WebAssembly inside the same session), WebAssembly otherwise or if WebGPU
   * fails to start. Returns {session, backend: "webgpu" | "wasm", threads, note}.
   * `prefer: "wasm"` skips WebGPU. `wasmPaths`: the folder holding the runtime's .wasm/.mjs.
   */
  async function createSession(bytes, { prefer = "auto", wasmPaths = null } = {}) {
    const ort = global.ort;
    if (!ort) throw new Error("onnxruntime-web (ort.min.js) is not loaded on this page");
    if (wasmPaths) ort.env.wasm.wasmPaths = new URL(wasmPaths, global.location.href).href;
    // Threads need SharedArrayBuffer, which only cross-origin-isolated pages have (Jupyter
    // and Colab pages are not): one thread otherwise.
    const threads = global.crossOriginIsolated
      ? Math.min(4, global.navigator.hardwareConcurrency || 1)
      : 1;
    ort.env.wasm.numThreads = threads;
    let note = "";
    if (prefer !== "wasm" && (await webgpuAvailable())) {
      try {
        const session = await ort.InferenceSession.create(bytes, {
          executionProviders: ["webgpu", "wasm"],
          graphOptimizationLevel: "all",
        });
        return { session, backend: "webgpu", threads, note };
      } catch (error) {
        note = `WebGPU failed to start (${error.message || error}); using WebAssembly`;
      }
    } else {
      note = prefer === "wasm" ? "WebAssembly chosen" : "no WebGPU in this browser";
    }
    const session = await ort.InferenceSession.create(bytes, {
      executionProviders: ["wasm"],
      graphOptimizationLevel: "all",
    });
    return { session, backend: "wasm", threads, note };
  }

  /** RGBA pixels (ImageData.data) as the model's float32 NCHW input in [0, 1]. */
  function toInput(rgba, height, width) {
    const plane = height * width;
    const data = new Float32Array(3 * plane);
    for (let i = 0, p = 0; p < plane; i += 4, p++) {
      data[p] = rgba[i] / 255;
      data[plane + p] = rgba[i + 1] / 255;
      data[2 * plane + p] = rgba[i + 2] / 255;
    }
    return new global.ort.Tensor("float32", data, [1, 3, height, width]);
  }

  /** Run the model on a frame and its plate (RGBA pixels); returns {pha, fgr} Float32Arrays. */
  async function matte(session, frameRgba, plateInput, height, width) {
    const outputs = await session.run(
      { src: toInput(frameRgba, height, width), bgr: plateInput },
      ["pha", "fgr"]
    );
    return { pha: outputs.pha.data, fgr: outputs.fgr.data };
  }

  /**
   * The composite fgr·α + background·(1 − α) into `out` (RGBA, like ImageData.data).
   * `background`: RGBA pixels of the same size, or an [r, g, b] colour, or null for a
   * transparent background (alpha in the fourth channel).
   */
  function composite(out, pha, fgr, background, height, width) {
    const plane = height * width;
    const colour = Array.isArray(background) ? background : null;
    for (let p = 0, i = 0; p < plane; p++, i += 4) {
      const a = pha[p];
      for (let c = 0; c < 3; c++) {
        const front = fgr[c * plane + p] * 255;
        if (background === null) out[i + c] = front;
        else out[i + c] = front * a + (colour ? colour[c] : background[i + c]) * (1 - a);
      }
      out[i + 3] = background === null ? a * 255 : 255;
    }
    return out;
  }

  global.MattingkitWeb = {
    CACHE_NAME, cachedBytes, createSession, composite, loadModel, matte, sha256, startRuntime,
    toInput, webgpuAvailable,
  };
})(typeof window !== "undefined" ? window : globalThis);
