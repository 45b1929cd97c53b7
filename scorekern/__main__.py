"""Command line: ``python -m scorekern demo``, ``bench`` and ``info``."""

from __future__ import annotations

import argparse
import json
import sys


def _info(args) -> int:
    import scorekern

    report = scorekern.info()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"scorekern {report['version']}")
    if report["extension"]:
        print(f"  compiled backends : {', '.join(report['compiled_backends'])}")
        print(f"  built with torch  : {report['built_with_torch']}")
        print(f"  CUDA              : {report['cuda_version'] or 'not built'}"
              + (f" (architectures {report['cuda_archs']})" if report["cuda_archs"] else ""))
        print(f"  CPU kernels       : {report['cpu_capability']} "
              f"(this CPU supports: {', '.join(report['cpu_capabilities'])})")
    else:
        print(f"  compiled extension: not available ({report['extension_error']})")
    print(f"  running torch     : {report['torch']} (CUDA {report['torch_cuda'] or 'none'})")
    print(f"  requested backend : {report['requested_backend']}")
    for device, backend in report["devices"].items():
        print(f"  {device:<18}: {backend}")
    return 0


def _bench(args) -> int:
    from . import bench

    bench.main(device=args.device, quick=args.quick, json_path=args.json, ops=args.ops,
               compile_baseline=not args.no_compile, samplers=not args.no_samplers)
    return 0


def _demo(args) -> int:
    from . import demo

    report = demo.run(steps=args.steps, n_samples=args.samples, sampler_steps=args.sampler_steps,
                      device=args.device, seed=args.seed, out=None if args.no_plot else args.out,
                      progress=not args.no_progress)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scorekern", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train a score model on a 2-D mixture, sample it, report quality and speed")
    p.add_argument("--steps", type=int, default=12000, help="training steps (default 12000, about a minute on 2 cores)")
    p.add_argument("--samples", type=int, default=2000, help="points drawn by each sampler")
    p.add_argument("--sampler-steps", type=int, default=1000, help="the PC sampler's N (and annealed Langevin's total)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available, else cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="scorekern-demo.png", help="where to write the figure")
    p.add_argument("--no-plot", action="store_true", help="write no figure")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the report to PATH")
    p.set_defaults(run=_demo)
    p = sub.add_parser("info", help="how scorekern was built and which backend each device uses")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=_info)
    p = sub.add_parser("bench", help="throughput of every op: fused, eager twin, torch.compile twin, copy")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available, else cpu)")
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats; no torch.compile (seconds)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the records to PATH")
    p.add_argument("--ops", nargs="*", default=None, help="only these ops")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    p.add_argument("--no-samplers", action="store_true", help="skip the whole-sampler runs")
    p.set_defaults(run=_bench)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
