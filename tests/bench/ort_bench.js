// ONNX Runtime side of tests/bench/compare_ort.sh: one JSON line per model and thread count,
// measured like cnnviz-dump --bench (median/p10/p90 of N batch-1 runs after warm-up,
// batch-32 throughput, session-create time, peak RSS).
const ort = require('onnxruntime-node');
const fs = require('fs');
function q(v, p) { const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.max(0, Math.round(p * (s.length - 1))))]; }
async function main() {
  const [model, threads, runs] = [process.argv[2], +process.argv[3], +(process.argv[4] || 100)];
  const opts = { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' };
  const bytes = fs.readFileSync(model);
  const loads = [];
  let sess;
  for (let i = 0; i < 5; i++) { const t0 = process.hrtime.bigint(); sess = await ort.InferenceSession.create(bytes, opts); loads.push(Number(process.hrtime.bigint() - t0) / 1e6); }
  const name = sess.inputNames[0];
  const meta = sess.inputMetadata ? sess.inputMetadata[0] : null;
  const dims = (meta && meta.shape) ? meta.shape.slice(1).map(Number) : JSON.parse(process.argv[5]);
  const per = dims.reduce((a, b) => a * b, 1);
  const make = (b) => { const x = new Float32Array(per * b); let s = 12345; for (let i = 0; i < x.length; i++) { s = (s * 1664525 + 1013904223) >>> 0; x[i] = (s >>> 8) / 16777216; } return new ort.Tensor('float32', x, [b, ...dims]); };
  const x1 = make(1);
  for (let i = 0; i < 10; i++) await sess.run({ [name]: x1 });
  const lat = [];
  for (let i = 0; i < runs; i++) { const t0 = process.hrtime.bigint(); await sess.run({ [name]: x1 }); lat.push(Number(process.hrtime.bigint() - t0) / 1e6); }
  const rssB1 = process.resourceUsage().maxRSS / 1024;
  const x32 = make(32);
  await sess.run({ [name]: x32 });
  const tp = [];
  for (let i = 0; i < Math.max(3, runs / 10); i++) { const t0 = process.hrtime.bigint(); await sess.run({ [name]: x32 }); tp.push(Number(process.hrtime.bigint() - t0) / 1e9); }
  console.log(JSON.stringify({ engine: 'ort', model, threads, load_ms: q(loads, 0.5), latency_ms: { median: q(lat, 0.5), p10: q(lat, 0.1), p90: q(lat, 0.9) }, images_per_s: 32 / q(tp, 0.5), peak_rss_b1_mb: rssB1, peak_rss_mb: process.resourceUsage().maxRSS / 1024 }));
}
main().catch(e => { console.error(e); process.exit(1); });
