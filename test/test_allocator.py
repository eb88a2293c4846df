"""The allocator tuning the learned renderer applies (worldfm_ros.core.allocator)."""

import sys

import pytest

from worldfm_ros.core import allocator

CHECK = "from worldfm_ros.core.allocator import keep_freed_memory as k; print(k(), k())"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_thresholds_are_applied_once_per_process(run_python):
    assert run_python(CHECK, "WORLDFM_MALLOC_TUNING") == "True True"


def test_environment_opts_out(run_python):
    assert run_python(CHECK, "WORLDFM_MALLOC_TUNING", "0") == "False False"


def test_renderer_applies_it(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    from worldfm_ros.core.renderers.learned import LearnedRenderer

    LearnedRenderer()
    assert calls == [1]
