"""Launch-time fit of a tiled Triton kernel's shared memory to the GPU it runs on.

A pipelined tl.dot tile keeps num_stages - 1 slices of A and B in shared memory: 192 KiB for a
128x128 fp32 tile at BLOCK_K 64 and 4 stages. An H100/H200 block may use 227 KiB, an A10 99 KiB, a
gfx942 (MI300) workgroup 64 KiB of LDS. A template renders without knowing the target, so the
rendered launcher asks the GPU instead, the way Triton's autotuner prunes configs: Triton raises
OutOfResources before it launches a kernel that needs more shared memory than the device has
(nothing runs, nothing is written), and the launcher steps down to the next (BLOCK_K, stages) pair
and keeps the first that launched, per device. Smaller K slices come before fewer stages: the
pipeline hides the loads' latency, which matters more on a GPU than a longer dot per iteration.

harness/gpu_compile.py raises the same error when it compiles for a target without a device, so
the compile check reports the kernel that would really launch there and what it stepped down from.
Triton's CPU interpreter allocates no shared memory: there the asked-for pair always launches.
"""

from __future__ import annotations

LAUNCHER = '''\
# (BLOCK_K, num_stages) to launch with: the asked-for pair first, then smaller K slices (down to
# 16), then fewer stages. Triton raises OutOfResources before launching a kernel whose shared
# memory the GPU lacks (a gfx942 workgroup has 64 KiB of LDS, an H100 block 227 KiB); the first
# pair that launched is kept per device, so only the first call pays for the ones that did not.
FITS = list(dict.fromkeys((bk, st) for st in range(STAGES, 0, -1)
                          for bk in (BLOCK_K, BLOCK_K // 2, BLOCK_K // 4) if bk >= 16))
_fit = {}


def _launch_fitting(device, launch):
    if device in _fit:
        launch(*_fit[device])
        return
    for bk, stages in FITS:
        try:
            launch(bk, stages)
        except OutOfResources as e:
            last = e
            continue
        _fit[device] = (bk, stages)
        return
    raise last
'''

IMPORT = "from triton.runtime.errors import OutOfResources"
