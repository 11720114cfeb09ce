#!/usr/bin/env bash
# The GPU checks, prepared to run in one device call (a session gets ~15 minutes of GPU time, start included):
#   here, once:      bash benchmarks/gpu_check.sh wheels   # polars for the device's Python 3.12 into .whl/ (~55 MB,
#                                                          # git-ignored): that machine has torch, numpy and pyarrow
#                                                          # but no polars, and no network
#   on the device:   the device tool's run, carry [".whl"], command "bash benchmarks/gpu_check.sh run", timeout_s 540
# `run` writes under $OUT (benchmarks/out/gpu/ when unset): env.txt, then pipeline.txt (benchmarks/gpu_pipeline.py:
# the model stages end to end on the device, with their checks against the CPU), then train_20m_auto.txt and
# train_20m_b131072.txt (benchmarks/train.py at the issue's 20M-interaction size, at the auto batch and a GPU-sized
# one). Each step has its own time limit, so one that hangs does not cost the others. Record the figures in
# BENCHMARKS.md. DEVICE=cpu and SMALL=1 try the script itself on a machine without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."

case "${1:-run}" in
  wheels)
    v="$(sed -n 's/^polars==//p' requirements.txt)"
    rm -rf .whl && mkdir -p .whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "polars==$v" "polars-runtime-32==$v" || exit 1
    du -sh .whl && ls .whl ;;
  run)
    out="${OUT:-benchmarks/out/gpu}"
    mkdir -p "$out" && out="$(cd "$out" && pwd)"
    if [ -d .whl ] && ! python3 -c 'import polars' 2>/dev/null; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
      export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    if ! python3 -c 'import ncf_tasks' 2>/dev/null; then
      # the project installed by path, as `pip install -e .` does (the device has no network for its build backend)
      site="$(python3 -m site --user-site)" && mkdir -p "$site" && pwd >"$site/ncf-checkout.pth" || exit 1
    fi
    export PYTHONUNBUFFERED=1
    dev="${DEVICE:-cuda}"
    if [ -n "${SMALL:-}" ]; then size=(--users 1500 --items 800 --events-per-day 10000); big=(--users 3000 --items 1000 --events-per-day 20000)
    else size=(); big=(--users 140000 --items 27000 --events-per-day 850000); fi
    {
      date -u; nproc; free -g | head -2
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
      python3 -c 'import sys, torch, numpy, pyarrow, polars; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available(), "numpy", numpy.__version__, "pyarrow", pyarrow.__version__, "polars", polars.__version__)'
    } 2>&1 | tee "$out/env.txt"
    step() {  # name, limit in seconds, command...
      local name="$1" limit="$2"; shift 2
      echo "== $name: $*"
      local t0=$SECONDS
      timeout "$limit" "$@" >"$out/$name.txt" 2>&1
      local rc=$?
      grep -v ' INFO ' "$out/$name.txt" | tail -n 25
      echo "== $name: exit $rc after $((SECONDS - t0)) s (full log in $name.txt)"
      return $rc
    }
    rc=0
    cd benchmarks
    step pipeline 150 python3 gpu_pipeline.py --device "$dev" --epochs 3 "${size[@]}" || rc=1
    step train_20m_auto 170 python3 train.py --device "$dev" --no-port --epochs 3 "${big[@]}" || rc=1
    step train_20m_b131072 150 python3 train.py --device "$dev" --no-port --epochs 3 --set batch_size=131072 "${big[@]}" || rc=1
    step ease_ml1m 120 python3 ease.py --device "$dev" --no-numpy || rc=1
    exit $rc ;;
  *) echo "usage: bash benchmarks/gpu_check.sh wheels|run" >&2; exit 2 ;;
esac
