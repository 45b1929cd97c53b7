"""Command line: ``python -m scorekern info`` and ``python -m scorekern bench``."""

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scorekern", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
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
