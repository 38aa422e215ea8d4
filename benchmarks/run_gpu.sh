#!/usr/bin/env bash
# Run the CUDA tests and the GPU benchmark on a machine with an NVIDIA GPU and
# a CUDA build of torch. Usage: bash benchmarks/run_gpu.sh [OUTDIR]
# Wheels of pure-Python dependencies the machine lacks may sit in .whl/.
# STAGE=tests|bench|profile|chunks runs one part only (default: all four), e.g. to
# keep each call of a time-limited GPU lease short; extra arguments go to the
# benchmark: STAGE=bench bash benchmarks/run_gpu.sh /tmp/out --configs shd
set -uo pipefail
OUTDIR=${1:-benchmarks/results}
STAGE=${STAGE:-all}
case "$STAGE" in all|tests|bench|profile|chunks) ;; *) echo "STAGE must be all, tests, bench, profile or chunks, got '$STAGE'" >&2; exit 2;; esac
want() { [ "$STAGE" = all ] || [ "$STAGE" = "$1" ]; }
mkdir -p "$OUTDIR"
# Some images point CC/CXX at a private GCC whose static libstdc++ breaks torch
# extensions (crash on C++ exceptions): build with the system compiler.
[ -x /usr/bin/g++ ] && export CC=/usr/bin/gcc CXX=/usr/bin/g++
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUTDIR/gpu_info.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)" | tee -a "$OUTDIR/gpu_info.txt"
if want tests; then
  python3 -m pytest -q -p no:cacheprovider tests/test_cuda_fused.py tests/test_cuda_parity.py tests/test_autocast.py \
    tests/test_cuda_issue21.py tests/test_cuda_neurons.py \
    tests/test_compiled_ops.py tests/test_parity.py -k "cuda or parity or fused" 2>&1 | tail -n 25 \
    | tee "$OUTDIR/cuda_tests.txt"
fi
if want bench; then
  python3 -m snntorch_sparse.bench --out "$OUTDIR" "${@:2}" 2>&1 | tee "$OUTDIR/bench_log.txt"
fi
if want profile; then
  # Where one SHD training step spends its GPU time (kernel table per variant).
  for v in sparse_compiled sparse_bf16; do
    python3 benchmarks/profile_step.py --config shd --variant "$v" 2>&1 | tee "$OUTDIR/profile-shd-$v.txt" | tail -n 40
  done
fi
if want chunks; then
  # The CUDA ops' time-chunk budget (csrc/cuda/fused_launch.cu, default 8 MiB): step time and peak of
  # the SHD config at 4-32 MiB, to check the default against the CPU emulation's predicted peaks
  # (benchmarks/results/peak-memory-cpu.json, "cuda-layout") and the cost model's launches.
  for mib in 4 8 16 32; do
    SNNTORCH_SPARSE_CUDA_CHUNK_MIB=$mib python3 -m snntorch_sparse.bench --configs shd \
      --variants snntorch sparse_compiled spikingjelly --repeats 5 --warmup 2 --out "$OUTDIR/chunks-${mib}mib" 2>&1 \
      | tee "$OUTDIR/chunks-${mib}mib-log.txt" | grep -E "sparse_compiled|spikingjelly|snntorch "
  done
fi
