"""The pretrained-backbone path with the real libraries, timm and torchvision, in their own venv.

The shared test environment cannot import torchvision: a torchvision wheel works only beside the
torch build it was made for, and the shared environment holds the local CPU torch 2.13.0. So
this test makes, once per session, a venv under build/ with ``pip install torch==2.14.1
torchvision==0.29.1 timm`` whose own packages come first and the shared environment's after them
(a .pth file: hydra, pandas, pytest, ... without installing them twice). There it runs the
default project's backbone tests (the timm and torchvision ones do not skip there) and a short
training run of ``model=resnet18_pretrained`` from timm's ``test_resnet`` weights written to a
local file, and checks that the trained model's frozen backbone is those weights.

pip takes the wheels from wherever pip is configured to look: a machine with the wheels on local
disk installs them in about a minute; elsewhere pip downloads some 5.6 GB (torch 2.14.1 is a
CUDA build), and without a network the test is skipped, saying why.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .conftest import TEMPLATE_ROOT, render_project, run
from .matrix import DEFAULTS

PINS = ["torch==2.14.1", "torchvision==0.29.1", "timm"]  # a torchvision that imports on CPU


@pytest.fixture(scope="session")
def vision_bin() -> Path:
    """The bin/ of a venv with torch, torchvision and timm first, then this environment's."""
    venv = TEMPLATE_ROOT / "build" / "vision-venv"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    bin_dir = venv / "bin"
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q", *PINS]
    proc = subprocess.run(pip, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"cannot install {' '.join(PINS)} here ({last})")
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run(
        [str(bin_dir / "python"), "-c", where], capture_output=True, text=True, check=True
    ).stdout.strip()
    shared = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    # Processed after the venv's own: its torch shadows the shared one, the rest is shared.
    (Path(site) / "zz_shared_test_env.pth").write_text("".join(f"{p}\n" for p in sorted(shared)))
    return bin_dir


@pytest.mark.slow
def test_timm_and_torchvision_backbones_load_local_weights_and_fine_tune(
    vision_bin, template_snapshot, tmp_path
):
    project = tmp_path / "project"  # a render of its own: the training run writes data/ there
    render_project(template_snapshot, project, dict(DEFAULTS))
    package = DEFAULTS["package_name"]
    python = str(vision_bin / "python")
    src = {"PYTHONPATH": str(project / "src")}  # the project's commands, not installed

    # The project's backbone tests, the timm and torchvision ones included: none may skip.
    cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "-n", "0"]
    cmd += ["-m", "not distributed"]  # DDP: tested in the shared environment, as the rest
    proc = run([*cmd, "tests/test_backbones.py"], cwd=project, bin_dir=vision_bin)
    assert "passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout

    # A short fine-tuning run from timm's test_resnet weights in a local file (seeded).
    weights = project / "test_resnet.pt"
    write = (
        "import sys, timm, torch; torch.manual_seed(0); "
        "torch.save(timm.create_model('test_resnet').state_dict(), sys.argv[1])"
    )
    run([python, "-c", write, str(weights)], cwd=project, bin_dir=vision_bin)
    run([python, "-m", f"{package}.data.prepare"], cwd=project, bin_dir=vision_bin, **src)
    run([python, "-m", f"{package}.data.validate"], cwd=project, bin_dir=vision_bin, **src)
    out = project / "outputs" / "vision"
    train = [
        "model=resnet18_pretrained", "model.name=test_resnet", f"model.weights={weights}",
        "model.freeze_backbone=true", "logger=none", "trainer.max_epochs=1",
        "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "trainer.test_after_fit=false", "trainer.enable_progress_bar=false",
        f"paths.output_dir={out}",
    ]  # fmt: skip
    run([python, "-m", f"{package}.train", *train], cwd=project, bin_dir=vision_bin, **src)
    check = (
        "import sys, torch; saved = torch.load(sys.argv[1], weights_only=True)['model']; "
        "file = torch.load(sys.argv[2], weights_only=True); "
        "inner = {k[9:]: v for k, v in saved.items() if k.startswith('backbone.')}; "
        "assert inner and all(torch.equal(v, file[k]) for k, v in inner.items()), 'not loaded'; "
        "print(len(inner))"
    )
    last = out / "checkpoints" / "last.pt"
    proc = run([python, "-c", check, str(last), str(weights)], cwd=project, bin_dir=vision_bin)
    assert int(proc.stdout) > 10  # every tensor of the backbone, batch-norm statistics included
