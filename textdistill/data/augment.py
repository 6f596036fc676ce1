"""Transfer-set augmentation: extra training sentences for the teacher to label.

Distillation does not need gold labels, only inputs the teacher can label, so the
student can learn from more sentences than the labelled set holds (Tang et al., 2019,
"Distilling Task-Specific Knowledge from BERT into Simple Neural Networks"; TinyBERT's
data augmentation, Jiao et al., 2020). :func:`augment_dataset` makes ``copies`` variants
of every training example by four perturbations:

* **masking**: each word becomes the tokenizer's mask token with ``mask_prob``;
* **replacement**: otherwise, a word that is a single whole-word vocabulary entry
  becomes one of its ``neighbours`` nearest neighbours (cosine similarity of the
  teacher's input word embeddings) with ``replace_prob``;
* **n-gram sampling**: with ``ngram_prob`` the variant is cut to a random contiguous
  span of ``ngram[0]``..``ngram[1]`` words;
* **concatenation**: with ``concat_prob`` the variant is followed by a variant of
  another training example, drawn at random from the split. Short training phrases
  become sentence-length inputs that mix two sentiments, and the teacher's soft target
  says how the parts combine, which the gold labels of the parts cannot.

Words are whitespace-separated; the two texts of a sentence pair are perturbed
independently. Each source row draws from its own ``random.Random`` seeded with
``(seed, row index)``, so the output depends only on the input and the config: the
``datasets`` fingerprint (and with it the map cache and the teacher-logit cache) is
the same on every run.

The variants keep their source's label value; it is not their label. The caller
drops it after tokenization (:func:`textdistill.build.build` sets it to -100, which the
hard loss ignores), so only the teacher's soft targets train on them.
"""

from __future__ import annotations

import random
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import datasets

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch

AUGMENTED_COLUMN = "augmented"
# Attempts at a variant that differs from its source before keeping a copy: short
# sentences at low rates often come out unchanged, and the bound keeps a config that can
# change nothing (every rate 0 for this row's words) from looping.
MAX_ATTEMPTS = 8
# Query rows per matrix product in the neighbour search: 1024 x 30k float32 similarities
# is ~120 MB, small enough for any machine and big enough to keep BLAS busy.
NEIGHBOUR_CHUNK = 1024


