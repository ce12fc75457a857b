#!/bin/sh
# Side-by-side with ONNX Runtime on this machine, the bar of issue 5:
# converts each benchmark model with ../shared/anchors/keras2onnx.py, then
# times ONNX Runtime (npm onnxruntime-node) and cnnviz-dump --bench
# alternately, so both see the same machine state. One JSON line per run;
# with ROUNDS > 1 the whole comparison repeats and a last line per model
# and thread count gives the median over rounds of the ratio
# cnnviz/ORT (batch-1 median latency): a noisy host moves single runs.
#   tests/bench/compare_ort.sh [RUNS] [ROUNDS]  (from the project root, after make)
# Needs: python3-onnx python3-h5py python3-numpy (Debian), node + npm.
set -eu
RUNS=${1:-200}
ROUNDS=${2:-1}
SHARED=${CNNVIZ_SHARED:-../shared}
WORK=${CNNVIZ_ORT_DIR:-build/ort}
mkdir -p "$WORK"
cp tests/bench/ort_bench.js "$WORK/"
[ -d "$WORK/node_modules/onnxruntime-node" ] ||
	(cd "$WORK" && npm init -y >/dev/null && npm install --ignore-scripts onnxruntime-node >/dev/null)
cp tests/bench/ratios.js "$WORK/"
round=0
while [ "$round" -lt "$ROUNDS" ]; do
	round=$((round + 1))
	for m in "$SHARED"/models/bench/*.h5 "$SHARED"/models/bench/*.hdf5; do
		[ -f "$m" ] || continue
		onnx="$WORK/$(basename "${m%.*}").onnx"
		[ -f "$onnx" ] || /usr/bin/python3 "$SHARED/anchors/keras2onnx.py" "$m" "$onnx" >/dev/null
		for t in 1 2; do
			node "$WORK/ort_bench.js" "$onnx" "$t" "$RUNS"
			build/cnnviz-dump --bench "$RUNS" --threads "$t" "$m"
		done
	done
done | tee "$WORK/last.jsonl"
[ "$ROUNDS" -gt 1 ] && node "$WORK/ratios.js" "$WORK/last.jsonl"
exit 0
