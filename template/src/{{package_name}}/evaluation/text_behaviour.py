"""Behavioural tests on raw text (Ribeiro et al., CheckList): what ``behaviour.py`` does for rows
of numbers, for texts.

The transforms change the texts themselves; ``predict`` then tokenizes them again with the
checkpoint's tokenizer (a changed text may have another number of tokens, so the model sees a
new padded batch, never the old ids edited). A transform is a config mapping with a ``kind``:

Perturbations (robustness curves; ``level`` 0 leaves every text as it is):

- ``typos``: each letter, with probability ``level``, is swapped with the next character,
  deleted, or doubled by a random lowercase letter inserted after it;
- ``casing``: each word, with probability ``level``, is written in ``mode`` case (``upper``,
  the default, or ``lower``).

Label-preserving edits (invariance tests; they must not change the prediction):

- ``whitespace``: every space doubled, and a space at both ends;
- ``trailing_period``: a full stop at the end of texts that do not end with one;
- ``first_letter``: the case of the first letter swapped;
- ``synonyms``: whole words replaced by the ``words`` mapping (``{returns: gives}``);
- ``casing`` and ``typos`` as above, at ``level``.

Directional tests take ``append``: the sentence ``text`` added at the end of every text (a
sentence typical of one class should raise that class's log-odds). ``target_class`` is a class
index, a class name (``evaluation.class_names``), or ``predicted``.

Every random choice comes from the generator of the test's ``seed``: the same seed, the same
edits.
"""

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..tasks import Task
from .behaviour import _result

PredictTexts = Callable[[Sequence[str]], np.ndarray]
KINDS = ("typos", "casing", "whitespace", "trailing_period", "first_letter", "synonyms", "append")
LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def typos(text: str, rate: float, rng: np.random.Generator) -> str:
    """``text`` with a typo at each letter with probability ``rate``: a swap with the next
    character, a deletion, or an inserted letter."""
    chars = list(text)
    hit = rng.random(len(chars)) < rate
    kinds = rng.integers(0, 3, size=len(chars))
    inserted = rng.choice(LETTERS, size=len(chars))
    out: list[str] = []
    i = 0
    while i < len(chars):
        char = chars[i]
        if not (hit[i] and char.isalpha()):
            out.append(char)
        elif kinds[i] == 0 and i + 1 < len(chars):  # swap with the next character
            out += [chars[i + 1], char]
            i += 1
        elif kinds[i] == 1:  # delete
            pass
        else:  # insert a letter after it (and a swap at the very end)
            out += [char, str(inserted[i])]
        i += 1
    return "".join(out)


def casing(text: str, rate: float, rng: np.random.Generator, mode: str = "upper") -> str:
    """``text`` with each word, with probability ``rate``, in ``mode`` case (upper or lower)."""
    if mode not in ("upper", "lower"):
        raise ValueError(f"casing mode must be upper or lower, got {mode!r}")
    parts = re.split(r"(\s+)", text)  # words and the spaces between them, kept as they were
    hit = rng.random(len(parts)) < rate
    return "".join(
        (part.upper() if mode == "upper" else part.lower()) if hit[i] else part
        for i, part in enumerate(parts)
    )


def _synonyms(text: str, words: Mapping[str, str]) -> str:
    if not words:
        return text
    pattern = r"\b(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b"
    return re.sub(pattern, lambda match: words[match.group(0)], text)


def transform(texts: Sequence[str], spec: Mapping[str, Any], rng: np.random.Generator) -> list[str]:
    """Transformed copies of ``texts`` (see the module's docstring for the kinds)."""
    kind = spec["kind"]
    level = float(spec.get("level", 0.0))
    if kind == "typos":
        return [typos(t, level, rng) for t in texts]
    if kind == "casing":
        return [casing(t, level, rng, spec.get("mode", "upper")) for t in texts]
    if kind == "whitespace":
        return [f" {t.replace(' ', '  ')} " for t in texts]
    if kind == "trailing_period":
        return [t if t.rstrip().endswith(".") else t.rstrip() + "." for t in texts]
    if kind == "first_letter":
        return [re.sub(r"[^\W\d_]", lambda m: m.group(0).swapcase(), t, count=1) for t in texts]
    if kind == "synonyms":
        return [_synonyms(t, dict(spec.get("words") or {})) for t in texts]
    if kind == "append":
        return [f"{t.rstrip()} {spec['text']}" for t in texts]
    raise ValueError(f"unknown text transform kind {kind!r}: use one of {', '.join(KINDS)}")


