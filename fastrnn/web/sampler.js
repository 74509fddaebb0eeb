// The model's forward pass and sampler in the page, computed as fastrnn's own sampler computes
// them: every sum in the same order, in float64, so probabilities agree to a few parts in 1e15
// (the kernels fuse multiply-adds and have their own exp and tanh) and the same uniform numbers
// pick the same characters unless one falls that close to a boundary. `model` is the JSON
// document that `fastrnn export` writes (export.py); the arrays are read from its `params`,
// under PyTorch's names (a document of format 1: from its classic W, U, V, b, c).
//
// The order of every operation, so that other code can match it (x: the input character's
// index, h and c: a layer's carried state, sums over j run from j = 0 up, starting from 0.0
// unless a start is named, sigmoid(a) = 1 / (1 + exp(-a))):
//   classic (rnn, 1 layer):  h'[i] = tanh(sum_j W[i][j] h[j] + (b[i] + U[i][x])),
//                            W = weight_hh_l0, U = weight_ih_l0, b = bias_ih_l0 + bias_hh_l0
//   stacks, layer k:         gi[r] = weight_ih_l0[r][x] + bias_ih_l0[r] for k = 0 (the one-hot
//                            input; with an embedding E, weight_ih_l0[r][x] is first folded to
//                            sum_j weight_ih_l0[r][j] E[x][j]), else sum_j weight_ih_lk[r][j] in[j] starting from
//                            bias_ih_lk[r], in = layer k-1's new h
//                            gh[r] = (sum_j weight_hh_lk[r][j] h[j]) + bias_hh_lk[r]
//                            rows r of gate block q are r = q m + i
//     rnn                    h'[i] = tanh(gi[i] + gh[i])
//     gru  (blocks r, z, n)  r = sigmoid(gi[i] + gh[i]), z = sigmoid(gi[m+i] + gh[m+i]),
//                            n = tanh(gi[2m+i] + r * gh[2m+i]), h'[i] = (1 - z) * n + z * h[i]
//     lstm (blocks i, f, g, o) i = sigmoid(gi[i] + gh[i]), f = sigmoid(gi[m+i] + gh[m+i]),
//                            g = tanh(gi[2m+i] + gh[2m+i]), o = sigmoid(gi[3m+i] + gh[3m+i]),
//                            c'[i] = f * c[i] + i * g, h'[i] = o * tanh(c'[i])
//   output (every cell):     o[k] = head.bias[k] + sum_j head.weight[k][j] h[j], starting from
//                            head.bias[k], h the last layer's; p = exp((o - max o) / T) / total,
//                            (o - max o) times the precomputed 1 / T, total summed in order of k
// (a * b + c * d is (a * b) + (c * d): JavaScript fuses nothing).
"use strict";

const sigmoid = (a) => 1.0 / (1.0 + Math.exp(-a));

// Each cell's step, by the cell's name (fastrnn's cells.py declares the cells, and cell_parts.py
// checks that each has its entry here, with the same gate multiple and carried vectors): its
// gate multiple G, the vectors it carries per layer (h first: what the layer above and the
// output read; the JSON document holds each under its name), and step(gi, gh, carried, m), the
// layer's new carried vectors from its gate inputs gi = W_ih in + b_ih and gh = W_hh h + b_hh
// (G m rows each) and its carried vectors at the step before. One entry a line, as fastrnn
// reads them (webpage.sampler_steps).
const STEPS = {
  rnn: { gates: 1, carried: ["h"], step: rnnStep },
  gru: { gates: 3, carried: ["h"], step: gruStep },
  lstm: { gates: 4, carried: ["h", "c"], step: lstmStep },
};

function rnnStep(gi, gh, [h], m) {
  const out = new Float64Array(m);
  for (let i = 0; i < m; i++) out[i] = Math.tanh(gi[i] + gh[i]);
  return [out];
}

function gruStep(gi, gh, [h], m) {
  const out = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const r = sigmoid(gi[i] + gh[i]), z = sigmoid(gi[m + i] + gh[m + i]);
    const n = Math.tanh(gi[2 * m + i] + r * gh[2 * m + i]);
    out[i] = (1.0 - z) * n + z * h[i];
  }
  return [out];
}

