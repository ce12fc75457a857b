// Summary of tests/bench/compare_ort.sh with ROUNDS > 1: per model and
// thread count, the median over rounds of cnnviz/ORT for batch-1 median
// latency (< 1: cnnviz faster) and for batch-32 images/s (> 1: cnnviz
// faster), pairing each cnnviz line with the ORT line run just before it.
const fs = require('fs');
const lines = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l.startsWith('{'));
const med = (v) => { const s = [...v].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const stem = (p) => p.split('/').pop().replace(/\.[^.]*$/, '');
const acc = {};
let ort = null;
for (const l of lines) {
  const d = JSON.parse(l);
  if (d.engine === 'ort') { ort = d; continue; }
  if (!ort || stem(ort.model) !== stem(d.model) || ort.threads !== d.threads) continue;
  const k = `${stem(d.model)} threads=${d.threads}`;
  const a = (acc[k] = acc[k] || { b1: [], b32: [], abs: {} });
  a.b1.push(d.latency_ms.median / ort.latency_ms.median);
  a.b32.push(d.images_per_s / ort.images_per_s);
  const vals = { cnnviz_b1_ms: d.latency_ms.median, ort_b1_ms: ort.latency_ms.median,
    cnnviz_b32_img_s: d.images_per_s, ort_b32_img_s: ort.images_per_s, cnnviz_load_ms: d.load_ms,
    ort_load_ms: ort.load_ms, cnnviz_rss_b1_mb: d.peak_rss_b1_mb, ort_rss_b1_mb: ort.peak_rss_b1_mb,
    cnnviz_percent_of_peak_b1: d.percent_of_peak_b1 };
  for (const [n, x] of Object.entries(vals)) (a.abs[n] = a.abs[n] || []).push(x);
  ort = null;
}
// medians over rounds of every figure, then the ratios
for (const [k, v] of Object.entries(acc)) {
  const abs = {};
  for (const [n, x] of Object.entries(v.abs)) abs[n] = +med(x).toFixed(3);
  console.log(JSON.stringify({ summary: k, rounds: v.b1.length, b1_latency_ratio_median: +med(v.b1).toFixed(3),
    b1_latency_ratios: v.b1.map((x) => +x.toFixed(3)), b32_throughput_ratio_median: +med(v.b32).toFixed(3),
    medians: abs }));
}
