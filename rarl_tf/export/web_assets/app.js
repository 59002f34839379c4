// The RARL demo page: decodes an image, resizes it as `predict` does, runs the exported model
// with LiteRT.js (WebGPU or WebAssembly) and draws each step's attended regions.
// Written by `python -m rarl_tf.export.web`; config.json beside it says the image size, class
// names, colours, top-k and threshold. `window.rarl` is what the tests (and a curious user) call.

const $ = (id) => document.getElementById(id);
const f = Math.fround;  // float32 rounding: the resize below computes as TensorFlow's C++ does
const FORMATS = 'JPEG, PNG, BMP or still WebP';

// An error the page shows as it is (its message is written for the user).
class UserError extends Error {}

const state = { config: null, litert: null, model: null, backend: '', note: '', gpuErrors: [] };

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

// The container formats TensorFlow's decoder (and so `predict`) reads, by their first bytes.
function sniffFormat(head) {
  const starts = (bytes, at = 0) => bytes.every((b, i) => head[at + i] === b);
  if (starts([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'PNG';
  if (starts([0xff, 0xd8, 0xff])) return 'JPEG';
  if (starts([0x42, 0x4d])) return 'BMP';
  if (starts([0x52, 0x49, 0x46, 0x46]) && starts([0x57, 0x45, 0x42, 0x50], 8)) return 'WebP';
  return null;
}

// RGB bytes [H, W, 3] of an image file, decoded by the browser. No colour management and no
// premultiplied alpha, as TensorFlow's decoders (which ignore ICC profiles and drop alpha).
async function decode(blob, name) {
  const format = sniffFormat(new Uint8Array(await blob.slice(0, 12).arrayBuffer()));
  if (!format) throw new UserError(`${name} is not an image this page reads (expected ${FORMATS}).`);
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (err) {
    throw new UserError(`${name} could not be decoded: it starts as a ${format} file but is damaged or incomplete.`);
  }
  const { width, height } = bitmap;
  if (width * height > state.config.max_pixels) {
    throw new UserError(`${name} is refused: ${width} x ${height} pixels is more than ${state.config.max_pixels}.`);
  }
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, width, height).data;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2];
  }
  return { bitmap, width, height, rgb };
}

// TensorFlow's `scale_and_translate` spans (kernels/image/scale_and_translate_op.cc) for the
// triangle kernel with antialiasing, which `tf.image.resize(..., antialias=True)` runs: which
// input pixels feed each output pixel, and their weights, computed in float32 as there.
function spans(outSize, inSize) {
  const scale = f(outSize / inSize);
  const invScale = f(1 / scale);
  const kernelScale = Math.max(invScale, 1);
  const spanSize = Math.min(2 * Math.ceil(kernelScale) + 1, inSize);
  const oneOverKernelScale = f(1 / kernelScale);
  const starts = new Int32Array(outSize);
  const weights = new Float32Array(spanSize * outSize);
  for (let x = 0; x < outSize; ++x) {
    const sample = f(f(x + 0.5) * invScale);
    if (sample < 0 || sample > inSize) continue;
    const start = Math.min(Math.max(Math.ceil(f(f(sample - kernelScale) - 0.5)), 0), inSize - 1);
    const end = Math.min(Math.max(Math.floor(f(f(sample + kernelScale) - 0.5)), 0), inSize - 1) + 1;
    const raw = [];
    let total = 0;
    for (let source = start; source < end; ++source) {
      const distance = Math.abs(f(f(f(source + 0.5) - sample) * oneOverKernelScale));
      const weight = distance < 1 ? f(1 - distance) : 0;
      total = f(total + weight);
      raw.push(weight);
    }
    if (Math.abs(total) >= 1000 * 1.1754943508222875e-38) {
      const inverse = f(1 / total);
      raw.forEach((w, i) => { weights[spanSize * x + i] = f(w * inverse); });
    }
    starts[x] = start;
  }
  return { starts, weights, spanSize };
}