@dataclass(frozen=True)
class AugmentConfig:
    """How many augmented variants to make per training example, and how."""

    _section: typing.ClassVar[str] = "data.augment"

    copies: int = field(default=0, metadata={"help": (
        "Variants generated per training example; 0 turns augmentation off.")})
    mask_prob: float = field(default=0.1, metadata={"help": (
        "Probability that a word becomes the tokenizer's mask token.")})
    replace_prob: float = field(default=0.1, metadata={"help": (
        "Probability that a word not masked is replaced by one of its embedding "
        "neighbours. Only words that are one whole-word, alphabetic vocabulary entry are "
        "replaced; needs the teacher's word-embedding matrix.")})
    neighbours: int = field(default=10, metadata={"help": (
        "How many nearest neighbours (cosine similarity of the teacher's input word "
        "embeddings) a replacement is drawn from.")})
    ngram_prob: float = field(default=0.25, metadata={"help": (
        "Probability that a variant is cut to a random contiguous span of words (per text "
        "of a pair).")})
    ngram: list[int] = field(default_factory=lambda: [1, 5], metadata={"help": (
        "[min, max]: the cut span's length in words, uniform in [min, max] and clipped to "
        "the sentence; 1 <= min <= max.")})
    concat_prob: float = field(default=0.0, metadata={"help": (
        "Probability that a variant is followed by a variant of another example of the "
        "split, drawn uniformly (per text of a pair).")})
    seed: int = field(default=0, metadata={"help": (
        "Seed of the per-row random generators: the same seed gives the same variants.")})

    def __post_init__(self) -> None:
        for name in ("copies", "neighbours", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"data.augment.{name}: expected an integer, got {value!r}")
        for name in ("mask_prob", "replace_prob", "ngram_prob", "concat_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 <= value <= 1:
                raise ConfigError(f"data.augment.{name}: must be in [0, 1], got {value!r}")
        for name, minimum in (("copies", 0), ("seed", 0), ("neighbours", 1)):
            value = getattr(self, name)
            if value < minimum:
                raise ConfigError(f"data.augment.{name}: must be >= {minimum}, got {value}")
        self._check_ngram()
        if self.copies and not (self.mask_prob or self.replace_prob or self.ngram_prob
                                or self.concat_prob):
            raise ConfigError("data.augment.copies: with mask_prob, replace_prob, "
                              "ngram_prob and concat_prob all 0 every variant would copy its "
                              "source; raise one of them or set copies to 0")

    def _check_ngram(self) -> None:
        span = self.ngram
        if not isinstance(span, (list, tuple)) or len(span) != 2 \
                or any(isinstance(n, bool) or not isinstance(n, int) for n in span):
            raise ConfigError(f"data.augment.ngram: expected two integers [min, max], got "
                              f"{span!r}")
        low, high = span
        if not 1 <= low <= high:
            raise ConfigError(f"data.augment.ngram: need 1 <= min <= max, got {list(span)}")

    @property
    def enabled(self) -> bool:
        return self.copies > 0


# --------------------------------------------------------------------------- neighbours


def neighbour_table(words: Iterable[str], tokenizer: Any, embeddings: torch.Tensor,
                    k: int) -> dict[str, tuple[str, ...]]:
    """Each word's ``k`` nearest vocabulary words by cosine similarity of embeddings.

    Only words that the tokenizer keeps as one whole-word vocabulary entry get an
    entry, and the candidates are the vocabulary's whole-word alphabetic entries that
    are not special tokens (no ``##`` pieces, punctuation, numbers or ``[unused]``
    slots); a word is never its own neighbour. The search runs only for the words given
    (those in the data), in chunks, so ~15k words against a 30k x 384 matrix take
    seconds.

    Args:
        words: the words to look up (duplicates are fine).
        tokenizer: the tokenizer whose ids index ``embeddings``.
        embeddings: (V, H) input word-embedding matrix.
        k: neighbours per word.

    Returns:
        ``{word: (neighbour, ...)}``, nearest first, for the words that qualify; keys in
        sorted order, so the table (and any fingerprint hashed from it) is reproducible.
    """
    import torch

    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be a (V, H) matrix, got {tuple(embeddings.shape)}")
    size = embeddings.shape[0]
    special = set(tokenizer.all_special_ids)
    candidates = sorted(i for token, i in tokenizer.get_vocab().items()
                        if i < size and i not in special and token.isalpha())
    if len(candidates) < 2:
        return {}
    position = {token_id: p for p, token_id in enumerate(candidates)}

    words = sorted(set(words))
    ids = tokenizer(words, add_special_tokens=False)["input_ids"] if words else []
    # A word qualifies when it is one token that is itself a candidate ("Movie" -> "movie"
    # for an uncased vocabulary).
    query_words = [w for w, i in zip(words, ids) if len(i) == 1 and i[0] in position]
    query_ids = sorted({i[0] for i in ids if len(i) == 1 and i[0] in position})
    if not query_ids:
        return {}

    with torch.no_grad():
        vectors = embeddings.detach().float()
        vectors = torch.nn.functional.normalize(vectors[candidates], dim=-1)  # (Vc, H)
        rows = torch.as_tensor([position[i] for i in query_ids], device=vectors.device)
        k = min(k, len(candidates) - 1)
        found = []
        for start in range(0, len(rows), NEIGHBOUR_CHUNK):
            chunk = rows[start:start + NEIGHBOUR_CHUNK]
            sims = vectors[chunk] @ vectors.T  # (chunk, Vc)
            sims[torch.arange(len(chunk), device=sims.device), chunk] = float("-inf")
            found.append(sims.topk(k, dim=-1).indices.cpu())
        nearest = torch.cat(found).tolist()

    tokens = tokenizer.convert_ids_to_tokens(candidates)
    by_id = {token_id: tuple(tokens[p] for p in row) for token_id, row in zip(query_ids, nearest)}
    word_id = dict(zip(words, ids))
    return {w: by_id[word_id[w][0]] for w in query_words}


# --------------------------------------------------------------------------- variants


def _variant(words: list[str], rng: random.Random, config: AugmentConfig,
             mask_token: str | None, neighbours: dict[str, tuple[str, ...]]) -> list[str]:
    """One perturbed copy of ``words``: an n-gram cut, then per-word mask or replace."""
    if words and rng.random() < config.ngram_prob:
        low, high = config.ngram
        length = min(rng.randint(low, high), len(words))
        start = rng.randint(0, len(words) - length)
        words = words[start:start + length]
    out = []
    for word in words:
        if rng.random() < config.mask_prob:
            out.append(mask_token)
        elif rng.random() < config.replace_prob and word in neighbours:
            out.append(rng.choice(neighbours[word]))
        else:
            out.append(word)
    return out


def _augment_batch(batch: dict[str, list], indices: list[int], *, text_columns: list[str],
                   config: AugmentConfig, mask_token: str | None,
                   neighbours: dict[str, tuple[str, ...]],
                   partners: list[list[list[str]]] | None = None) -> dict[str, list]:
    """``config.copies`` variants of every row of ``batch``, row by row.

    ``partners[c]`` holds the words of text column ``c`` for every row of the split: the
    pool that concatenation draws from (``None`` when ``concat_prob`` is 0).
    """
    out: dict[str, list] = {name: [] for name in batch}
    out[AUGMENTED_COLUMN] = []
    for row, index in enumerate(indices):
        # Seeded by the row's index in the whole split, not its place in the batch: the
        # output does not depend on the map's batch size.
        rng = random.Random(f"textdistill.augment:{config.seed}:{index}")
        sources = [("" if batch[c][row] is None else str(batch[c][row])).split()
                   for c in text_columns]
        unchanged = [" ".join(words) for words in sources]
        for _ in range(config.copies):
            for _attempt in range(MAX_ATTEMPTS):
                texts = []
                for c, words in enumerate(sources):
                    variant = _variant(words, rng, config, mask_token, neighbours)
                    # Drawn only when enabled, so configs without concatenation keep the
                    # random stream (and the variants) they had before it existed.
                    if partners is not None and rng.random() < config.concat_prob:
                        other = partners[c][rng.randrange(len(partners[c]))]
                        variant += _variant(other, rng, config, mask_token, neighbours)
                    texts.append(" ".join(variant))
                if texts != unchanged:
                    break
            for name in batch:
                if name not in text_columns:
                    out[name].append(batch[name][row])
            for name, text in zip(text_columns, texts):
                out[name].append(text)
            out[AUGMENTED_COLUMN].append(True)
    return out


def augment_dataset(dataset: datasets.Dataset, text_columns: Sequence[str],
                    config: AugmentConfig, tokenizer: Any,
                    embeddings: torch.Tensor | None = None, *,
                    desc: str = "Augmenting train") -> datasets.Dataset:
    """The raw split ``dataset`` followed by ``config.copies`` variants of each row.

    Args:
        dataset: a raw (untokenized) split: text columns, a label column, anything else.
        text_columns: the one or two text columns to perturb (each independently).
        config: what to generate.
        tokenizer: gives the mask token and, with ``embeddings``, the vocabulary.
        embeddings: (V, H) word-embedding matrix indexed by the tokenizer's ids (the
            teacher's ``get_input_embeddings().weight``); ``None`` skips replacement.
        desc: the progress bar's label.

    Returns:
        ``N * (1 + copies)`` rows: the N originals unchanged and in order, then row
        ``i``'s variants at ``N + i * copies ...``. Every column is kept (variants copy
        the non-text columns, the label too, from their source), plus a bool column
        ``augmented``, False for the originals.

    Raises:
        ConfigError: masking is asked for but the tokenizer has no mask token.
        ValueError: a text column is missing, or ``augmented`` already exists.
    """
    text_columns = list(text_columns)
    missing = [c for c in text_columns if c not in dataset.column_names]
    if missing:
        raise ValueError(f"text column(s) {missing} not in the dataset; its columns are "
                         f"{dataset.column_names}")
    if AUGMENTED_COLUMN in dataset.column_names:
        raise ValueError(f"the dataset already has an {AUGMENTED_COLUMN!r} column")
    originals = dataset.add_column(AUGMENTED_COLUMN, [False] * len(dataset),
                                   feature=datasets.Value("bool"))
    if not config.enabled:
        return originals

    mask_token = getattr(tokenizer, "mask_token", None)
    if config.mask_prob > 0 and mask_token is None:
        raise ConfigError("data.augment.mask_prob: the tokenizer has no mask token; set "
                          "data.augment.mask_prob to 0")
    neighbours: dict[str, tuple[str, ...]] = {}
    if embeddings is not None and config.replace_prob > 0:
        words = {w for c in text_columns for text in dataset[c] if text is not None
                 for w in str(text).split()}
        neighbours = neighbour_table(words, tokenizer, embeddings, config.neighbours)
    partners = None
    if config.concat_prob > 0:
        partners = [[("" if text is None else str(text)).split() for text in dataset[c]]
                    for c in text_columns]

    variants = dataset.map(
        _augment_batch, batched=True, with_indices=True,
        # The output has copies x the input's rows: every input column must go, and the
        # function returns each of them again.
        remove_columns=dataset.column_names,
        features=originals.features,
        fn_kwargs={"text_columns": text_columns, "config": config, "mask_token": mask_token,
                   "neighbours": neighbours, "partners": partners},
        desc=desc,
    )
    return datasets.concatenate_datasets([originals, variants])


def with_mask_token(dataset: datasets.Dataset, text_columns: Sequence[str], mask_token: str,
                    own_mask_token: str | None) -> datasets.Dataset:
    """``dataset`` with every masked word of its augmented rows written as
    ``own_mask_token``: the mask token of the tokenizer that reads it.

    Augmentation writes one tokenizer's mask token (``mask_token``) into the text; another
    tokenizer would read that string as plain characters (MPNet's ``<mask>`` is three
    word pieces to BERT), so each tokenizer gets the text with its own mask word.
    Unchanged when the tokens agree or the reader has none.
    """
    if own_mask_token is None or own_mask_token == mask_token \
            or AUGMENTED_COLUMN not in dataset.column_names:
        return dataset

    def reword(batch: dict[str, list]) -> dict[str, list]:
        return {c: [" ".join(own_mask_token if w == mask_token else w for w in text.split())
                    if augmented and text is not None else text
                    for text, augmented in zip(batch[c], batch[AUGMENTED_COLUMN])]
                for c in text_columns}

    return dataset.map(reword, batched=True, desc="Writing each tokenizer's mask token")


__all__ = ["AUGMENTED_COLUMN", "AugmentConfig", "augment_dataset", "neighbour_table",
           "with_mask_token"]
