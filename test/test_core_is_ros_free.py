"""The core (and the learned renderer) must import and work with no ROS installed."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, importlib.util, pkgutil, re, sys

    FORBIDDEN = re.compile(r"^(rclpy|rosidl_.*|rmw.*|std_srvs|[a-z_]+_msgs|builtin_interfaces|"
                           r"worldfm_ros\\.(msg|srv|ros))(\\.|$)")

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if FORBIDDEN.match(name):
                raise ImportError(f"ROS module {name} imported by the ROS-free core")
            return None

    sys.meta_path.insert(0, Blocker())
    import worldfm_ros.core
    names = [m.name for m in pkgutil.walk_packages(worldfm_ros.core.__path__, "worldfm_ros.core.")]
    if importlib.util.find_spec("worldfm_ros.learned") is not None:
        import worldfm_ros.learned
        names += [m.name for m in pkgutil.walk_packages(worldfm_ros.learned.__path__, "worldfm_ros.learned.")]
    for name in names:
        importlib.import_module(name)
    leaked = sorted(n for n in sys.modules if FORBIDDEN.match(n))
    print(len(names), "modules;", "leaked:", leaked)
    sys.exit(1 if leaked else 0)
    """
)


def test_every_core_module_imports_with_ros_blocked():
    proc = subprocess.run([sys.executable, "-c", BLOCKER], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    n_modules = int(proc.stdout.split()[0])
    assert n_modules >= 10  # the walk really found the core's modules


def test_no_ros_import_statements_in_core_sources():
    pattern = ("import rclpy", "from rclpy", "_msgs", "std_srvs", "worldfm_ros.ros", "worldfm_ros.msg",
               "worldfm_ros.srv")
    offenders = []
    for folder in ("worldfm_ros/core", "worldfm_ros/learned"):
        for path in (ROOT / folder).rglob("*.py"):
            for line in path.read_text().splitlines():
                s = line.strip()
                if (s.startswith("import ") or s.startswith("from ")) and any(p in s for p in pattern):
                    offenders.append(f"{path.relative_to(ROOT)}: {s}")
    assert not offenders, offenders
