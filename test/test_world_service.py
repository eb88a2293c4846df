"""WorldService: the node's and worldfm-eval's shared path (memory + renderer + world file)."""

import threading

import numpy as np
import pytest

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import EmptyMemoryError, InvalidPoseError, InvalidSizeError, WorldFileError
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.memory import MemoryConfig
from worldfm_ros.core.renderers.base import RenderResult
from worldfm_ros.core.world_file import read_world
from worldfm_ros.core.world_service import WorldService, WorldServiceConfig, view_novelty

K640 = Intrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480)


def plane_frame(x: float, stamp: float = 0.0, seed: int = 0) -> Keyframe:
    """A camera at (x, 0, 0) looking along +z at a textured wall at z = 2 m."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    depth = np.full((480, 640), 2.0, np.float32)
    T = np.eye(4)
    T[0, 3] = x
    return Keyframe(colour, depth, K640, T, stamp)


class RecordingRenderer:
    """Returns grey images of the requested size and remembers its references."""

    name = "recording"

    def __init__(self):
        self.calls = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def render(self, references, T_world_cam, intrinsics):
        self.calls.append([kf.id for kf in references])
        self.entered.set()
        if not self.release.wait(timeout=10):
            raise RuntimeError("test renderer was never released")
        b, h, w = len(T_world_cam), intrinsics.height, intrinsics.width
        return RenderResult(
            rgb=np.full((b, h, w, 3), 128, np.uint8), depth=np.zeros((b, h, w), np.float32),
            covered=np.zeros((b, h, w), bool), coverage=np.zeros(b, np.float32),
            reference_ids=[kf.id for kf in references],
        )


def service(**kwargs) -> WorldService:
    return WorldService(WorldServiceConfig(**kwargs), renderer=RecordingRenderer())


def test_ingest_downscales_and_applies_the_insertion_policy():
    world = service()
    first = world.ingest_keyframe(plane_frame(0.0))
    assert first is not None and first.colour.shape == (240, 320, 3)
    assert first.intrinsics == K640.scaled(0.5)
    assert first.extras["coverage_gain"] == 1.0
    assert world.ingest(plane_frame(0.01)) is None  # within min_translation
    second = world.ingest_keyframe(plane_frame(0.2))
    assert second is not None and second.id != first.id
    # a 0.2 m sideways step at 2 m with fx = 262.5: about 26 px of 320 are new
    assert second.extras["coverage_gain"] == pytest.approx(26.25 / 320, abs=0.04)
    assert len(world) == 2 and world.memory_bytes > 2 * (320 * 240 * 7)


def test_render_returns_the_requested_size_and_references():
    world = service()
    world.ingest(plane_frame(0.0))
    world.ingest(plane_frame(0.3))
    out = world.render(np.eye(4), K640.resized(100, 80))
    assert out.result.rgb.shape == (1, 80, 100, 3)
    assert sorted(out.result.reference_ids) == [0, 1]
    assert out.render_ms >= 0


def test_render_refuses_what_it_cannot_serve():
    world = service()
    with pytest.raises(EmptyMemoryError):
        world.render(np.eye(4), K640)
    world.ingest(plane_frame(0.0))
    bad = np.eye(4)
    bad[1, 3] = np.nan
    with pytest.raises(InvalidPoseError):
        world.render(bad, K640)
    with pytest.raises(InvalidSizeError):
        world.render(np.eye(4), Intrinsics(500.0, 500.0, 2500.0, 2500.0, 5000, 5000))


def test_a_running_render_does_not_block_ingestion():
    world = service()
    world.ingest(plane_frame(0.0))
    renderer = world.renderer
    renderer.release.clear()
    renderer.entered.clear()
    thread = threading.Thread(target=world.render, args=(np.eye(4), K640))
    thread.start()
    try:
        assert renderer.entered.wait(timeout=10)
        assert world.ingest(plane_frame(0.5)) is not None  # would deadlock if render held the lock
        assert len(world) == 2
    finally:
        renderer.release.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_world_path_persists_loads_evicts_and_resets(tmp_path):
    path = str(tmp_path / "w.world")
    world = service(world_path=path, memory=MemoryConfig(max_keyframes=2))
    for i, x in enumerate((0.0, 1.0, 2.0)):
        world.ingest(plane_frame(x, stamp=float(i), seed=i))
    kept = world.keyframes()
    assert len(kept) == 2
    world.close()
    on_disk = read_world(path)
    assert [kf.id for kf in on_disk] == [kf.id for kf in kept]
    reloaded = service(world_path=path)
    for a, b in zip(reloaded.keyframes(), kept):
        assert a.id == b.id
        np.testing.assert_array_equal(a.colour, b.colour)
        np.testing.assert_array_equal(a.depth, b.depth)
        np.testing.assert_array_equal(a.T_world_cam, b.T_world_cam)
    reloaded.reset()
    assert len(reloaded) == 0
    reloaded.close()
    assert read_world(path) == []


def test_save_writes_a_complete_world(tmp_path):
    world = service()
    world.ingest(plane_frame(0.0))
    world.ingest(plane_frame(0.5))
    path = str(tmp_path / "saved")
    assert world.save(path) == 2
    assert [kf.id for kf in read_world(path)] == [0, 1]
    with pytest.raises(WorldFileError):
        world.save("")


def test_novelty_is_zero_for_an_already_seen_view():
    frame = plane_frame(0.0)
    ref = plane_frame(0.0)
    ref.id = 0
    assert view_novelty(frame, [ref]) == 0.0
    assert view_novelty(frame, []) == 1.0


def test_backend_fallback_when_the_model_cannot_be_loaded(tmp_path):
    from worldfm_ros.core.errors import ModelLoadError

    missing = str(tmp_path / "missing.pt")
    world = WorldService(WorldServiceConfig(backend="learned", model_path=missing, backend_fallback=True))
    assert world.backend == "geometric"
    assert any("learned" in w for w in world.warnings)
    with pytest.raises(ModelLoadError):
        WorldService(WorldServiceConfig(backend="learned", model_path=missing, backend_fallback=False))


def test_cuda_request_without_cuda_falls_back_to_cpu():
    from worldfm_ros.core.errors import ModelLoadError

    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available on this machine: nothing to fall back from")
    world = WorldService(WorldServiceConfig(device="cuda"))
    assert any("cuda" in w for w in world.warnings)
    with pytest.raises(ModelLoadError):
        WorldService(WorldServiceConfig(device="cuda", backend_fallback=False))


def test_loading_a_world_larger_than_the_cap_keeps_the_file_whole(tmp_path):
    from worldfm_ros.core.memory import MemoryConfig
    from worldfm_ros.core.world_file import read_world

    path = str(tmp_path / "big.world")
    big = service(world_path=path, memory=MemoryConfig(insertion="pose"))
    for x in (0.0, 0.3, 0.6, 0.9, 1.2):
        assert big.ingest(plane_frame(x)) is not None
    big.save(path)  # same file: checkpointed, complete on its own
    big.close()
    assert len(read_world(path)) == 5
    small = service(world_path=path, memory=MemoryConfig(insertion="pose", max_keyframes=3))
    assert len(small) == 3 and small.evicted_while_loading == 2
    small.close()
    assert len(read_world(path)) == 5


def test_unregistered_sensor_keyframes_are_registered_to_the_colour_camera():
    world = service(colour_focal_ratio=0.9)
    frame = plane_frame(0.0)
    kf = world.ingest_keyframe(frame)
    # Stored at 320x240 with the colour camera's intrinsics; the colour pixels are untouched.
    assert kf.intrinsics.fx == pytest.approx(0.9 * 525.0 / 2) and kf.intrinsics.cx == pytest.approx(159.5)
    assert kf.colour.shape == (240, 320, 3)
    # The depth camera (focal 525) sees less than the colour camera: the border has no depth.
    assert kf.depth[120, 160] == pytest.approx(2.0) and kf.depth[120, 0] == 0.0 and kf.depth[0, 160] == 0.0
    assert 0.75 < (kf.depth > 0).mean() < 0.85  # (0.9)^2 of the image, near enough
    assert frame.intrinsics.fx == 525.0 and (frame.depth > 0).all()  # the caller's frame is unchanged


@pytest.mark.parametrize("ratio", [0.0, -1.0, float("nan"), 5.0])
def test_bad_colour_focal_ratio_is_refused(ratio):
    with pytest.raises(ValueError, match="colour focal ratio"):
        WorldServiceConfig(colour_focal_ratio=ratio)


def test_warm_up_leaves_the_world_untouched_and_renders_the_same_bytes(tmp_path):
    """``warm_up`` (the node runs it at configure) loads the kernels in a scratch world: the
    memory, the map, the world file and later renders are as without it."""
    from worldfm_ros.core.synthetic import synthetic_sequence  # noqa: PLC0415

    frames = [Keyframe(c, d, K, T, stamp) for c, d, K, T, stamp in synthetic_sequence(5, 12)]
    path = tmp_path / "w.world"
    warmed, cold = WorldService(WorldServiceConfig(world_path=str(path))), WorldService(WorldServiceConfig())
    assert warmed.warm_up([(160, 120)]) > 0
    assert len(warmed) == 0 and warmed.occupancy_map.version == cold.occupancy_map.version
    assert read_world(path) == []
    for frame in frames:
        warmed.ingest(frame)
        cold.ingest(frame)
    assert [k.id for k in warmed.keyframes()] == [k.id for k in cold.keyframes()]
    assert np.array_equal(warmed.occupancy_map.grid()[0], cold.occupancy_map.grid()[0])
    target = frames[len(frames) // 2]
    a = warmed.render(target.T_world_cam, target.intrinsics).result
    b = cold.render(target.T_world_cam, target.intrinsics).result
    assert np.array_equal(a.rgb, b.rgb)
    warmed.close()
    assert [k.id for k in read_world(path)] == [k.id for k in cold.keyframes()]
