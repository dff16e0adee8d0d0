"""The how-to pages' commands, run as written on a rendered project."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from .conftest import run
from .matrix import package_name

DOCS = Path(__file__).resolve().parents[1] / "docs"

# docs/how-to/add-model.md leaves the network's body to the reader (`...`); a filled-in version
# of its TinyResNet, with no dropout argument (as many models of one's own have none).
TINY_RESNET = """
import torch
from torch import nn


class TinyResNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, kernel_size=3, padding=1)
        self.block = nn.Sequential(
            nn.Conv2d(width, width, kernel_size=3, padding=1), nn.ReLU(), nn.Dropout(0.3)
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(images))
        return self.head(x + self.block(x))
"""


def code_blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


@pytest.mark.slow
def test_add_model_commands_work_on_the_pages_own_example_model(default_project, tmp_path):
    page = DOCS / "how-to" / "add-model.md"
    pkg = package_name(default_project.answers)
    project = tmp_path / "project"
    shutil.copytree(default_project.path, project)
    models = project / "src" / pkg / "models"
    (models / "resnet.py").write_text(TINY_RESNET.lstrip(), encoding="utf-8")
    with (models / "__init__.py").open("a", encoding="utf-8") as init:
        init.write("from .resnet import TinyResNet  # noqa: E402\n")
    [config] = [b for b in code_blocks(page, "yaml") if "configs/model/resnet.yaml" in b]
    (project / "configs" / "model" / "resnet.yaml").write_text(
        config.replace("my_dl_project", pkg), encoding="utf-8"
    )
    commands = [
        line.split("#")[0].split()
        for block in code_blocks(page, "bash")
        for line in block.splitlines()
        if "debug=" in line
    ]
    assert [c[-1] for c in commands] == ["debug=fast_dev_run", "debug=overfit_batches"]
    env = {"PYTHONPATH": str(project / "src")}
    run([sys.executable, "-m", f"{pkg}.data.prepare"], cwd=project, **env)
    run([sys.executable, "-m", f"{pkg}.data.validate"], cwd=project, **env)  # train needs it
    for command in commands:
        assert command[:3] == ["python", "-m", "<package>.train"]
        # As documented, shortened (a few epochs) and kept out of the tracking store.
        short = ["logger=none", "trainer.max_epochs=3", f"hydra.run.dir={tmp_path}/run"]
        run([sys.executable, "-m", f"{pkg}.train", *command[3:], *short], cwd=project, **env)


@pytest.mark.slow
def test_add_a_task_pages_module_registers_and_keeps_the_contract(default_project, tmp_path):
    # docs/how-to/add-a-task.md: its module and its TASKS entry, as written, give a task the
    # package builds from a data config, that round-trips, and that the project's own tests
    # (tests/test_tasks.py: nothing outside tasks/ asks the kind) still accept.
    page = DOCS / "how-to" / "add-a-task.md"
    pkg = package_name(default_project.answers)
    project = tmp_path / "project"
    shutil.copytree(default_project.path, project)
    module, registration = code_blocks(page, "python")
    tasks = project / "src" / pkg / "tasks"
    (tasks / "ordinal.py").write_text(module, encoding="utf-8")
    init = (tasks / "__init__.py").read_text(encoding="utf-8")
    registered = re.sub(r"TASKS: dict\[.*?\n}\n", registration, init, count=1, flags=re.S)
    assert registered != init and '"ordinal": Ordinal' in registered
    (tasks / "__init__.py").write_text(registered, encoding="utf-8")
    [config] = [b for b in code_blocks(page, "yaml") if "configs/data/grades.yaml" in b]
    assert "task: ordinal" in config
    check = f"""
