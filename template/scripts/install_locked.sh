#!/bin/sh
# Installs the locked environment (uv.lock) into a virtual environment, with the build of PyTorch
# that TORCH chooses. `make install` runs it; so does the Dockerfile.
# Usage: VENV=.venv sh scripts/install_locked.sh [auto|cpu|cu128|...|default]
#
# uv.lock pins every package, with its hashes, for every platform. Its torch is PyPI's build,
# which on Linux needs NVIDIA's CUDA libraries (several GB). With TORCH=default (or `auto` on a
# machine whose NVIDIA driver answers) the lock is installed as it is. For any other build (the CPU
# one by default where no driver answers), the lock is installed without torch and those
# libraries, and then the same torch version from that build's index: every other package is
# exactly the locked one. The install is `uv pip install --require-hashes --no-deps` of what
# `uv export` writes; pip installs the same file the same way (docs/how-to/lock-dependencies.md).
#
# Settings, from the environment:
#   VENV=<folder>          the virtual environment (default .venv)
#   EXTRAS="dev ..."       the optional dependencies to install too (default dev; "" for none)
#   EDITABLE=0             skip installing the project itself (the Docker image sets PYTHONPATH)
#   TORCH_WHEELS=<folder>  torch from a folder of wheels instead of an index (a machine without
#                          internet access, or a build of your own)
set -eu

venv="${VENV:-.venv}"
extras="${EXTRAS-dev}"
requirements="$venv/requirements.lock.txt"

if [ ! -f uv.lock ]; then
    echo "uv.lock is missing: run 'make lock' (uv lock) to write it, then commit it" >&2
    exit 2
fi

index="$(sh scripts/torch_index.sh "${1:-auto}")"
skip=""
if [ -n "$index" ]; then
    # torch, and the packages that only its CUDA build needs: NVIDIA's libraries and triton.
    skip="torch $(sed -n -E 's/^name = "((nvidia|cuda)-[^"]*|triton)"$/\1/p' uv.lock)"
    version="$(sed -n '/^name = "torch"$/{n;s/^version = "\(.*\)"$/\1/p;}' uv.lock)"
    if [ -z "$version" ]; then
        echo "uv.lock has no torch: run 'make lock'" >&2
        exit 2
    fi
fi

set --
for extra in $extras; do
    set -- "$@" --extra "$extra"
done
for package in $skip; do
    set -- "$@" --no-emit-package "$package"
done
# --frozen: install the lock as it is, never re-resolve (`make lock-check` says if it is stale).
uv export --frozen --quiet --format requirements.txt --no-emit-project "$@" \
    --output-file "$requirements"
uv pip install --python "$venv/bin/python" --require-hashes --no-deps --requirement "$requirements"
if [ -n "$index" ]; then
    if [ -n "${TORCH_WHEELS:-}" ]; then
        where="--no-index --find-links $TORCH_WHEELS"
    else
        where="--index-url $index"
    fi
    # shellcheck disable=SC2086 # $where is two options
    uv pip install --python "$venv/bin/python" --no-deps $where "torch==$version"
fi
# The project itself, editable: its dependencies are all installed above.
if [ "${EDITABLE:-1}" != 0 ]; then
    uv pip install --python "$venv/bin/python" --no-deps --editable .
fi
