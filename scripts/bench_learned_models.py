"""Median ms per 320x240 view: geometric, learned_v2 and the given checkpoints, interleaved on the same
memory and targets (synthetic world 0, 2 torch threads)."""
import sys, time, numpy as np, torch
torch.set_num_threads(2)
from worldfm_ros.core.synthetic import generate_world, plan_loop, default_intrinsics
from worldfm_ros.core.memory import KeyframeMemory, MemoryConfig
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.renderers.geometric import GeometricRenderer
from worldfm_ros.core.renderers.learned import LearnedRenderer
w = generate_world(0); K = default_intrinsics()
loop = plan_loop(w, 0, 300)
mem = KeyframeMemory(MemoryConfig())
for i in range(0, 300, 3):
    c, d = w.render(loop.T_world_cam[i], K); mem.consider(Keyframe(c, d, K, loop.T_world_cam[i], float(i)))
targets = [loop.T_world_cam[i] for i in range(1, 300, 15)]
rs = {"geometric": GeometricRenderer(), "learned_v2": LearnedRenderer(model_path="worldfm_ros/models/learned_v2.pt")}
for p in sys.argv[1:]:
    rs[p.rsplit("/", 1)[-1]] = LearnedRenderer(model_path=p)
ms = {n: [] for n in rs}
for rep in range(int(3)):
    for T in targets:
        for n, r in rs.items():
            t0 = time.perf_counter()
            refs = mem.retrieve(T, K, k=getattr(r, "references_per_view", 4))
            r.render(refs, T[None], K)
            ms[n].append((time.perf_counter() - t0) * 1e3)
g = np.median(ms["geometric"])
for n, v in ms.items():
    print(f"{n}: median {np.median(v):.1f} ms, p95 {np.percentile(v, 95):.1f} ms, ratio to geometric {np.median(v) / g:.2f}")