// [1, N, N, 3] float32 in 0..255, RGB: `tf.image.resize(image, (N, N), antialias=True)` on the
// uint8 image, rows first then columns, summing in the order TensorFlow's CPU kernel does.
function resize(rgb, width, height, size) {
  const rows = spans(size, height);
  const cols = spans(size, width);
  const middle = new Float32Array(size * width * 3);  // [N, W, 3]
  for (let y = 0; y < size; ++y) {
    const out = y * width * 3;
    const used = Math.min(rows.starts[y] + rows.spanSize, height) - rows.starts[y];
    for (let k = 0; k < used; ++k) {
      const weight = rows.weights[y * rows.spanSize + k];
      const from = (rows.starts[y] + k) * width * 3;
      for (let i = 0; i < width * 3; ++i) middle[out + i] = f(middle[out + i] + f(rgb[from + i] * weight));
    }
  }
  const pixels = new Float32Array(size * size * 3);
  for (let y = 0; y < size; ++y) {
    for (let x = 0; x < size; ++x) {
      const out = (y * size + x) * 3;
      const used = Math.min(cols.starts[x] + cols.spanSize, width) - cols.starts[x];
      for (let k = 0; k < used; ++k) {
        const weight = cols.weights[x * cols.spanSize + k];
        const from = (y * width + cols.starts[x] + k) * 3;
        for (let c = 0; c < 3; ++c) pixels[out + c] = f(pixels[out + c] + f(weight * middle[from + c]));
      }
    }
  }
  return pixels;
}

// Why WebGPU cannot be used here, or '' when an adapter is there.
async function webgpuMissing() {
  if (!navigator.gpu) return 'this browser has no WebGPU';
  let adapter = null;
  try { adapter = await navigator.gpu.requestAdapter(); } catch (err) { /* reported below */ }
  if (!adapter) return 'the browser offers no WebGPU adapter';
  const info = adapter.info || {};
  state.adapter = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ');
  if (info.isFallbackAdapter || adapter.isFallbackAdapter) state.adapter += ' (software fallback adapter)';
  return '';
}

// Compiles the model for WebGPU where it can run whole there and computes as on WebAssembly,
// else for WebAssembly. LiteRT.js quietly recompiles a model that is not fully accelerated for
// WebAssembly, so that is checked; "fully accelerated" says where ops run, not whether they
// compute right, so a probe image runs on both (as `predict --accelerator=auto` checks the GPU).
async function compile(requested) {
  const url = new URL('model.tflite', location.href).href;
  const wasm = await state.litert.loadAndCompile(url, { accelerator: 'wasm' });
  let why = '';
  if (requested !== 'wasm') {
    why = state.config.quantization === 'int8'
      ? 'int8 exports run on the CPU only (as in predict: LiteRT\'s GPU path fails on them)'
      : await webgpuMissing();
    if (!why) {
      const model = await state.litert.loadAndCompile(url, { accelerator: 'webgpu' });
      why = await webgpuProblem(model, wasm);
      if (!why) {
        wasm.delete();
        return { model, backend: 'webgpu', note: '' };
      }
      model.delete();
    }
    if (requested === 'webgpu') throw new UserError(`?backend=webgpu cannot be used: ${why}.`);
  }
  return { model: wasm, backend: 'wasm', note: why && requested === 'auto' ? `WebGPU not used: ${why}` : '' };
}

// Why the WebGPU-compiled `model` may not be used ('' if it may): not all on WebGPU, a run that
// fails, or outputs on a probe image (fixed pseudo-random pixels) off WebAssembly's by > 1e-3.
async function webgpuProblem(model, wasm) {
  if (model.options.accelerator !== 'webgpu' || !model.isFullyAccelerated) {
    return 'the model is not fully accelerated on WebGPU here';
  }
  watchGpuErrors();
  const size = state.config.image_size;
  const probe = new Float32Array(size * size * 3);
  for (let i = 0, seed = 12345; i < probe.length; ++i) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    probe[i] = seed % 256;
  }
  try {
    const gpu = await infer(probe, model);
    const cpu = await infer(probe, wasm);
    const gap = Math.max(...['scores', 'boxes', 'centres'].flatMap((name) =>
      gpu[name].map((v, i) => Math.abs(v - cpu[name][i]))));
    return gap > 1e-3 ? `its outputs differ from WebAssembly's by ${gap.toPrecision(2)} on a probe image` : '';
  } catch (err) {
    return `a probe run failed (${err.message || err})`;
  }
}

