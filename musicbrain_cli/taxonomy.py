"""Label taxonomy: the label groups a data set uses and the model predicts.

A taxonomy is a JSON file (``taxonomy.json`` in every data set, and inside every model
config)::

    {"version": 1,
     "groups": [
        {"name": "source", "labels": ["human", "ai"], "exclusive": true},
        {"name": "generator", "labels": ["notagen-small", "notagen-large"], "exclusive": true},
        {"name": "period", "labels": ["Baroque", "Classical", "Romantic"], "exclusive": true},
        ...]}

Each label gets one sigmoid output; the flat output order is the groups in file order, the
labels of each group in file order. Detection (AI or human) is the ``source/ai`` output.

Manifest cells are measured against a group with :meth:`Taxonomy.encode`:

- ``""`` (empty): unknown. Every label of the group is masked out of the loss, never
  treated as a negative (a clip whose composer is unknown says nothing about composers).
- ``"-"``: known to be none of the group's labels (e.g. the generator of a human piece):
  every label of the group is a known negative.
- ``"a"`` or ``"a;b"``: those labels are positive, the group's others negative. An
  exclusive group accepts one label only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from musicbrain_cli.errors import TaxonomyError

#: The groups every MusicBrain taxonomy is expected to have, in this order.
STANDARD_GROUPS = ("source", "generator", "period", "composer", "instrumentation")
#: The detection output: the ``ai`` label of the ``source`` group.
DETECTION_LABEL = "source/ai"
#: The group whose predicted label is the verdict (human or ai).
DETECTION_GROUP = DETECTION_LABEL.split("/")[0]
#: The groups that attribute style (every standard group but the AI/human one).
STYLE_GROUPS = ("generator", "period", "composer", "instrumentation")
UNKNOWN = ""
NONE = "-"
SEPARATOR = ";"
TAXONOMY_VERSION = 1

#: How a report names each group to a reader who never saw the taxonomy (session 28 audit:
#: ``source/human`` read as jargon, or as a verdict, in an expert's hands).
GROUP_TITLES = {"source": "AI-or-human output",
                "generator": "Generator", "period": "Period", "composer": "Composer",
                "instrumentation": "Instrumentation"}


def display_label(name: str) -> str:
    """``"period/Baroque"`` -> ``"Period: Baroque"``; ``"source/ai"`` -> ``"AI-or-human
    output: AI"``. A name without a group, or of a group not in
    :data:`GROUP_TITLES`, is returned with its first ``/`` shown as ``: ``."""
    group, sep, label = str(name).partition("/")
    if not sep:
        return str(name)
    if group == DETECTION_GROUP and label == "ai":
        label = "AI"
    return f"{GROUP_TITLES.get(group, group)}: {label}"


@dataclass(frozen=True)
class LabelGroup:
    name: str
    labels: tuple[str, ...]
    exclusive: bool = False

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise TaxonomyError(f"invalid label group name {self.name!r}")
        if not self.labels:
            raise TaxonomyError(f"label group {self.name!r} has no labels")
        if len(set(self.labels)) != len(self.labels):
            raise TaxonomyError(f"label group {self.name!r} repeats a label: {self.labels!r}")
        for label in self.labels:
            if not label or label in (NONE,) or SEPARATOR in label or "/" in label:
                raise TaxonomyError(f"invalid label {label!r} in group {self.name!r}")


@dataclass(frozen=True)
class Taxonomy:
    groups: tuple[LabelGroup, ...]

    def __post_init__(self) -> None:
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise TaxonomyError(f"taxonomy repeats a group name: {names!r}")
        if "source" in names:
            src = self.group("source")
            if set(src.labels) != {"human", "ai"}:
                raise TaxonomyError(
                    f"the 'source' group must hold exactly 'human' and 'ai', not {src.labels!r}"
                )

    # --- structure --------------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        """Flat output names, ``group/label``, in output order."""
        return [f"{g.name}/{label}" for g in self.groups for label in g.labels]

    @property
    def num_labels(self) -> int:
        return sum(len(g.labels) for g in self.groups)

    def group(self, name: str) -> LabelGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise TaxonomyError(f"no label group {name!r} in taxonomy (groups: {self.group_names})")

    @property
    def group_names(self) -> list[str]:
        return [g.name for g in self.groups]

    def group_slices(self) -> dict[str, slice]:
        """The slice of the flat output vector that belongs to each group."""
        out, start = {}, 0
        for g in self.groups:
            out[g.name] = slice(start, start + len(g.labels))
            start += len(g.labels)
        return out

    def index(self, flat_name: str) -> int:
        try:
            return self.labels.index(flat_name)
        except ValueError as exc:
            raise TaxonomyError(f"no label {flat_name!r} in taxonomy") from exc

    # --- encoding ---------------------------------------------------------------------

    def encode(self, row: Mapping[str, str]) -> tuple[np.ndarray, np.ndarray]:
        """Turn one manifest row's label cells into ``(targets, mask)``.

        Returns two float32 arrays of shape ``(num_labels,)``: targets in {0, 1} and a mask
        that is 1 where the target is known. Groups missing from ``row`` are unknown.
        """
        targets = np.zeros(self.num_labels, dtype=np.float32)
        mask = np.zeros(self.num_labels, dtype=np.float32)
        for g, sl in zip(self.groups, self.group_slices().values()):
            cell = (row.get(g.name) or UNKNOWN).strip()
            if cell == UNKNOWN:
                continue
            mask[sl] = 1.0
            if cell == NONE:
                continue
            names = [c.strip() for c in cell.split(SEPARATOR) if c.strip()]
            if g.exclusive and len(names) > 1:
                raise TaxonomyError(f"group {g.name!r} is exclusive but the cell holds {cell!r}")
            for name in names:
                if name not in g.labels:
                    raise TaxonomyError(
                        f"label {name!r} is not in group {g.name!r} (labels: {list(g.labels)})"
                    )
                targets[sl.start + g.labels.index(name)] = 1.0
        return targets, mask

    # --- combination ------------------------------------------------------------------

    def merge(self, other: "Taxonomy") -> "Taxonomy":
        """Union of two taxonomies: groups by name, labels appended in first-seen order."""
        merged: dict[str, LabelGroup] = {g.name: g for g in self.groups}
        order = [g.name for g in self.groups]
        for g in other.groups:
            if g.name not in merged:
                merged[g.name] = g
                order.append(g.name)
                continue
            mine = merged[g.name]
            if mine.exclusive != g.exclusive:
                raise TaxonomyError(
                    f"cannot merge group {g.name!r}: exclusive={mine.exclusive} vs {g.exclusive}"
                )
            labels = list(mine.labels) + [x for x in g.labels if x not in mine.labels]
            merged[g.name] = LabelGroup(g.name, tuple(labels), mine.exclusive)
        return Taxonomy(tuple(merged[n] for n in order))

    # --- serialisation ----------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "version": TAXONOMY_VERSION,
            "groups": [
                {"name": g.name, "labels": list(g.labels), "exclusive": g.exclusive}
                for g in self.groups
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "Taxonomy":
        try:
            version = int(data.get("version", TAXONOMY_VERSION))
            if version != TAXONOMY_VERSION:
                raise TaxonomyError(f"unsupported taxonomy version {version}")
            groups = tuple(
                LabelGroup(str(g["name"]), tuple(str(x) for x in g["labels"]),
                           bool(g.get("exclusive", False)))
                for g in data["groups"]
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TaxonomyError(f"malformed taxonomy: {exc!r}") from exc
        return cls(groups)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Taxonomy":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise TaxonomyError(f"cannot read taxonomy {str(path)!r}: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_groups(cls, groups: Iterable[tuple[str, Iterable[str], bool]]) -> "Taxonomy":
        return cls(tuple(LabelGroup(n, tuple(ls), ex) for n, ls, ex in groups))
