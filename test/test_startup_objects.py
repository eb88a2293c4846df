"""Freezing start-up objects out of the garbage collector (worldfm_ros.core.startup_objects)."""

CHECK = """
import gc
from worldfm_ros.core.startup_objects import freeze_startup_objects as f, unfreeze_startup_objects
before = gc.get_freeze_count()
first = f("configured")
frozen = gc.get_freeze_count()
again = f("configured")
later = [[i] for i in range(1000)]  # made after the first freeze
other = f("first render")
grown = gc.get_freeze_count() >= frozen + 1000
unfreeze_startup_objects()  # lifecycle cleanup: everything back to the collector
thawed = gc.get_freeze_count()
refrozen = f("configured")
print(before, first, frozen > 1000, again, grown, other, thawed, refrozen)
"""


def test_each_stage_freezes_once_until_cleanup(run_python):
    assert run_python(CHECK, "WORLDFM_GC_FREEZE") == "0 True True False True True 0 True"


def test_environment_opts_out(run_python):
    assert run_python(CHECK, "WORLDFM_GC_FREEZE", "0") == "0 False False False False False 0 False"
