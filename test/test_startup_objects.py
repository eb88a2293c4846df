"""Freezing start-up objects out of the garbage collector (worldfm_ros.core.startup_objects)."""

CHECK = """
import gc
from worldfm_ros.core.startup_objects import freeze_startup_objects as f
before = gc.get_freeze_count()
first = f("configured")
frozen = gc.get_freeze_count()
again = f("configured")
later = [[i] for i in range(1000)]  # made after the freeze: still collected normally
other = f("first render")
print(before, first, frozen > 1000, again, gc.get_freeze_count() >= frozen + 1000, other)
"""


def test_each_stage_freezes_once(run_python):
    assert run_python(CHECK, "WORLDFM_GC_FREEZE") == "0 True True False True True"


def test_environment_opts_out(run_python):
    assert run_python(CHECK, "WORLDFM_GC_FREEZE", "0") == "0 False False False False False"
