#!/bin/sh
# Run a command with the project's environment first on PATH: `sh scripts/in_venv.sh ruff check .`
#
# git runs the pre-commit hooks, and DVC its stages, with the PATH of the shell that called them,
# which holds .venv/bin only while the environment is activated (`source .venv/bin/activate`).
# The hooks (.pre-commit-config.yaml) and the stages (dvc.yaml) call their tools through this
# script, so `git commit` and `.venv/bin/dvc exp run` work without activating anything. Where
# there is no .venv (an environment made another way, a container), PATH stays as it is.
set -eu
venv_bin="$(dirname "$0")/../.venv/bin"
if [ -d "$venv_bin" ]; then
    PATH="$(cd "$venv_bin" && pwd):$PATH"
    export PATH
fi
exec "$@"
