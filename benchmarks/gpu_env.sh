# Source on a GPU machine that has torch + CUDA but no thgs install:
#   . benchmarks/gpu_env.sh
# Installs carried wheels from .whl/ into /tmp/site (no network), puts src/ on PYTHONPATH, points the
# gsplat JIT cache at .gsx/ (a build kept there is reused; with only a copied gsplat_cuda.so torch's JIT
# may still rebuild, 75-100 s on a bare machine) and
# LPIPS at .lpw/ (alexnet.ckpt) when present.
set -e
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 MAX_JOBS=16
mkdir -p "$PWD/.gsx"
export TORCH_EXTENSIONS_DIR="$PWD/.gsx"
[ -d .lpw ] && export THGS_LPIPS_WEIGHTS_DIR="$PWD/.lpw"
export OUT="${OUT:-$PWD/out/gpu}"
mkdir -p "$OUT"
python3 -c "import torch, gsplat; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'gsplat', gsplat.__version__)"
set +e
[ -d .thgscache ] && export THGS_CACHE_DIR="$PWD/.thgscache"