import numpy as np, torch
from omegaconf import OmegaConf
from {pkg} import tasks
task = tasks.for_data(OmegaConf.create({{"task": "ordinal", "num_classes": 5}}))
y = task.targets(np.array([0, 1, 4, 2]))
task.fit(y)
assert torch.allclose(task.decode(task.encode(y)), y.double().reshape(-1), atol=1e-5)
columns = task.columns(np.array([0.4, 3.6, 9.0]))
assert columns["prediction"].tolist() == [0, 4, 4], columns
assert task.kind == "regression" and task.answers_spec()["shape"] == ["n"]
"""
    env = {"PYTHONPATH": str(project / "src")}
    run([sys.executable, "-c", check], cwd=project, **env)
    run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_tasks.py"],
        cwd=project,
        **env,
    )


def draw_shapes(folder: Path, per_class: int = 20) -> None:
    """The user's own images: coloured circles, squares and triangles, RGB PNG and JPEG files of
    varied sizes (12 to 24 pixels), ``folder/<shape>/<n>.<png|jpg>``."""
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(0)
    for shape in ("circle", "square", "triangle"):
        (folder / shape).mkdir(parents=True)
        for n in range(per_class):
            size = rng.randint(12, 24)
            background = tuple(rng.randint(0, 80) for _ in range(3))
            colour = tuple(rng.randint(150, 255) for _ in range(3))
            image = Image.new("RGB", (size, size), background)
            draw = ImageDraw.Draw(image)
            margin = rng.randint(1, 3)
            box = (margin, margin, size - 1 - margin, size - 1 - margin)
            if shape == "circle":
                draw.ellipse(box, fill=colour)
            elif shape == "square":
                draw.rectangle(box, fill=colour)
            else:
                draw.polygon([(size // 2, margin), box[2:], (margin, box[3])], fill=colour)
            image.save(folder / shape / f"{n:02d}.{'jpg' if n % 2 else 'png'}")


@pytest.mark.slow
def test_own_data_pages_folder_of_images_runs_with_its_config_alone(default_project, tmp_path):
    # docs/how-to/own-data.md, "A folder of your own images": the page's data config, as
    # written, over a folder of the user's own images; prepare, validate, train and evaluate
    # with configs only (no code edited).
    page = DOCS / "how-to" / "own-data.md"
    pkg = package_name(default_project.answers)
    project = tmp_path / "project"
    shutil.copytree(default_project.path, project)
    [config] = [b for b in code_blocks(page, "yaml") if "configs/data/shapes.yaml" in b]
    (project / "configs" / "data" / "shapes.yaml").write_text(config, encoding="utf-8")
    source = re.search(r"^source: (\S+)", config, re.M).group(1)
    draw_shapes(project / source)
    commands = [
        line.split()
        for block in code_blocks(page, "bash")
        for line in block.splitlines()
        if "data=shapes" in line
    ]
    assert [c[2] for c in commands] == [f"<package>.{c}" for c in PIPELINE]
    env = {"PYTHONPATH": str(project / "src")}
    run_dir = tmp_path / "run"
    # Shortened (a few epochs) and kept out of the tracking store; evaluate reads the run.
    extra = {
        "train": ["logger=none", "trainer.max_epochs=3", f"paths.output_dir={run_dir}"],
        "evaluate": ["logger=none", f"ckpt_path={run_dir}/checkpoints/best.pt"],
        "predict": [f"ckpt_path={run_dir}/checkpoints/best.pt"],
    }
    # New images to predict: the page's input folder, drawn like the training ones.
    [predict_input] = [a[6:] for c in commands for a in c if a.startswith("input=")]
    draw_shapes(project / predict_input, per_class=2)
    for command, name in zip(commands, PIPELINE, strict=True):
        args = [a for a in command[3:] if not a.startswith("ckpt_path=")]
        run(
            [sys.executable, "-m", f"{pkg}.{name}", *args, *extra.get(name, [])], cwd=project, **env
        )
    processed = project / "data" / "processed"
    assert '"class_names": [\n    "circle",' in (processed / "images.json").read_text()
    assert (project / "reports" / "metrics.json").is_file()
    [output] = [a[7:] for c in commands for a in c if a.startswith("output=")]
    predictions = (project / output).read_text(encoding="utf-8").splitlines()
    assert len(predictions) == 1 + 6, predictions  # a header, one row per new image
    assert predictions[0].startswith("path,prediction,"), predictions[0]


PIPELINE = ("data.prepare", "data.validate", "train", "evaluate", "predict")


# A small corpus of support tickets, in three classes, for "Your own texts".
TICKET_WORDS = {
    "billing": "invoice charged twice refund payment card receipt price plan renewal",
    "bug": "crashes error freezes button broken page blank loading fails screen",
    "feature": "please add option export dark mode shortcut support would like",
}


def write_tickets(path: Path, per_class: int = 40) -> None:
    """Unique made-up tickets, ``text,label``, as the page's CSV has them."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for label, words in TICKET_WORDS.items():
        for n in range(per_class):
            picked = " ".join(rng.choice(words.split(), size=int(rng.integers(4, 12))))
            rows.append({"text": f"Ticket {label[0]}{n}: {picked}.", "label": label})
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.mark.slow
def test_own_data_pages_texts_run_with_their_config_alone(render, tmp_path):
    # docs/how-to/own-data.md, "Your own texts": the page's data config, as written, over a CSV
    # of the user's own texts; prepare, validate and train with configs only (no code edited).
    page = DOCS / "how-to" / "own-data.md"
    rendered = render({"task": "text_classification"})
    pkg = package_name(rendered.answers)
    project = tmp_path / "project"
    shutil.copytree(rendered.path, project)
    [config] = [b for b in code_blocks(page, "yaml") if "configs/data/tickets.yaml" in b]
    (project / "configs" / "data" / "tickets.yaml").write_text(config, encoding="utf-8")
    source = re.search(r"^source: (\S+)", config, re.M).group(1)
    write_tickets(project / source)
    commands = [
        line.split()
        for block in code_blocks(page, "bash")
        for line in block.splitlines()
        if "data=tickets" in line
    ]
    pipeline = ("data.prepare", "data.validate", "train", "evaluate", "predict")
    assert [c[2] for c in commands] == [f"<package>.{c}" for c in pipeline]
    env = {"PYTHONPATH": str(project / "src")}
    run_dir = tmp_path / "run"
    # Shortened (the small model, two epochs) and kept out of the tracking store.
    extra = {
        "train": [
            "logger=none",
            "model=transformer_small",
            "trainer.max_epochs=2",
            f"paths.output_dir={run_dir}",
        ],
        "evaluate": ["logger=none", f"ckpt_path={run_dir}/checkpoints/best.pt"],
        "predict": [f"ckpt_path={run_dir}/checkpoints/best.pt"],
    }
    # New texts to predict: the page's input file.
    [predict_input] = [a[6:] for c in commands for a in c if a.startswith("input=")]
    new_texts = ["the printer on floor two is jammed again", "please reset my password", "hello"]
    pd.DataFrame({"text": new_texts}).to_csv(project / predict_input, index=False)
    for command, name in zip(commands, pipeline, strict=True):
        args = [a for a in command[3:] if not a.startswith("ckpt_path=")]
        run(
            [sys.executable, "-m", f"{pkg}.{name}", *args, *extra.get(name, [])], cwd=project, **env
        )
    [output] = [a[7:] for c in commands for a in c if a.startswith("output=")]
    predictions = pd.read_csv(project / output)
    assert len(predictions) == len(new_texts)
    assert set(predictions["class_name"]) <= set(TICKET_WORDS)
    assert (project / "reports" / "evaluation.md").is_file()
    processed = project / "data" / "processed"
    record = json.loads((processed / "text.json").read_text(encoding="utf-8"))
    assert record["class_names"] == sorted(TICKET_WORDS)
    assert record["tokenizer"]["vocab_size"] <= 2000
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
