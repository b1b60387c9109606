#!/usr/bin/env bash
# What to run when a GPU machine is lent: the device, the `gpu` tests, short real searches (the
# planner, Triton and CUDA candidates, the experiment log; --executor local, as the box has no
# Ray), and every strategy of the GPU template families timed against GPU torch eager /
# torch.compile (bench/gpu_templates.py).
#
#   bash scripts/gpu_session.sh prepare              # here: the wheels a bare Python 3.12 GPU box lacks
#                                                    # (pydantic, sqlalchemy, alembic, gitpython, typer,
#                                                    # ...) as wheels into .gpu-deps/ (git-ignored, ~11 MB)
#   bash scripts/gpu_session.sh run OUT [STAGE...]   # on the GPU box, in the repository root; with the
#                                                    # device tool: carry [".gpu-deps"], OUT="$OUT"
#
# Stages, in the order given (default: search tests templates rest): search (bias_gelu and matmul,
# triton and cuda, KSCOUT_GPU_SEARCH_S seconds of searching each, default 30, after about a minute
# of baselines: about 7 minutes for the four), tests (env-info, pytest -m gpu), templates (bias_gelu
# and matmul, every strategy and tunable), rest (the other Triton families, strategies only,
# bounded by KSCOUT_GPU_REST_S, default 300). A device call is at most 10 minutes and a session has
# about 15 of device time: `run OUT search`, then `run OUT tests templates`, then `rest` if time is
# left. GPU_PYTHON_VERSION (default 3.12) is the box's Python for `prepare`. Results land in OUT:
# smi.txt, env-info.json, gpu-tests.txt, search-*.json/.log and runs/, gpu_templates*.md/.json/.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# kscout's pure-Python dependencies, with theirs (resolved for the box's Python): everything `kscout
# search --executor local` with the offline proposer imports. torch, triton, numpy and networkx are
# on the box; ray, dspy and litellm are not needed (ray's wheel alone is 80 MB, over a call's carry).
GPU_DEPS="pytest pydantic sqlalchemy alembic gitpython typer rich"

case "${1:-}" in
prepare)
    ver=${GPU_PYTHON_VERSION:-3.12}
    rm -rf .gpu-deps
    # Wheels, not an installed tree: ~11 MB compressed against ~66 MB installed (a call carries 64 MiB).
    # shellcheck disable=SC2086
    "$PY" -m pip download -q --dest .gpu-deps --only-binary=:all: --python-version "$ver" \
        --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 $GPU_DEPS 2>&1 | grep -v '^WARNING: Location' >&2 || true
    ls .gpu-deps/*.whl >/dev/null || { echo "prepare: no wheels downloaded" >&2; exit 1; }
    du -sh .gpu-deps
    ;;
run)
    out=${2:-${OUT:-gpu-out}}
    shift $(( $# >= 2 ? 2 : 1 ))
    stages=${*:-search tests templates rest}
    mkdir -p "$out"
    # GitPython refuses to import where no git binary is found; quiet, a search still runs and only
    # its winner branches fail (the packets and runs/*/best/ hold the kernels)
    export GIT_PYTHON_REFRESH=quiet
    command -v git >/dev/null || echo "[gpu_session] no git here: the searches cannot write winner branches" >&2
    if ! "$PY" -c "import pydantic, pytest, sqlalchemy, alembic, git, typer" 2>/dev/null; then
        [ -d .gpu-deps ] || { echo "kscout's dependencies missing and no .gpu-deps/: run 'prepare' first and carry it" >&2; exit 2; }
        site=${TMPDIR:-/tmp}/kscout-gpu-site
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
            .gpu-deps/*.whl 2>&1 | grep -v -i 'warning' >&2 || true
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
        "$PY" -c "import pydantic, sqlalchemy, alembic, git, typer" || { echo "the carried wheels did not install" >&2; exit 2; }
    fi
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 LITELLM_LOCAL_MODEL_COST_MAP=True
    for stage in $stages; do
        echo "[gpu_session] stage $stage ($(date -u +%T))" >&2
        case "$stage" in
        tests)
            (nvidia-smi || rocm-smi || echo "no nvidia-smi or rocm-smi") > "$out/smi.txt" 2>&1
            "$PY" -m harness env-info | tee "$out/env-info.json"
            "$PY" -m pytest -p no:cacheprovider -o addopts="--strict-markers" -m gpu -q -rA \
                tests/harness/test_native_gpu.py tests/harness/test_triton_backend.py \
                tests/agents/test_cuda_templates.py tests/cheats/test_gpu_cheats.py tests/harness/test_profile.py \
                tests/harness/test_forkserver.py tests/cli/test_gpu_search.py \
                2>&1 | tee "$out/gpu-tests.txt" || true
            ;;
        search)
            # The whole search (planner, offline proposer, hardware worker, SQLite log, branches) in one
            # process: the box has no Ray. One memory-bound and one matmul workload, Triton and CUDA.
            for wl in bias_gelu matmul; do
                for be in triton cuda; do
                    # SIGTERM at the timeout is an interrupt: the run is left resumable, its packets kept
                    timeout $(( ${KSCOUT_GPU_SEARCH_S:-30} + 180 )) "$PY" -m kscout.cli search "$wl" --backend "$be" \
                        --executor local --time "${KSCOUT_GPU_SEARCH_S:-30}s" --attempts 200 --runs-dir "$out/runs" \
                        --json > "$out/search-$wl-$be.json" 2> "$out/search-$wl-$be.log" || true
                    tail -n 3 "$out/search-$wl-$be.log" >&2 || true
                done
            done
            rm -rf "$out"/runs/*/repo   # the winner branches' git objects: the packets and best/ say it all
            ;;
        templates)
            "$PY" bench/gpu_templates.py bias_gelu matmul --backend cuda hip triton --tunables \
                --json "$out/gpu_templates.json" 2> "$out/gpu_templates.log" | tee "$out/gpu_templates.md" || true
            ;;
        rest)
            # The Triton families of the other workloads, strategies only, within a bounded time: what a
            # run there would rank.
            timeout "${KSCOUT_GPU_REST_S:-300}" "$PY" bench/gpu_templates.py softmax rmsnorm layernorm swiglu rotary \
                colsum cross_entropy decode_attn bmm int8_matmul conv2d --backend triton \
                --json "$out/gpu_templates_rest.json" 2> "$out/gpu_templates_rest.log" | tee "$out/gpu_templates_rest.md" || true
            ;;
        *)
            echo "unknown stage '$stage': use tests, search, templates or rest" >&2
            exit 2
            ;;
        esac
    done
    ;;
*)
    sed -n 2,20p "$0"
    exit 2
    ;;
esac
