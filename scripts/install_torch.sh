#!/usr/bin/env bash
# Install torch into the given Python environment before the project itself, so that
# pip never resolves a bare `torch` requirement to the multi-GB CUDA wheels on a
# machine without a GPU.
#   usage: scripts/install_torch.sh PYTHON
# Env: TORCH_VERSION (default 2.13.0), TORCH_CPU_INDEX (PyTorch's CPU wheel index).
set -euo pipefail
py=${1:?usage: install_torch.sh PYTHON}
version=${TORCH_VERSION:-2.13.0}
cpu_index=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

if "$py" -c "import torch" 2>/dev/null; then
  echo "torch $("$py" -c 'import torch; print(torch.__version__)') already installed"
  exit 0
fi

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "GPU found: installing the default (CUDA) torch==$version"
  exec "$py" -m pip install "torch==$version"
fi

# No GPU. Use PyTorch's CPU index when it answers; a closed network fails its DNS
# lookup at once, and then a plain pin finds a CPU wheel in the local find-links.
if "$py" - "$cpu_index" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/", timeout=5)
PY
then
  echo "no GPU: installing CPU torch==$version from $cpu_index"
  exec "$py" -m pip install "torch==$version" --index-url "$cpu_index"
fi
echo "no GPU, CPU index unreachable: installing torch==$version from the configured indexes"
exec "$py" -m pip install "torch==$version"
