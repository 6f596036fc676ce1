"""Every exception type textdistill raises on purpose, in one place.

The CLI turns a :class:`ConfigError` (and its subclasses) into one line and exit status
2; anything else is a bug or an environment failure and keeps its traceback.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid. The message starts with the key path."""


class UnknownLossError(KeyError):
    """:func:`~textdistill.losses.get_loss` was asked for a name nobody registered."""

    def __str__(self) -> str:
        # KeyError's own __str__ repr-quotes the message; keep it readable.
        return str(self.args[0]) if self.args else ""


class FeatureUnavailableError(RuntimeError):
    """A model did not return hidden states or attention maps that were requested."""


class AttentionUnavailableError(FeatureUnavailableError):
    """Attention maps were requested but the model cannot (or did not) return them.

    Usually the model runs ``sdpa``/flash attention, which never materialises the maps;
    load it with ``attn_implementation="eager"`` or call
    :func:`~textdistill.models.ensure_eager_attention`.
    """


class HiddenStatesUnavailableError(FeatureUnavailableError):
    """Hidden states were requested but the model did not return them."""


class HubUnavailableError(RuntimeError):
    """The Hub cannot be reached (offline mode or no network); the local export is intact."""


class MissingExtraError(ConfigError):
    """An optional extra that a command needs is not installed (e.g. ``deploy``: onnx and
    onnxruntime). The message says what to ``pip install``. A ConfigError, so the CLI
    prints that one line and exits 2: the fix is in the environment, not a bug."""


class NonFiniteError(RuntimeError):
    """Training produced NaN or infinite values: a loss or gradient for too many
    consecutive steps, or weights about to be saved as ``best/`` or exported. The message
    names what went non-finite and where; the CLI exits 2 with it."""


class RunLockedError(FileExistsError):
    """Another live run holds ``output.dir`` (its lock file names the pid and host)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training after a whole step, and that step was checkpointed."""

    def __init__(self, step: int, checkpoint: str, hint: str = "resume with train(resume=True)"):
        super().__init__(f"interrupted at step {step}; checkpoint saved: {checkpoint}; {hint}")
        self.step = step
        self.checkpoint = checkpoint


__all__ = [
    "AttentionUnavailableError",
    "ConfigError",
    "FeatureUnavailableError",
    "HiddenStatesUnavailableError",
    "HubUnavailableError",
    "MissingExtraError",
    "NonFiniteError",
    "RunLockedError",
    "TrainingInterrupted",
    "UnknownLossError",
]
