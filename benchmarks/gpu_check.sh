#!/usr/bin/env bash
# The prepared GPU check: run it whenever a machine with an NVIDIA GPU is at hand (about 8
# minutes on one GPU; each part has its own time limit so the whole fits in 9).
#
#   benchmarks/gpu_check.sh [--smoke]
#
# 1. the machine: nvidia-smi, torch, CUDA, NCCL;
# 2. every GPU-only test (they skip with a reason elsewhere): the torch backend on CUDA against
#    the CPU, autocast (fp16/bf16) training steps on CUDA, the label export on CUDA and over an
#    NCCL process group, DDP with NCCL and a 2-GPU export (these two need 2 GPUs);
# 3. benchmarks/bench_pipeline.py: the throughput of each pipeline stage on the GPU (synthetic
#    shapes, MagicPoint steps/s, adaptation images/s at N=100 batched vs one at a time,
#    SuperPoint steps/s) and the projection of the whole four-step pipeline at the paper's
#    settings on that GPU; figures also in $OUT/pipeline.json when OUT is set.
#
# Without a GPU it runs the same parts on the CPU (the CPU fallback): the tests skip and say why,
# the benchmark runs its quick sizes and says that its figures are CPU figures. --smoke (what the
# test suite runs) makes the benchmark tiny and its figures meaningless.
# Python: $PYTHON, else .venv/bin/python, else python3 (the package is taken from this checkout).
# Exit status: that of the tests, else that of the benchmark.

set -u -o pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
SMOKE=""
for arg in "$@"; do
    case "$arg" in
        --smoke) SMOKE="--smoke" ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $arg (valid: --smoke)" >&2; exit 2 ;;
    esac
done
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
JSON=()
if [ -n "${OUT:-}" ]; then JSON=(--json "$OUT/pipeline.json"); fi
TEST_LIMIT=${GPU_CHECK_TEST_S:-300}
BENCH_LIMIT=${GPU_CHECK_BENCH_S:-240}

echo "== 1. machine ($(date -u +%FT%TZ))"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
else
    echo "nvidia-smi: not found"
fi
"$PYTHON" - <<'EOF'
import torch
cuda = torch.cuda.is_available()
print(f"torch {torch.__version__}, CUDA available: {cuda}, GPUs: {torch.cuda.device_count()}")
if cuda:
    print(f"device 0: {torch.cuda.get_device_name(0)}, bf16: {torch.cuda.is_bf16_supported()}, "
          f"NCCL: {torch.distributed.is_nccl_available()}")
else:
    print("NO GPU: the CPU fallback runs (GPU-only tests skip; CPU figures, not GPU ones)")
EOF

echo "== 2. GPU-only tests (limit ${TEST_LIMIT} s)"
if [ -n "$SMOKE" ]; then
    TESTS=(test/test_gpu.py)  # the suite running this script already runs the others
else
    TESTS=(test/test_gpu.py
           "test/test_backends.py::test_torch_cuda_matches_cpu"
           "test/test_distributed.py::test_two_gpus_with_sync_batchnorm_train_like_one")
fi
timeout "$TEST_LIMIT" "$PYTHON" -m pytest -q -rs -p no:cacheprovider "${TESTS[@]}"
tests=$?
echo "tests: exit status $tests"

echo "== 3. pipeline throughput and projection (limit ${BENCH_LIMIT} s)"
timeout "$BENCH_LIMIT" "$PYTHON" benchmarks/bench_pipeline.py --device auto $SMOKE "${JSON[@]}"
bench=$?
echo "benchmark: exit status $bench"
echo "== done ($(date -u +%FT%TZ))"
if [ "$tests" -ne 0 ]; then exit "$tests"; fi
exit "$bench"