def describe(spec: Mapping[str, Any]) -> str:
    """A text transform in words, for the report."""
    kind, level = spec["kind"], float(spec.get("level", 0.0))
    words = {
        "typos": f"a typo (swap, deletion, insertion) at {level:.0%} of the letters",
        "casing": f"{level:.0%} of the words in {spec.get('mode', 'upper')} case",
        "whitespace": "spaces doubled, a space at both ends",
        "trailing_period": "a full stop at the end",
        "first_letter": "the case of the first letter swapped",
        "synonyms": "words replaced: "
        + ", ".join(f"{a} -> {b}" for a, b in dict(spec.get("words") or {}).items()),
        "append": f"appended: {snippet(str(spec.get('text', '')), 60)!r}",
    }
    if kind not in words:
        raise ValueError(f"unknown text transform kind {kind!r}: use one of {', '.join(KINDS)}")
    return words[kind]


def snippet(text: str, width: int = 100) -> str:
    """``text`` on one line, cut at ``width`` characters, safe in a Markdown table cell."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 3].rstrip() + "..."


def _target(spec: Mapping[str, Any], class_names: Sequence[str] | None) -> Mapping[str, Any]:
    """``spec`` with a ``target_class`` given by name turned into its index."""
    target = spec.get("target_class", "predicted")
    if isinstance(target, str) and target != "predicted":
        names = [str(n) for n in class_names or []]
        if target not in names:
            raise ValueError(
                f"directional test {spec['name']!r}: target_class {target!r} is not a class "
                f"name ({names}); use a name, an index or predicted"
            )
        return {**spec, "target_class": names.index(target)}
    return spec


def perturbation_curve(
    predict: PredictTexts,
    texts: Sequence[str],
    y_true: np.ndarray,
    spec: Mapping[str, Any],
    seed: int,
    *,
    task: Task,
) -> dict[str, Any]:
    """The task's main metric at each ``level`` of one text transform."""
    levels = [float(level) for level in spec["levels"]]
    scores = []
    for level in levels:
        rng = np.random.default_rng(seed)
        changed = list(texts) if level == 0 else transform(texts, {**spec, "level": level}, rng)
        scores.append(task.main_score(predict(changed), y_true))
    return {"name": spec["name"], "kind": spec["kind"], "levels": levels, task.main_metric: scores}


def invariance_test(
    predict: PredictTexts,
    texts: Sequence[str],
    ids: np.ndarray,
    spec: Mapping[str, Any],
    seed: int,
    max_examples: int = 5,
    *,
    task: Task,
) -> dict[str, Any]:
    """A label-preserving edit that must not change the predicted class."""
    before = task.prediction(predict(texts))
    changed = transform(texts, spec["transform"], np.random.default_rng(seed))
    after = task.prediction(predict(changed))
    failed = task.changed(before, after, float(spec.get("tolerance", 0.0)))
    change = describe(spec["transform"])
    return _result(spec, failed, ids, before, after, max_examples, change, task.prediction_words)


def directional_test(
    predict: PredictTexts,
    texts: Sequence[str],
    ids: np.ndarray,
    spec: Mapping[str, Any],
    seed: int,
    max_examples: int = 5,
    class_names: Sequence[str] | None = None,
    *,
    task: Task,
) -> dict[str, Any]:
    """An edit that must move the log-odds of ``target_class`` one way (``expect``), by more
    than ``min_change`` (default 0), as ``behaviour.directional_test``."""
    expect = spec["expect"]
    if expect not in ("increase", "decrease"):
        raise ValueError(f"directional test {spec['name']!r}: expect must be increase or decrease")
    spec = _target(spec, class_names)
    original = predict(texts)
    changed = predict(transform(texts, spec["transform"], np.random.default_rng(seed)))
    before, after, output = task.watched(original, changed, spec)
    delta = after - before if expect == "increase" else before - after
    failed = ~(delta > float(spec.get("min_change", 0.0)))
    change = describe(spec["transform"])
    return _result(spec, failed, ids, before, after, max_examples, change, output)
