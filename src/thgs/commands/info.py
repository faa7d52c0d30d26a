"""``thgs info``: versions, the device thgs will use, gsplat, and the available body models."""

from __future__ import annotations

import argparse
import json
import platform
import sys

NAME = "info"
HELP = "show versions, the compute device, gsplat status and available body models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def collect() -> dict:
    import torch

    from thgs import __version__
    from thgs.body.registry import body_model_status
    from thgs.render import gsplat_backend
    from thgs.render.base import available_backends
    from thgs.utils.device import default_device, gsplat_status

    try:
        device = default_device()
    except RuntimeError as exc:  # THGS_DEVICE names a device that does not exist
        from thgs.cli import UserError

        raise UserError(f"THGS_DEVICE: {exc}") from None
    info = {
        "thgs": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda": torch.version.cuda,
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "gsplat": gsplat_status(),
        "render_backends": available_backends(device),
        "gsplat_unusable": gsplat_backend.unavailable_reason(),
        "body_models": body_model_status(),
    }
    return info


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        json.dump(info, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    print(f"thgs {info['thgs']}  (python {info['python']}, torch {info['torch']}, CUDA {info['torch_cuda']})")
    print(f"device:   {info['device']}" + (f"  ({info['gpu']})" if info["gpu"] else ""))
    g = info["gsplat"]
    print(f"gsplat:   {'importable ' + str(g['version']) if g['importable'] else 'not available'}; {g['detail']}")
    print(f"renderers: {', '.join(info['render_backends'])}")
    if info["cuda_available"] and info["gsplat_unusable"]:
        print(f"          gsplat cannot rasterize: {info['gsplat_unusable']} (backend auto uses the reference "
              "rasterizer)")
    print("body models:")
    for name, st in info["body_models"].items():
        mark = "yes" if st.get("available") else "no "
        print(f"  {name:6s} {mark}  {st.get('detail', '')}")
        for p in st.get("searched", []):
            print(f"           looked in: {p}")
    return 0
