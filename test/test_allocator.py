"""The allocator tuning the learned renderer applies (worldfm_ros.core.allocator)."""

import subprocess
import sys

import pytest

from worldfm_ros.core import allocator

CHECK = "from worldfm_ros.core.allocator import keep_freed_memory as k; print(k(), k())"


def _run(env_value=None) -> str:
    import os

    env = dict(os.environ)
    env.pop("WORLDFM_MALLOC_TUNING", None)
    if env_value is not None:
        env["WORLDFM_MALLOC_TUNING"] = env_value
    return subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_thresholds_are_applied_once_per_process():
    assert _run() == "True True"


def test_environment_opts_out():
    assert _run("0") == "False False"


def test_renderer_applies_it(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    from worldfm_ros.core.renderers.learned import LearnedRenderer

    LearnedRenderer()
    assert calls == [1]