// WebGPU reports errors only as events on its device: keep them, so a run that met one fails.
function watchGpuErrors() {
  const device = state.litert.getWebGpuDevice && state.litert.getWebGpuDevice();
  if (device) device.addEventListener('uncapturederror', (e) => state.gpuErrors.push(String(e.error.message)));
}

// The model's outputs for pixels [1, N, N, 3]: scores [C], boxes [T * k * 4], centres [T * 2].
async function infer(pixels, model = state.model) {
  const size = state.config.image_size;
  const started = performance.now();
  const input = new state.litert.Tensor(pixels, [1, size, size, 3]);
  const outputs = await model.run({ pixels: input });
  const result = {};
  for (const name of ['scores', 'boxes', 'centres']) {
    result[name] = Array.from(await outputs[name].data());
  }
  for (const tensor of Object.values(outputs)) tensor.delete();
  input.delete();
  result.ms = performance.now() - started;
  if (state.gpuErrors.length) throw new UserError(`WebGPU failed: ${state.gpuErrors.join('; ')}`);
  return result;
}

// Python's round(): halves to even, as `visualize.picture_size` rounds.
function roundHalfEven(value) {
  const floor = Math.floor(value);
  const rest = value - floor;
  if (rest !== 0.5) return Math.round(value);
  return floor % 2 === 0 ? floor : floor + 1;
}

// `visualize.picture_size`: short side up to min_side, long side at most max_side.
function pictureSize(width, height) {
  const { min_side: minSide, max_side: maxSide } = state.config;
  const scale = Math.min(Math.max(1, minSide / Math.min(width, height)), maxSide / Math.max(width, height));
  return [Math.max(1, roundHalfEven(width * scale)), Math.max(1, roundHalfEven(height * scale))];
}

// `visualize.draw_attention`: the image scaled by nearest neighbour, then per step its boxes
// (2 px outlines inside the box, as PIL draws them) and its centre, in the step's colour.
function draw(image, result) {
  const canvas = $('picture');
  [canvas.width, canvas.height] = pictureSize(image.width, image.height);
  const context = canvas.getContext('2d');
  context.imageSmoothingEnabled = false;
  context.drawImage(image.bitmap, 0, 0, canvas.width, canvas.height);
  const { colours, num_steps: steps } = state.config;
  const anchors = result.boxes.length / (4 * steps);
  context.font = '11px sans-serif';
  context.textBaseline = 'top';
  for (let t = 0; t < steps; ++t) {
    context.fillStyle = `rgb(${colours[t % colours.length].join(',')})`;
    for (let a = 0; a < anchors; ++a) {
      const [y1, x1, y2, x2] = result.boxes.slice((t * anchors + a) * 4, (t * anchors + a + 1) * 4);
      const [left, right] = [x1, x2].map((v) => Math.floor(v * canvas.width)).sort((p, q) => p - q);
      const [top, bottom] = [y1, y2].map((v) => Math.floor(v * canvas.height)).sort((p, q) => p - q);
      context.fillRect(left, top, right - left + 1, 2);
      context.fillRect(left, bottom - 1, right - left + 1, 2);
      context.fillRect(left, top, 2, bottom - top + 1);
      context.fillRect(right - 1, top, 2, bottom - top + 1);
    }
    const cy = result.centres[2 * t] * canvas.height;
    const cx = result.centres[2 * t + 1] * canvas.width;
    context.beginPath();
    context.arc(cx, cy, 5, 0, 2 * Math.PI);
    context.fill();
    context.fillText(String(t + 1), cx + 7, cy - 7);
  }
}

