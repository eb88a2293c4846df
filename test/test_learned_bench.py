"""``worldfm-bench --model``: several learned checkpoints measured side by side, with each
row's ratio to the geometric renderer of the same run."""

from __future__ import annotations

import json

from worldfm_ros.cli.bench import main as bench_main

V2 = "worldfm_ros/models/learned_v2.pt"
V3 = "worldfm_ros/models/learned_v3.pt"


def test_bench_measures_each_model_and_prints_the_ratio_to_geometric(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench_main(["--backend", "geometric", "learned", "--model", V2, V3, "--sizes", "40x32", "--frames", "8",
                     "--targets", "2", "--repeats", "1", "--retrieval-counts", "10", "--json", str(out)])
    assert rc == 0
    render = json.loads(out.read_text())["render"]
    assert set(render) == {"geometric@40x32", "learned[learned_v2]@40x32", "learned[learned_v3]@40x32"}
    assert all(row["views"] == 2 and row["p50_ms"] > 0 for row in render.values())
    printed = capsys.readouterr().out
    assert "x geometric (p50)" in printed
    row = next(line for line in printed.splitlines() if line.startswith("| learned[learned_v3]@40x32"))
    ratio = render["learned[learned_v3]@40x32"]["p50_ms"] / render["geometric@40x32"]["p50_ms"]
    assert row.rstrip(" |").endswith(f"{ratio:.2f}x")
