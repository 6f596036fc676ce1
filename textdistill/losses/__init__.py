"""The loss library: every loss is ``fn(student, teacher, mask=None, **options)``.

Importing this package registers the built-in losses:

* logits (B, C): ``kd_ce``, ``kd_kl``, ``kd_mse``, ``pseudo_ce``, ``dkd``, ``hard_ce``;
* hidden states (B, T, H): ``hidden_mse``, ``hidden_cos``, ``pkd``, ``hidden_mmd``;
* attention maps (B, heads, T, T): ``attention_mse``, ``attention_kl``.

Recipes name them by string; :func:`get_loss` resolves a name and
:func:`register_loss` adds new ones.
"""

from ..errors import UnknownLossError
from .attention import attention_kl, attention_mse
from .hidden import hidden_cos, hidden_mmd, hidden_mse, pkd
from .logits import (
    dkd,
    dkd_terms,
    hard_ce,
    kd_ce,
    kd_kl,
    kd_mse,
    probability_shift,
    pseudo_ce,
)
from .registry import (
    LOSS_KINDS,
    LossFn,
    available_losses,
    fp32_loss,
    get_loss,
    is_sentence_level,
    loss_kind,
    losses_of_kind,
    masked_mean,
    register_loss,
)

__all__ = [
    "LOSS_KINDS",
    "LossFn",
    "UnknownLossError",
    "attention_kl",
    "attention_mse",
    "available_losses",
    "dkd",
    "dkd_terms",
    "fp32_loss",
    "get_loss",
    "hard_ce",
    "hidden_cos",
    "hidden_mmd",
    "hidden_mse",
    "is_sentence_level",
    "kd_ce",
    "kd_kl",
    "kd_mse",
    "loss_kind",
    "losses_of_kind",
    "masked_mean",
    "pkd",
    "probability_shift",
    "pseudo_ce",
    "register_loss",
]
