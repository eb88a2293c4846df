"""Freezing start-up objects out of the garbage collector (worldfm_ros.core.startup_objects)."""

import os
import subprocess
import sys

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


def _run(env_value=None) -> str:
    env = dict(os.environ)
    env.pop("WORLDFM_GC_FREEZE", None)
    if env_value is not None:
        env["WORLDFM_GC_FREEZE"] = env_value
    return subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_each_stage_freezes_once():
    assert _run() == "0 True True False True True"


def test_environment_opts_out():
    assert _run("0") == "0 False False False False False"
