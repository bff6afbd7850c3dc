"""PyTorch's fp32 matmul on the same card, the baseline the GPU bridge's CUDA matmul is held to
(goal: at least 70% of it). Prints one line per size, as the tensor bench does:

    python torch_matmul.py [SIZE ...]      (default 256 1024 4096)
"""

import sys
import time

import torch


def gflops(n: int, reps: int) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.float32)
    b = torch.randn(n, n, device="cuda", dtype=torch.float32)
    torch.backends.cuda.matmul.allow_tf32 = False  # plain fp32, as cuBLAS sgemm computes
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


if __name__ == "__main__":
    sizes = [int(s) for s in sys.argv[1:]] or [256, 1024, 4096]
    print(f"device: {torch.cuda.get_device_name()}")
    for n in sizes:
        print(f"pytorch matmul f32 {n}x{n}: {gflops(n, 50):.0f} GFLOP/s")
