#!/usr/bin/env bash
# The GPU bridge's checks and figures on a machine with an NVIDIA GPU (the `device` tool's
# machines): the CUDA backend against the CPU backend (every primitive, gradients, training),
# the tensor bench with CUDA rows, and PyTorch's matmul on the same card for the ratio.
# Run from the repository root; it needs cargo, the built guest components (carry
# target/wasm-guests: the device cannot fetch the wasm toolchain) and, for the baseline, torch.
set -euo pipefail
cargo test --release -p weft-tensor --features cuda --test cuda -- --nocapture
cargo bench -p weft-runtime --features cuda --bench tensor
# NCCL (engine nccl's smoke test): every collective on NCCL, one rank per GPU under mpirun
# (OpenMPI: openmpi-bin). cudarc loads `libnccl.so`; PyTorch's NCCL wheel ships libnccl.so.2,
# linked here under that name.
nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null || true)
if [ -n "$nccl" ] && [ -e "$nccl/libnccl.so.2" ]; then
  mkdir -p target/nccl-lib && ln -sf "$nccl/libnccl.so.2" target/nccl-lib/libnccl.so
  export LD_LIBRARY_PATH="$PWD/target/nccl-lib:${LD_LIBRARY_PATH:-}"
fi
WEFT_REQUIRE_NCCL=1 cargo test --release -p weft-collective --features nccl --test nccl -- --nocapture
python3 gpu-bridge/bench/torch_matmul.py 256 1024 4096 || echo "no PyTorch here: baseline not measured"
