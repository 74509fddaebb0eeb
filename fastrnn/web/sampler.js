// The model's forward pass and sampler in the page, computed as fastrnn's own sampler computes
// them (kernels/sampler.py): every sum in the same order, in float64, so probabilities agree to
// a few parts in 1e15 (the kernels fuse multiply-adds and have their own exp and tanh) and the
// same uniform numbers pick the same characters unless one falls that close to a boundary.
// `model` is the JSON document that `fastrnn export` writes.
"use strict";

function fastrnnSampler(model) {
  const chars = Array.from(model.vocab);  // code points, not UTF-16 units
  const index = new Map(chars.map((ch, i) => [ch, i]));
  const m = model.hyper.hidden, K = chars.length;
  const W = model.W, U = model.U, V = model.V, b = model.b, c = model.c;

  // h <- tanh(W h + (b + U[:, x])), W h summed in order of j from 0
  function step(h, x) {
    const next = new Float64Array(m);
    for (let i = 0; i < m; i++) {
      let acc = 0.0;
      const row = W[i];
      for (let j = 0; j < m; j++) acc += row[j] * h[j];
      next[i] = Math.tanh(acc + (b[i] + U[i][x]));
    }
    return next;
  }

  // unnormalised probabilities exp((o - max o) / T) of o = c + V h, and their sum in order
  function weights(h, temperature) {
    const o = new Float64Array(K);
    let top = -Infinity;
    for (let k = 0; k < K; k++) {
      let acc = c[k];
      const row = V[k];
      for (let j = 0; j < m; j++) acc += row[j] * h[j];
      o[k] = acc;
      if (acc > top) top = acc;
    }
    const p = new Float64Array(K);
    const inverse = 1.0 / temperature;  // as the Python sampler scales
    let total = 0.0;
    for (let k = 0; k < K; k++) {
      p[k] = Math.exp((o[k] - top) * inverse);
      total += p[k];
    }
    return [p, total];
  }

  // the first character whose cumulative weight exceeds u times the total
  function pick(p, total, u) {
    const target = u * total;
    let acc = 0.0;
    for (let k = 0; k < K; k++) {
      acc += p[k];
      if (acc > target) return k;
    }
    return K - 1;
  }

  function indices(text) {
    const out = [];
    for (const ch of Array.from(text)) {
      if (!index.has(ch)) throw new Error(`${JSON.stringify(ch)} is not in the model's vocabulary`);
      out.push(index.get(ch));
    }
    return out;
  }

  // the state text starts from: the carried hidden state fed its next character (or h = 0)
  function start(fromZero) {
    let h = new Float64Array(fromZero ? m : model.h.length);
    if (!fromZero) {
      h.set(model.h);
      if (model.next_char !== null && model.next_char !== undefined) h = step(h, model.next_char);
    }
    return h;
  }

  // prime followed by `length` characters picked with the given uniform numbers
  function sample(prime, length, temperature, uniforms, fromZero = false) {
    let h = start(fromZero);
    for (const x of indices(prime)) h = step(h, x);
    let text = prime;
    for (let t = 0; t < length; t++) {
      const [p, total] = weights(h, temperature);
      const x = pick(p, total, uniforms[t]);
      text += chars[x];
      if (t < length - 1) h = step(h, x);
    }
    return text;
  }

  // softmax(c + V h) after the start state was fed `prefix`
  function probabilities(prefix, fromZero = false) {
    let h = start(fromZero);
    for (const x of indices(prefix)) h = step(h, x);
    const [p, total] = weights(h, 1.0);
    return Array.from(p, (v) => v / total);
  }

  return { chars, sample, probabilities };
}

// uniform numbers in [0, 1) from a 32-bit seed (mulberry32)
function fastrnnUniforms(seed, count) {
  let a = seed >>> 0;
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  return out;
}

// wire the sampler to the page's controls; the first sample is written on load
function fastrnnPage() {
  const model = JSON.parse(document.getElementById("fastrnn-model").textContent);
  const sampler = fastrnnSampler(model);
  const field = (id) => document.getElementById(id);
  function generate() {
    const length = Math.max(0, Math.min(100000, parseInt(field("length").value, 10) || 0));
    const temperature = parseFloat(field("temperature").value);
    const seed = parseInt(field("seed").value, 10) || 0;
    try {
      if (!(temperature > 0)) throw new Error("the temperature must be positive");
      field("sample").textContent = sampler.sample(field("prime").value, length, temperature,
                                                   fastrnnUniforms(seed, length));
      field("sample").classList.remove("error");
    } catch (err) {
      field("sample").textContent = err.message;
      field("sample").classList.add("error");
    }
  }
  field("generate").addEventListener("click", generate);
  window.fastrnn = { model, sampler, generate, uniforms: fastrnnUniforms };
  generate();
}

document.addEventListener("DOMContentLoaded", fastrnnPage);
