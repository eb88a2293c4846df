"""worldfm_ros: a learned world-model simulator for ROS 2 robots.

`worldfm_ros.core` is ROS-free (numpy / torch / OpenCV only); `worldfm_ros.ros` is the thin
ROS 2 adapter around it.
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# PyTorch's OpenMP (libgomp) threads spin for 300,000 iterations after every parallel torch
# operation before they sleep. A learned view alternates torch (the network, the output
# conversion) with the warp's own two threads (numba + OpenCV), which the spinning threads
# then starve. A shorter spin, set before torch (and so libgomp) is first imported, made the
# learned backend 9-17 % faster end to end on the 2-core machine: worldfm-bench --threads 2,
# 320x240, p50 33.1-34.7 ms against 36.6-40.3 ms with the default, three alternating runs each
# (docs/learned.md, session 9). OMP_WAIT_POLICY=PASSIVE (no spin at all) was slower (41.7 ms).
# A value already in the environment wins; nothing changes when torch was imported first.
if "torch" not in _sys.modules:
    _os.environ.setdefault("GOMP_SPINCOUNT", "10000")
