"""``worldfm-export``: the learned frame model as ONNX, and a TensorRT engine built from it.

Examples::

    worldfm-export --onnx out/learned.onnx                       # the shipped checkpoint
    worldfm-export --onnx out/learned.onnx --model my.pt --height 480 --width 640
    worldfm-export --tensorrt out/learned.engine --onnx out/learned.onnx --fp16   # on the target GPU

``--onnx`` alone exports (dynamic batch and image size, opset 17), validates the file with
``onnx.checker`` and compares ONNX Runtime with PyTorch on warped synthetic views at the
traced size and at a second size. With ``--tensorrt`` an existing ``--onnx`` file (exported
first when missing) is compiled into a serialized engine for this GPU and TensorRT version
(optional extra: ``pip install '.[tensorrt]'``). See docs/deployment.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from worldfm_ros.core.errors import WorldFMError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="worldfm-export", description=__doc__.split("\n\n")[0])
    p.add_argument("--onnx", type=Path, required=True, help="ONNX file to write (or, with --tensorrt, to read)")
    p.add_argument("--model", type=Path, help="checkpoint (default: the shipped model)")
    p.add_argument("--height", type=int, default=240, help="image height traced / TensorRT profile size [px]")
    p.add_argument("--width", type=int, default=320, help="image width traced / TensorRT profile size [px]")
    p.add_argument("--tensorrt", type=Path, metavar="ENGINE", help="build a TensorRT engine from --onnx into ENGINE")
    p.add_argument("--fp16", action="store_true", help="TensorRT engine in fp16 (with --tensorrt)")
    p.add_argument("--max-batch", type=int, default=16, help="largest batch of the TensorRT engine")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs PyTorch comparison")
    p.add_argument("--json", type=Path, help="also write what was done and measured as JSON")
    return p


def _export(args, model, model_path) -> dict:
    from worldfm_ros.learned.onnx_export import check_onnx_file, compare_with_torch, example_bundle, export_onnx

    t0 = time.perf_counter()
    export_onnx(model, args.onnx, height=args.height, width=args.width, checkpoint_path=model_path)
    report = {"onnx": str(args.onnx), "export_s": round(time.perf_counter() - t0, 2),
              "bytes": args.onnx.stat().st_size}
    check_onnx_file(args.onnx, model, model_path)  # onnx.checker + names, shapes, version, checkpoint
    print(f"wrote {args.onnx} ({report['bytes'] / 1e6:.2f} MB, {report['export_s']} s); onnx.checker: ok")
    if not args.no_check:
        report["checks"] = []
        for batch, h, w in ((2, args.height, args.width), (1, args.height // 2 + 3, args.width // 2 + 5)):
            result = compare_with_torch(args.onnx, model, example_bundle(model.k, h, w, batch))
            result["size"] = f"{w}x{h}"
            report["checks"].append(result)
            print(f"onnxruntime vs torch at batch {batch}, {w}x{h}: max |diff| {result['max_abs_diff']:.2e}, "
                  f"{100 * result['pixels_within_1_255']:.3f} % of pixels within 1/255")
            if result["pixels_within_1_255"] < 0.999:
                raise WorldFMError(f"ONNX file {args.onnx} disagrees with torch at {w}x{h}: only "
                                   f"{100 * result['pixels_within_1_255']:.2f} % of pixels within 1/255", str(args.onnx))
    return report


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from worldfm_ros.core.renderers.learned import DEFAULT_MODEL_PATH
    from worldfm_ros.learned.model import load_checkpoint
    from worldfm_ros.learned.onnx_export import build_tensorrt_engine, check_onnx_file

    model_path = args.model or DEFAULT_MODEL_PATH
    report: dict = {"model": str(model_path)}
    try:
        if min(args.height, args.width) < 8 or max(args.height, args.width) > 4096:
            raise ValueError(f"--height/--width must be 8..4096 px, got {args.width}x{args.height}")
        model, _ = load_checkpoint(model_path)
        if args.tensorrt is None or not args.onnx.exists():
            report.update(_export(args, model, model_path))
        else:
            check_onnx_file(args.onnx, model, model_path)
        if args.tensorrt is not None:
            print(f"building TensorRT engine {args.tensorrt} ({'fp16' if args.fp16 else 'fp32'}, "
                  f"{args.width}x{args.height}, batch 1..{args.max_batch}); this takes minutes")
            built = build_tensorrt_engine(args.onnx, args.tensorrt, fp16=args.fp16, height=args.height,
                                          width=args.width, max_batch=args.max_batch)
            report["tensorrt"] = built
            print(f"wrote {args.tensorrt} ({built['bytes'] / 1e6:.1f} MB) in {built['seconds']:.0f} s "
                  f"with TensorRT {built['tensorrt']}")
    except ImportError as exc:
        print(f"worldfm-export: error: {exc}", file=sys.stderr)
        return 3
    except (WorldFMError, ValueError, OSError) as exc:
        print(f"worldfm-export: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
