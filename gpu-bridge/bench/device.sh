#!/usr/bin/env bash
# The GPU bridge's checks and figures on a machine with an NVIDIA GPU (the `device` tool's
# machines): the CUDA backend against the CPU backend (every primitive, gradients, training),
# the tensor bench with CUDA rows, and PyTorch's matmul on the same card for the ratio.
# Run from the repository root; it needs cargo, the built guest components (carry
# target/wasm-guests: the device cannot fetch the wasm toolchain) and, for the baseline, torch.
set -euo pipefail
cargo test --release -p weft-tensor --features cuda --test cuda -- --nocapture
cargo bench -p weft-runtime --features cuda --bench tensor
python3 gpu-bridge/bench/torch_matmul.py 256 1024 4096 || echo "no PyTorch here: baseline not measured"
