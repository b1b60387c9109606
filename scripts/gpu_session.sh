#!/usr/bin/env bash
# What to run when a GPU machine is lent: the device, the `gpu` tests, and every strategy of the
# GPU template families timed against GPU torch eager / torch.compile (bench/gpu_templates.py).
#
#   bash scripts/gpu_session.sh prepare      # here: wheels a bare Python 3.12 GPU box may lack
#                                            # (pytest, pydantic) into .gpu-deps/ (git-ignored)
#   bash scripts/gpu_session.sh run [OUT]    # on the GPU box, in the repository root; with the
#                                            # device tool: carry [".gpu-deps"], OUT="$OUT"
#
# The GPU box needs only python, torch (CUDA or ROCm) and triton; kscout's other dependencies
# (ray, sqlalchemy, dspy, litellm) are not used: `python -m harness` and the template sweep run
# on the harness alone. Results land in OUT: nvidia-smi/rocm-smi, env-info.json, gpu-tests.txt,
# gpu_templates.md/.json/.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

case "${1:-}" in
prepare)
    rm -rf .gpu-deps /tmp/kscout-gpu-wheels
    "$PY" -m pip download -q --dest /tmp/kscout-gpu-wheels --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 pytest pydantic
    "$PY" -m pip install -q --target .gpu-deps --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        /tmp/kscout-gpu-wheels/*.whl
    du -sh .gpu-deps
    ;;
run)
    out=${2:-${OUT:-gpu-out}}
    mkdir -p "$out"
    if ! "$PY" -c "import pydantic, pytest" 2>/dev/null; then
        [ -d .gpu-deps ] || { echo "pydantic/pytest missing and no .gpu-deps/: run 'prepare' first and carry it" >&2; exit 2; }
        export PYTHONPATH="$PWD/.gpu-deps${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    (nvidia-smi || rocm-smi || echo "no nvidia-smi or rocm-smi") > "$out/smi.txt" 2>&1
    "$PY" -m harness env-info | tee "$out/env-info.json"
    "$PY" -m pytest -p no:cacheprovider -o addopts="--strict-markers" -m gpu -q -rA \
        tests/harness/test_native_gpu.py tests/harness/test_triton_backend.py \
        tests/agents/test_cuda_templates.py tests/cheats/test_gpu_cheats.py tests/harness/test_profile.py \
        tests/harness/test_forkserver.py \
        2>&1 | tee "$out/gpu-tests.txt" || true
    "$PY" bench/gpu_templates.py bias_gelu matmul --backend cuda hip triton --tunables \
        --json "$out/gpu_templates.json" 2> "$out/gpu_templates.log" | tee "$out/gpu_templates.md"
    # The Triton families of the other workloads, strategies only, within a bounded time (a GPU
    # session has about 15 minutes in all): what a run there would rank.
    timeout "${KSCOUT_GPU_REST_S:-300}" "$PY" bench/gpu_templates.py softmax rmsnorm layernorm swiglu rotary \
        colsum cross_entropy decode_attn bmm int8_matmul conv2d --backend triton \
        --json "$out/gpu_templates_rest.json" 2> "$out/gpu_templates_rest.log" | tee "$out/gpu_templates_rest.md" || true
    ;;
*)
    sed -n 2,15p "$0"
    exit 2
    ;;
esac