function lstmStep(gi, gh, [h, c], m) {
  const out = new Float64Array(m), cNext = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const ig = sigmoid(gi[i] + gh[i]), f = sigmoid(gi[m + i] + gh[m + i]);
    const g = Math.tanh(gi[2 * m + i] + gh[2 * m + i]), o = sigmoid(gi[3 * m + i] + gh[3 * m + i]);
    cNext[i] = f * c[i] + ig * g;
    out[i] = o * Math.tanh(cNext[i]);
  }
  return [out, cNext];
}

function fastrnnSampler(model) {
  const chars = Array.from(model.vocab);  // code points, not UTF-16 units
  const index = new Map(chars.map((ch, i) => [ch, i]));
  const K = chars.length;
  const m = model.hyper.hidden;
  const cell = model.cell || "rnn", layers = model.layers || 1;
  if (!Object.prototype.hasOwnProperty.call(STEPS, cell)) {
    const known = Object.keys(STEPS).join(", ");
    throw new Error(`this page has no step for the cell ${JSON.stringify(cell)} (it has ${known})`);
  }
  const { gates: G, carried, step: cellStep } = STEPS[cell];
  const P = model.params || {  // format 1: the classic arrays alone
    weight_ih_l0: model.U, weight_hh_l0: model.W, bias_ih_l0: model.b, bias_hh_l0: model.b.map(() => 0.0),
    "head.weight": model.V, "head.bias": model.c,
  };
  // the assignment's model (fastrnn's Layout.classic): one layer of the rnn cell on one-hot inputs
  const classic = cell === "rnn" && layers === 1 && !P["embedding.weight"];
  if (P.weight_hh_l0.length !== G * m) {
    throw new Error(`weight_hh_l0 has ${P.weight_hh_l0.length} rows, not the ${G * m} of a ${cell} of ${m} units`);
  }
  const V = P["head.weight"], c = P["head.bias"];

  // a state is, for each carried vector's name, a Float64Array(m) per layer
  function zeros() {
    return Object.fromEntries(carried.map((name) => [name, Array.from({ length: layers }, () => new Float64Array(m))]));
  }

  // the classic cell: h <- tanh(W h + (b + U[:, x])), W h summed in order of j from 0
  const W = P.weight_hh_l0, U = P.weight_ih_l0;
  const b = Float64Array.from(P.bias_ih_l0, (v, i) => v + P.bias_hh_l0[i]);  // bias_hh_l0 is 0
  function classicStep(state, x) {
    const h = state.h[0], next = new Float64Array(m);
    for (let i = 0; i < m; i++) {
      let acc = 0.0;
      const row = W[i];
      for (let j = 0; j < m; j++) acc += row[j] * h[j];
      next[i] = Math.tanh(acc + (b[i] + U[i][x]));
    }
    return { h: [next] };
  }

  // an input embedding E (K, D) folds into layer 0's one-hot input weights as the kernels fold
  // it: column x is sum_j weight_ih_l0[r][j] E[x][j], summed in order of j from 0
  const E = P["embedding.weight"];
  const Wih0 = !E ? P.weight_ih_l0 : P.weight_ih_l0.map((row) => E.map((e) => {
    let acc = 0.0;
    for (let j = 0; j < e.length; j++) acc += row[j] * e[j];
    return acc;
  }));

  // one layer's gate inputs gi = W_ih in + b_ih and gh = W_hh h + b_hh (G m rows each); the
  // input is a character index for layer 0 (W_ih times its one-hot vector: a column)
  function gateInputs(k, input, h) {
    const Wih = k === 0 ? Wih0 : P[`weight_ih_l${k}`], Whh = P[`weight_hh_l${k}`];
    const bih = P[`bias_ih_l${k}`], bhh = P[`bias_hh_l${k}`];
    const gi = new Float64Array(G * m), gh = new Float64Array(G * m);
    for (let r = 0; r < G * m; r++) {
      let acc;
      if (k === 0) {
        acc = Wih[r][input] + bih[r];
      } else {
        acc = bih[r];  // the kernels start the input product of layers above 0 from the bias
        const row = Wih[r];
        for (let j = 0; j < m; j++) acc += row[j] * input[j];
      }
      gi[r] = acc;
      acc = 0.0;
      const row = Whh[r];
      for (let j = 0; j < m; j++) acc += row[j] * h[j];
      gh[r] = acc + bhh[r];
    }
    return [gi, gh];
  }

  // a stack: every layer in turn, layer k fed layer k-1's new h
  function stackStep(state, x) {
    const next = Object.fromEntries(carried.map((name) => [name, []]));
    let input = x;
    for (let k = 0; k < layers; k++) {
      const [gi, gh] = gateInputs(k, input, state.h[k]);
      const out = cellStep(gi, gh, carried.map((name) => state[name][k]), m);
      carried.forEach((name, j) => next[name].push(out[j]));
      input = out[0];
    }
    return next;
  }

  const step = classic ? classicStep : stackStep;

  // unnormalised probabilities exp((o - max o) / T) of o = c + V h, and their sum in order
  function weights(state, temperature) {
    const h = state.h[layers - 1];
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

  // the state text starts from: the carried state (each carried vector under its name: (m,)
  // for the classic cell, (layers, m) for a stack; absent: zeros) fed its next character, or zeros
  function start(fromZero) {
    let state = zeros();
    if (!fromZero) {
      for (const name of carried) {
        const saved = model[name];
        if (saved === undefined || saved === null) continue;
        (classic ? [saved] : saved).forEach((row, k) => state[name][k].set(row));
      }
      if (model.next_char !== null && model.next_char !== undefined) state = step(state, model.next_char);
    }
    return state;
  }

  // prime followed by `length` characters picked with the given uniform numbers
  function sample(prime, length, temperature, uniforms, fromZero = false) {
    let state = start(fromZero);
    for (const x of indices(prime)) state = step(state, x);
    let text = prime;
    for (let t = 0; t < length; t++) {
      const [p, total] = weights(state, temperature);
      const x = pick(p, total, uniforms[t]);
      text += chars[x];
      if (t < length - 1) state = step(state, x);
    }
    return text;
  }

  // a documents model's documents (a list's lines, tweets): each from the zero state fed the end
  // marker, then the prime, then characters up to the next marker (not written), at most
  // `maxLength`; document i picks its characters with uniforms[i * maxLength ...]
  const marker = index.get("\u0003");
  function documents(prime, count, maxLength, temperature, uniforms) {
    if (marker === undefined) throw new Error("this model has no end marker: it was not trained on documents");
    const out = [];
    for (let i = 0; i < count; i++) {
      let state = step(zeros(), marker);
      for (const x of indices(prime)) state = step(state, x);
      let text = prime;
      for (let t = 0; t < maxLength; t++) {
        const [p, total] = weights(state, temperature);
        const x = pick(p, total, uniforms[i * maxLength + t]);
        if (x === marker) break;
        text += chars[x];
        state = step(state, x);
      }
      out.push(text);
    }
    return out;
  }

  // softmax(c + V h) after the start state was fed `prefix`
  function probabilities(prefix, fromZero = false) {
    let state = start(fromZero);
    for (const x of indices(prefix)) state = step(state, x);
    const [p, total] = weights(state, 1.0);
    return Array.from(p, (v) => v / total);
  }

  return { chars, sample, documents, probabilities };
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
const DOCUMENTS = 20;  // documents a documents model writes at a time

function fastrnnPage() {
  const model = JSON.parse(document.getElementById("fastrnn-model").textContent);
  const field = (id) => document.getElementById(id);
  let sampler;
  try {
    sampler = fastrnnSampler(model);
  } catch (err) {  // a model this page cannot run: the reason, in place of the text
    field("sample").textContent = err.message;
    field("sample").classList.add("error");
    window.fastrnn = { model, sampler: null, error: err.message, uniforms: fastrnnUniforms };
    return;
  }
  function generate() {
    const length = Math.max(0, Math.min(100000, parseInt(field("length").value, 10) || 0));
    const temperature = parseFloat(field("temperature").value);
    const seed = parseInt(field("seed").value, 10) || 0;
    try {
      if (!(temperature > 0)) throw new Error("the temperature must be positive");
      if (model.hyper && model.hyper.documents) {  // DOCUMENTS of at most `length` characters, one a line
        field("sample").textContent = sampler.documents(field("prime").value, DOCUMENTS, length, temperature,
                                                        fastrnnUniforms(seed, DOCUMENTS * length)).join("\n");
      } else {
        field("sample").textContent = sampler.sample(field("prime").value, length, temperature,
                                                     fastrnnUniforms(seed, length));
      }
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
