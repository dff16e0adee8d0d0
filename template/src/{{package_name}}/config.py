"""Where the Hydra configs live, and composing them outside an entry point.

Entry points use ``@entry_point("<command>")`` (``hydra.main`` over ``configs/<command>.yaml``,
whose command-line errors exit with code 2, and ``errors.reported``, which gives every other
error the user can fix its message and exit code); tests and notebooks use ``compose()``.
``python -m <package>.config`` writes ``params.yaml``, the composed default config that DVC's
stages run with (``make params``); ``--check`` fails when it is out of date.
"""

import difflib
import functools
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError, JobFailed, fail, reported

# src/<package>/config.py -> the project root, which holds configs/. Run commands from the root:
# the paths in configs/paths/ are relative to it.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = str(PROJECT_ROOT / "configs")


def as_dict(node: Any, resolve: bool = True) -> dict[str, Any]:
    """A config mapping as plain dicts and lists. OmegaConf.to_container's return type is a union
    of every container kind; this one says what a mapping gives, and fails on anything else."""
    container = OmegaConf.to_container(node, resolve=resolve)
    if not isinstance(container, dict):
        raise TypeError(f"expected a config mapping, got {type(container).__name__}")
    return cast(dict[str, Any], container)


def compose(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """The config an entry point would see with these command-line overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def entry_point(
    command: str, config_name: str | None = None, **reporting: Any
) -> Callable[[Callable[[DictConfig], None]], Callable[..., None]]:
    """``@entry_point("train")``: ``hydra.main`` over ``configs/train.yaml``, and its errors.

    ``config_name`` names another config (prepare and validate read ``train``'s). The command
    runs inside ``errors.reported(command, **reporting)``: the one place where errors become
    messages and exit codes (``reporting``: how this command words a data error).

    Hydra applies the command line's overrides before the entry point runs, and reports one it
    cannot apply (a misspelled key, an unknown option of a config group, bad syntax) itself, with
    exit code 1 and, for a key, the advice to add it with ``+``. Here such an error exits with
    code 2, as every config error does, in one paragraph; a misspelled key gets the keys it may
    have meant. ``HYDRA_FULL_ERROR=1`` keeps Hydra's own report (a traceback). In a sweep
    (``-m``), a job's error may let the next job run (``sweep_goes_on``).
    """
    from hydra import main as hydra_main

    def decorate(task: Callable[[DictConfig], None]) -> Callable[..., None]:
        name = config_name or command

        @functools.wraps(task)  # Hydra names the job after the function it unwraps
        def reporting_task(cfg: DictConfig) -> None:
            try:
                with reported(command, **reporting):  # inside the job: Hydra adds nothing to it
                    return task(cfg)
            except SystemExit as stop:
                if sweep_goes_on(stop):
                    assert isinstance(stop.code, int)  # sweep_goes_on: an exit code 1..127
                    raise JobFailed(stop.code) from None
                raise

        run = hydra_main(version_base="1.3", config_path=CONFIG_DIR, config_name=name)(
            reporting_task
        )

        @functools.wraps(task)
        def main(cfg: DictConfig | None = None) -> None:
            return _run(run, cfg, command)

        return main

    return decorate


def sweep_goes_on(stop: SystemExit) -> bool:
    """Whether a sweep (``-m``) goes on to its next job after this one exited with an error.

    It does in one process, as Hydra's own launcher does after a job raises: the job's message
    is printed, Hydra records it as failed, and the command exits with the first failed job's
    code once every job ran. It does not under torchrun, where a job may have failed on one
    rank only: the process exits and torchrun stops the other ranks. Nor after a signal
    (exit code 128 + N): Ctrl-C, or a scheduler's SIGTERM, stops the whole sweep.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    code = stop.code
    return (
        isinstance(code, int)
        and 0 < code < 128
        and int(os.environ.get("WORLD_SIZE", "1")) == 1
        and HydraConfig.initialized()
        and HydraConfig.get().mode == RunMode.MULTIRUN
    )


def _run(run: Callable[..., None], cfg: DictConfig | None, command: str) -> None:
    """Hydra's main; its command-line errors exit with code 2, as every config error does. A
    sweep whose jobs failed exits with the first failed job's code (``sweep_goes_on``)."""
    try:
        return _run_hydra(run, cfg, command)
    except JobFailed as failed:
        print(
            f"{command}: error: a job of the sweep failed (its message is above; the first "
            f"failed job's exit code is {failed.exit_code}); the other jobs ran: summary.csv in "
            "the sweep folder says how each one ended.",
            file=sys.stderr,
        )
        raise SystemExit(failed.exit_code) from None


def _run_hydra(run: Callable[..., None], cfg: DictConfig | None, command: str) -> None:
    from hydra.errors import ConfigCompositionException, OverrideParseException

    previous = os.environ.get("HYDRA_FULL_ERROR")
    if cfg is not None or previous == "1":
        return run(cfg)
    # Hydra raises, instead of printing and exiting, while this is set.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return run()
    except (ConfigCompositionException, OverrideParseException) as error:
        fail(command, override_error(error), 2)
    finally:
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous


def check_settings(cfg: DictConfig, command: str) -> None:
    """Every setting ``command`` reads (``settings.py``), first: on a broken one, exit with code
    2, leaving nothing behind, not even the folder Hydra made for this run."""
    from .settings import check

    try:
        check(cfg, command)
    except ConfigError as error:
        _remove_empty_run_folder(command)
        fail(command, str(error), error.exit_code)
    check_output_folders(cfg, command)


def check_output_folders(cfg: DictConfig, command: str) -> None:
    """The folders ``command`` writes into (``OUTPUT_FOLDERS``) can be written: else exit 2, as
    for any config error, leaving nothing behind."""
    from .errors import ConfigError

    try:
        for key in OUTPUT_FOLDERS.get(command, ()):
            check_writable(OmegaConf.select(cfg, key), key)
    except ConfigError as error:
        _remove_empty_run_folder(command)
        fail(command, str(error), error.exit_code)


#: The folders each command writes into: checked with the settings, before data is read, a
#: tracking run opens or training starts, so that an unwritable one is a config error (exit 2).
OUTPUT_FOLDERS = {
    "train": ("paths.output_dir",),
    "tune": ("hparams_search.output_dir",),
    "cv": ("paths.output_dir",),
    "evaluate": ("paths.reports_dir",),
    "validate": ("paths.reports_dir",),
}


def check_writable(folder: Any, key: str) -> None:
    """Raise ``ConfigError`` naming ``key``, the folder and the cause, unless a file can be
    made in ``folder`` (or in its nearest existing parent, where it would be created)."""
    import tempfile

    if folder is None or folder == "":
        return
    path = Path(str(folder))
    existing = next(p for p in [path, *path.parents] if p.exists() or p == Path(p.anchor or "."))
    if not existing.is_dir():
        raise ConfigError(
            f"{key}={folder} cannot be used: {existing} is a file, not a folder. Set {key} to "
            "a folder this user can write to."
        )
    try:  # os.access says yes to root even on a read-only file system: try for real
        os.rmdir(tempfile.mkdtemp(prefix=".writable-", dir=existing))
    except OSError as error:
        raise ConfigError(
            f"{key}={folder} is not writable ({existing}: {error.strerror}). Set {key} to a "
            "folder this user can write to."
        ) from None


def _remove_empty_run_folder(command: str) -> None:
    """Hydra's folder for this run, if it holds nothing but Hydra's own files."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    folder = Path(HydraConfig.get().runtime.output_dir)
    if holds_only_hydra_files(folder, command):
        shutil.rmtree(folder, ignore_errors=True)


def holds_only_hydra_files(folder: Path, command: str) -> bool:
    """Whether a run folder holds nothing but what Hydra writes: ``.hydra/`` and the log."""
    return folder.is_dir() and {p.name for p in folder.iterdir()} <= {".hydra", f"{command}.log"}


def override_error(error: Exception) -> str:
    """Hydra's complaint about an override, in one line; for an unknown key, what was meant."""
    text = str(error)
    key = re.match(r"Could not override '([^']+)'", text)
    if key is None:  # an unknown option of a group, bad syntax: Hydra's words, in one line
        text = text.split("Config search path:")[0].strip()
        text = re.sub(r":\s*\n\s*", ": ", text)  # "Available options in 'optimizer': adamw..."
        text = re.sub(r"\n\t", ", ", text)
        text = re.sub(r"(?<=[^.:])\s*\n\s*", ". ", text)  # one sentence per line of Hydra's
        return " ".join(text.split())
    wrong = key.group(1)
    value = text.split(f"+{wrong}=", 1)[1].splitlines()[0] if f"+{wrong}=" in text else "..."
    keys = _config_keys(getattr(error.__cause__, "parent_node", None))
    if not wrong.startswith("hydra."):
        keys = [k for k in keys if not k.startswith("hydra.")]
    meant = _closest(wrong, keys)
    if meant:
        hint = f"did you mean {' or '.join(f'{k}={value}' for k in meant)}?"
    else:
        hint = "see configs/ (or `--cfg job`) for the keys it has."
    return (
        f"the config has no key {wrong}: {hint} (A key of your own, such as an argument of your "
        f"own model, is added with a leading +: +{wrong}={value})"
    )


def _closest(wrong: str, keys: list[str]) -> list[str]:
    """The keys most like ``wrong``: the best match and any nearly as good (at most three)."""
    scores = {k: difflib.SequenceMatcher(None, wrong, k).ratio() for k in set(keys)}
    best = max(scores.values(), default=0.0)
    close = [k for k, score in scores.items() if score >= max(0.6, best - 0.1)]
    return sorted(close, key=lambda k: -scores[k])[:3]


def _config_keys(node: Any) -> list[str]:
    """Every dotted key of the config that ``node`` belongs to (groups and leaves)."""
    if node is None:
        return []
    try:
        root = node._get_root()  # OmegaConf keeps the whole tree from any node
        tree = OmegaConf.to_container(root, resolve=False)
    except Exception:  # not a config node: no suggestion rather than a second error
        return []

    def walk(value: Any, prefix: str) -> list[str]:
        if not isinstance(value, dict):
            return []
        keys = []
        for name, child in value.items():
            keys += [f"{prefix}{name}", *walk(child, f"{prefix}{name}.")]
        return keys

    return walk(tree, "")


# ---- the schema walk (the schema itself, and the rules, are in settings.py) -------------------


def check_schema(schema: type, node: Any, prefix: str = "", *, closed: bool = False) -> None:
    """Raise one ``ConfigError`` naming every key of ``node`` that breaks ``schema``."""
    from .errors import ConfigError

    problems = schema_problems(schema, node, prefix, closed=closed)
    if any(NOT_A_KEY in problem for problem in problems):
        problems.append(
            "(A key of your own goes into its section's dataclass in settings.py, and into "
            "the section's YAML file.)"
        )
    if problems:
        raise ConfigError(" ".join(problems))


NOT_A_KEY = " is not a key of "


def schema_problems(schema: type, node: Any, prefix: str = "", *, closed: bool = False) -> list:
    """What is wrong with ``node`` (the section at ``prefix``) by ``schema``, key by key: a
    wrong type or range (the field's rule), a key a closed section does not have. Keys the
    node does not have are not checked. OmegaConf's own merge of a structured config is not
    used: it stops at the first error, says it in its words and knows no ranges."""
    from omegaconf import DictConfig, ListConfig
    from omegaconf.errors import OmegaConfBaseException

    from .errors import ConfigError

    if not isinstance(node, Mapping):
        return [f"{prefix[:-1]} must be a section of keys, got {node!r}."]
    fields = _schema_fields(schema)
    problems = []
    for name in node:
        key = f"{prefix}{name}"
        if name not in fields:
            problems += [_unknown_key(key, prefix, fields)] if closed else []
            continue
        rule, section, section_closed = fields[name]
        try:
            value = node[name]
            if isinstance(value, (DictConfig, ListConfig)) and section is None:
                value = OmegaConf.to_container(value, resolve=True)
        except OmegaConfBaseException as error:  # an interpolation that cannot be resolved
            problems.append(f"{key} cannot be read: {str(error).splitlines()[0]}")
            continue
        if section is not None:
            problems += schema_problems(section, value, f"{key}.", closed=section_closed)
        elif rule is not None:
            try:
                rule(value, key)
            except ConfigError as error:
                problems.append(str(error))
    return problems


def _unknown_key(key: str, prefix: str, fields: Mapping[str, Any]) -> str:
    meant = _closest(key, [f"{prefix}{name}" for name in fields])
    hint = f"did you mean {' or '.join(meant)}?" if meant else f"its keys: {', '.join(fields)}."
    return f"{key}{NOT_A_KEY}{prefix[:-1]}: {hint}"


@functools.cache
def _schema_fields(schema: type) -> dict[str, tuple[Any, type | None, bool]]:
    """Each field's (rule, the schema of its section or None, whether that section is closed):
    a dataclass field is a closed section; ``metadata={"open": known}`` an open one."""
    import dataclasses

    fields: dict[str, tuple[Any, type | None, bool]] = {}
    for f in dataclasses.fields(schema):  # f.type: the annotation (settings.py has no strings)
        if "open" in f.metadata:
            if f.metadata["open"] is not None:
                fields[f.name] = (None, f.metadata["open"], False)
        elif isinstance(f.type, type) and dataclasses.is_dataclass(f.type):
            fields[f.name] = (None, f.type, True)
        else:
            fields[f.name] = (f.metadata.get("rule") or _type_rule(f.type), None, False)
    return fields


def _type_rule(hint: Any) -> Any:
    """The rule of a field with none of its own: its type's (None: any value)."""
    import types
    import typing

    from . import settings

    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        inner = _type_rule(next(a for a in args if a is not type(None)))
        return None if inner is None else lambda v, k: v if v is None else inner(v, k)
    return {
        bool: settings.boolean,
        int: settings.integer(),
        float: settings.number(),
        str: settings.text,
        list: settings.rule("a list", lambda v: isinstance(v, list)),
        dict: settings.rule("a mapping", lambda v: isinstance(v, dict)),
    }.get(typing.get_origin(hint) or hint)


def schema_rules(schema: type, prefix: str = "") -> dict[str, Any]:
    """Every dotted key of ``schema`` (and of its open sections' known keys) with a rule of its
    own: a range or a set of values, not only a type."""
    import dataclasses

    rules: dict[str, Any] = {}
    for f in dataclasses.fields(schema):
        key, section = f"{prefix}{f.name}", f.metadata.get("open")
        section = (
            f.type if isinstance(f.type, type) and dataclasses.is_dataclass(f.type) else section
        )
        if section is not None:
            rules |= schema_rules(section, f"{key}.")
        elif f.metadata.get("rule") is not None:
            rules[key] = f.metadata["rule"]
    return rules


def register_schemas() -> None:
    """Each command's schema in Hydra's ConfigStore, as ``schema/<command>``: a Hydra app of
    your own can name it in its defaults list to have Hydra type its config as it composes."""
    from hydra.core.config_store import ConfigStore

    from .settings import SCHEMAS

    for name, schema in SCHEMAS.items():
        ConfigStore.instance().store(group="schema", name=name, node=schema)


def params_yaml(overrides: Sequence[str] = ()) -> str:
    """The composed, resolved config as DVC writes it to params.yaml (`dvc exp run -S ...`).

    It is the ``evaluate`` config: everything of ``train`` plus the evaluation settings, so
    every stage of the pipeline reads its keys from one file.
    """
    config = compose(overrides, config_name="evaluate")
    OmegaConf.resolve(config)
    return OmegaConf.to_yaml(config)


def main(argv: Sequence[str]) -> int:
    """``python -m <package>.config [--check] [params.yaml]``: write, or check, params.yaml."""
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    target = Path(paths[0] if paths else "params.yaml")
    expected = params_yaml()
    if not check:
        target.write_text(expected, encoding="utf-8")
        print(f"wrote {target}")
        return 0
    if not target.exists() or target.read_text(encoding="utf-8") != expected:
        print(
            f"{target} does not match the composed configs/ (it is what DVC runs with): "
            "run `make params` and commit it. It replaces the values of an experiment "
            "(`dvc exp run -S key=value`) with those of configs/: to keep them, write them "
            "into configs/ first.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
