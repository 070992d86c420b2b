#!/usr/bin/env bash
# Idempotent set-up: .venv with pinned torch, the genas package, and the Fashion-MNIST data.
# Re-running is fast: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_PIN="torch==2.14.1 torchvision==0.29.1"
STAMP="$VENV/.genas-setup"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  if ! "$VENV/bin/python" -c 'import torch, torchvision, sys; sys.exit(not (torch.__version__.startswith("2.14.1") and torchvision.__version__.startswith("0.29.1")))' 2>/dev/null; then
    echo "setup: installing $TORCH_PIN (about 90 s from the local mirror)"
    "$VENV/bin/pip" install -q --disable-pip-version-check $TORCH_PIN 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -c 'import torch, torchvision' || { echo "setup: torch install failed" >&2; exit 1; }
  fi
  echo "setup: installing genas (editable) and test tools"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c 'import genas.cli' || { echo "setup: genas install failed" >&2; exit 1; }
  echo "$want" > "$STAMP"
fi

FMNIST=/usr/share/datasets/fashion-mnist
CACHE="$HOME/.cache/genas/fashion-mnist"
need_apt=()
[ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || [ -d "$CACHE/FashionMNIST/raw" ] || need_apt+=(dataset-fashion-mnist)
command -v dot >/dev/null || need_apt+=(graphviz)
# `setup.sh --test` (make test): headless Chromium for the HTML report's screenshot test
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: ${need_apt[*]}"
    apt-get install -y -qq "${need_apt[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${need_apt[@]}" >/dev/null; }
  else
    case " ${need_apt[*]} " in *" graphviz "*)
      echo "setup: graphviz's \`dot\` is missing and apt-get is not usable here; cell diagrams will be skipped";; esac
    case " ${need_apt[*]} " in *" dataset-fashion-mnist "*)
      echo "setup: Fashion-MNIST is not in $FMNIST and apt-get is not usable here (needs root on Debian);"
      echo "setup: falling back to torchvision's download into $CACHE"
      "$VENV/bin/python" -c "import torchvision; torchvision.datasets.FashionMNIST('$CACHE', train=True, download=True); torchvision.datasets.FashionMNIST('$CACHE', train=False, download=True)";; esac
  fi
fi
