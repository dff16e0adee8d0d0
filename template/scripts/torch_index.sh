#!/bin/sh
# Which build of PyTorch `make install` takes: prints the package index to install torch from, or
# nothing for PyPI's default build. Usage: sh scripts/torch_index.sh [auto|cpu|cu126|cu128|...|default]
#
#   auto     the CPU build where no NVIDIA driver answers (`nvidia-smi` missing or failing),
#            PyPI's default build otherwise (on Linux a CUDA build, on macOS the only one there is)
#   cpu      the CPU build: a fraction of the CUDA build's size (about 2 GB in .venv, not 6)
#   cu126, cu128, ..., rocm6.4, xpu    that build, from https://download.pytorch.org/whl/<build>
#   default  PyPI's build, whatever the machine has
#
# NVIDIA_SMI names the probe (default: nvidia-smi on PATH), for a driver installed off PATH.
set -eu

choice="${1:-auto}"
probe="${NVIDIA_SMI:-nvidia-smi}"
base="https://download.pytorch.org/whl"

case "$choice" in
    auto)
        if "$probe" -L >/dev/null 2>&1; then
            echo "torch: an NVIDIA driver answers ($probe): PyPI's default build" >&2
        else
            echo "torch: no NVIDIA driver answers ($probe): the CPU build (TORCH=default for PyPI's)" >&2
            echo "$base/cpu"
        fi
        ;;
    default) ;;
    cpu | cu[0-9]* | rocm[0-9]* | xpu) echo "$base/$choice" ;;
    *)
        echo "TORCH=$choice is not a PyTorch build this project knows: use auto, cpu, default, or a" \
            "build of https://download.pytorch.org/whl such as cu126, cu128 or rocm6.4" >&2
        exit 2
        ;;
esac