// The labels `predict` prints: the top_k scores at or over the threshold (ties: lower index).
function chosenLabels(scores) {
  const order = scores.map((s, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  return order.slice(0, state.config.top_k).filter((i) => scores[i] >= state.config.threshold);
}

function showResult(name, image, result, decodeMs) {
  draw(image, result);
  const chosen = new Set(chosenLabels(result.scores));
  const order = result.scores.map((s, i) => i).sort((a, b) => result.scores[b] - result.scores[a] || a - b);
  const body = $('labels').tBodies[0];
  body.replaceChildren(...order.map((i) => {
    const row = document.createElement('tr');
    row.className = chosen.has(i) ? 'chosen' : '';
    row.innerHTML = '<td></td><td></td>';
    row.cells[0].textContent = state.config.class_names[i] + (chosen.has(i) ? ' \u2713' : '');
    row.cells[1].textContent = result.scores[i].toFixed(4);
    return row;
  }));
  $('image-name').textContent = `${name}: ${image.width} x ${image.height} px, resized to ${state.config.image_size} x ${state.config.image_size}`;
  $('legend').innerHTML = state.config.colours.slice(0, state.config.num_steps).map((c, t) =>
    `<span class="swatch" style="background: rgb(${c.join(',')})"></span> step ${t + 1}`).join(' &nbsp; ');
  $('timing').textContent = `${backendText()}: ${result.ms.toFixed(1)} ms to run the model, ${decodeMs.toFixed(1)} ms to decode and resize`;
  $('result').hidden = false;
}

function backendText() {
  if (state.backend === 'webgpu') return `WebGPU${state.adapter ? ` on ${state.adapter}` : ''}`;
  return `WebAssembly (CPU)${state.note ? `; ${state.note}` : ''}`;
}

// The whole path of a file the user picks: decode, resize, run, draw. Returns what it showed.
async function classify(blob, name) {
  showError('');
  try {
    const started = performance.now();
    const image = await decode(blob, name);
    const pixels = resize(image.rgb, image.width, image.height, state.config.image_size);
    const decodeMs = performance.now() - started;
    const result = await infer(pixels);
    showResult(name, image, result, decodeMs);
    window.rarl.last = { name, width: image.width, height: image.height, ...result, labels: chosenLabels(result.scores) };
    return window.rarl.last;
  } catch (err) {
    showError(err instanceof UserError ? err.message : `Could not run the model on ${name}: ${err}`);
    return { name, error: $('error').textContent };
  }
}

function setUpInputs() {
  $('file').addEventListener('change', () => {
    const file = $('file').files[0];
    if (file) classify(file, file.name);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const file = e.dataTransfer.files[0];
    if (file) classify(file, file.name);
  });
  for (const sample of state.config.samples) {
    const button = document.createElement('button');
    button.title = `a test image (true labels: ${sample.labels.join(', ') || 'none'})`;
    button.innerHTML = `<img alt="${button.title}" src="${sample.file}">`;
    button.addEventListener('click', async () => {
      const blob = await (await fetch(sample.file)).blob();
      await classify(blob, sample.file);
    });
    $('samples').append(button);
  }
}

const base64ToBytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

// For the tests: the model on given pixels, and the page's own path on given file bytes.
window.rarl = {
  ready: null,
  state,
  last: null,
  result: () => window.rarl.last,
  runPixels: async (base64) => infer(new Float32Array(base64ToBytes(base64).buffer)),
  classifyBytes: (base64, name) => classify(new Blob([base64ToBytes(base64)]), name),
  modelInput: async (base64) => {
    const image = await decode(new Blob([base64ToBytes(base64)]), 'input');
    return Array.from(resize(image.rgb, image.width, image.height, state.config.image_size));
  },
};

async function start() {
  if (typeof WebAssembly !== 'object' || typeof WebAssembly.instantiate !== 'function') {
    throw new UserError('This browser cannot run the model: it has no WebAssembly (turned off, or too old). Use a current Chrome, Edge, Firefox or Safari with WebAssembly enabled.');
  }
  state.config = await (await fetch('config.json')).json();
  const requested = new URLSearchParams(location.search).get('backend') || 'auto';
  if (!['auto', 'webgpu', 'wasm'].includes(requested)) {
    throw new UserError(`?backend=${requested} is not allowed: expected auto, webgpu or wasm.`);
  }
  // Imported only now: LiteRT.js needs WebAssembly, checked above.
  state.litert = await import('@litertjs/core');
  await state.litert.loadLiteRt(new URL('litert/core/wasm/', location.href).href);
  Object.assign(state, await compile(requested));
  setUpInputs();
  $('status').textContent = `Model ready (${state.config.weights} weights, ${state.config.image_size} px input) on ${backendText()}. Pick an image or a test canvas below.`;
  return { backend: state.backend, note: state.note, adapter: state.adapter || '' };
}

window.rarl.ready = start().catch((err) => {
  $('status').textContent = 'The model could not be loaded.';
  showError(err instanceof UserError ? err.message : `The model could not be loaded: ${err}`);
  return { error: $('error').textContent };
});
