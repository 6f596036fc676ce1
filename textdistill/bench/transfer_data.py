"""The transfer benchmark's data: SST-2's training set split into L, D and U files.

SST-2's training sentences, each text once (a repeated text stays with its first
occurrence, so that no text can be in two parts), are shuffled with a seed and cut into:

* **L**, the labelled set the teacher and every student learn labels from;
* **D**, the dev set on which every choice is made (candidates, steps);
* **U**, the rest, written without its labels: the unlabeled pool.

The files live in ``<runs>/transfer-data-<digest>/``, the digest taken from their content:
rows name their files by path, so a different split gets other paths and retrains them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .dev_split import distinct_rows, shuffled, tsv_text, write_folder

LABELLED_FILE, DEV_FILE, UNLABELLED_FILE = "labelled.tsv", "dev.tsv", "unlabelled.tsv"


@dataclass(frozen=True)
class Split:
    """The three files and what they hold."""

    labelled: Path
    dev: Path
    unlabelled: Path
    sizes: dict[str, int]       # labelled, dev, unlabelled
    train_size: int             # rows of SST-2's training file
    duplicates_dropped: int     # rows whose text an earlier row already had


def write_split(train_file: Path, runs: Path, labelled: int, dev: int, seed: int) -> Split:
    """Split ``train_file`` (GLUE SST-2's ``train.tsv``) into L, D, U files under ``runs``;
    files already there with the same content are kept."""
    rows, read = distinct_rows(train_file)
    if labelled + dev >= len(rows):
        raise ValueError(f"{train_file}: {len(rows)} distinct sentences cannot hold "
                         f"{labelled} labelled + {dev} dev sentences and an unlabeled pool")
    rows_in_order = shuffled(rows, seed)
    parts = {LABELLED_FILE: rows_in_order[:labelled],
             DEV_FILE: rows_in_order[labelled:labelled + dev],
             UNLABELLED_FILE: rows_in_order[labelled + dev:]}
    folder = write_folder(runs, "transfer-data", {
        name: tsv_text(part, labelled=name != UNLABELLED_FILE) for name, part in parts.items()})
    split = Split(folder / LABELLED_FILE, folder / DEV_FILE, folder / UNLABELLED_FILE,
                  {"labelled": labelled, "dev": dev, "unlabelled": len(rows) - labelled - dev},
                  read, read - len(rows))
    check_split(split, train_file)
    return split


def split_texts(split: Split) -> dict[str, list[str]]:
    """The sentences of each part, as written."""
    out = {}
    for name, path in (("labelled", split.labelled), ("dev", split.dev),
                       ("unlabelled", split.unlabelled)):
        out[name] = [line.split("\t")[0] for line in
                     path.read_text(encoding="utf-8").splitlines()[1:]]
    return out


def check_split(split: Split, train_file: Path) -> None:
    """L, D and U share no text, together hold every text of ``train_file``, and L and D
    keep their labels.

    Raises:
        RuntimeError: they do not.
    """
    from ..data.transfer import text_key

    rows, _ = distinct_rows(train_file)
    parts = {name: {text_key([t]) for t in texts} for name, texts in split_texts(split).items()}
    sizes = {name: len(keys) for name, keys in parts.items()}
    if sizes != split.sizes:
        raise RuntimeError(f"transfer split: parts hold {sizes} distinct texts, expected "
                           f"{split.sizes}")
    union = set().union(*parts.values())
    if len(union) != sum(sizes.values()):
        raise RuntimeError("transfer split: L, D and U share texts")
    if union != {text_key([s]) for s, _ in rows}:
        raise RuntimeError(f"transfer split: L, D and U do not cover {train_file}")
    gold = {text_key([s]): y for s, y in rows}
    for path in (split.labelled, split.dev):
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            sentence, label = line.split("\t")
            if gold[text_key([sentence])] != label:
                raise RuntimeError(f"transfer split: {path.name} relabels {sentence!r}")
