"""Every registered loss is finite, and so is its gradient, for any finite inputs: in fp32
and under bf16 autocast, at temperatures down to 0.1, with and without padding."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from textdistill.losses import available_losses, get_loss

# What each built-in loss reads. The registry is read at collection, before any test
# registers a loss of its own; a new built-in fails test_every_loss_has_a_kind until it is
# listed here.
KINDS = {
    "kd_ce": "logits", "kd_kl": "logits", "kd_mse": "logits", "pseudo_ce": "logits",
    "dkd": "logits", "hard_ce": "labels",
    "hidden_mse": "hidden", "hidden_cos": "hidden", "pkd": "hidden", "hidden_mmd": "hidden",
    "attention_mse": "attention", "attention_kl": "attention",
}
REGISTERED = available_losses()
# Options that change what a loss computes on, tried besides its defaults.
OPTIONS = {"attention_mse": [{"scores": True}], "attention_kl": [{"scores": True}],
           "dkd": [{"unlabeled": "exclude"}]}
CASES = [(name, options) for name in REGISTERED
         for options in [{}, *OPTIONS.get(name, [])]]

# Far beyond real logits and hidden states, yet squares and logit / 0.1 stay in range.
SCALES = (0.0, 1e-3, 1.0, 30.0, 1e4)
PATTERNS = ("random", "equal", "constant", "one_hot")


def test_every_loss_has_a_kind():
    assert set(REGISTERED) <= set(KINDS), sorted(set(REGISTERED) - set(KINDS))


@st.composite
def _inputs(draw, kind: str):
    """(student, teacher, mask, labels) for ``kind``, from a drawn shape, scale, pattern."""
    batch, length = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    classes, width = draw(st.integers(2, 4)), draw(st.integers(1, 6))
    heads = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    scale, pattern = draw(st.sampled_from(SCALES)), draw(st.sampled_from(PATTERNS))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))

    def values(*shape: int) -> torch.Tensor:
        x = torch.randn(*shape, generator=gen)
        if pattern == "constant":
            x = torch.ones(*shape)
        elif pattern == "one_hot":
            x = torch.zeros(*shape).scatter_(-1, torch.zeros(*shape[:-1], 1).long(), 1.0)
        return x * scale

    if kind == "attention":
        student, teacher = values(batch, heads[0], length, length), \
            values(batch, heads[1], length, length)
    elif kind == "hidden":
        student, teacher = values(batch, length, width), values(batch, length, width)
    else:
        student, teacher = values(batch, classes), values(batch, classes)
    if pattern == "equal" and student.shape == teacher.shape:
        teacher = student.clone()
    labels = torch.randint(0, classes, (batch,), generator=gen)
    labels[torch.rand(batch, generator=gen) < 0.3] = -100  # rows without a gold label
    mask = None
    if draw(st.booleans()):
        # Position 0 is always a real token (right padding), as tokenizers make it.
        rows = batch if kind in ("logits", "labels") else (batch, length)
        mask = torch.rand(rows, generator=gen) < 0.7
        mask[..., 0] = mask[..., 0] | (kind not in ("logits", "labels"))
    return student, teacher, mask, labels


def _loss(name: str, options: dict, student, teacher, mask, labels, temperature: float):
    kind = KINDS[name]
    if kind == "attention" and not options.get("scores"):
        # Attention probabilities: each row a softmax over the keys.
        student, teacher = student.softmax(-1), teacher.softmax(-1)
    student = student.detach().requires_grad_(True)
    if kind == "labels":
        return student, get_loss(name)(student, labels, mask, **options)
    if kind == "logits":
        options = {"temperature": temperature, "labels": labels, **options}
    return student, get_loss(name)(student, teacher, mask, **options)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-autocast"])
@pytest.mark.parametrize(("name", "options"), CASES,
                         ids=[f"{n}{'-' + '-'.join(o) if o else ''}" for n, o in CASES])
def test_loss_and_gradient_are_finite_for_finite_inputs(name, options, bf16):
    @settings(max_examples=20, deadline=None, derandomize=True)
    @given(inputs=_inputs(KINDS[name]), temperature=st.floats(0.1, 10.0))
    def check(inputs, temperature):
        student, teacher, mask, labels = inputs
        if bf16:
            student, teacher = student.bfloat16(), teacher.bfloat16()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            leaf, loss = _loss(name, options, student, teacher, mask, labels, temperature)
        assert loss.dtype == torch.float32 and loss.dim() == 0
        assert torch.isfinite(loss), (name, loss)
        loss.backward()
        assert leaf.grad is not None and torch.isfinite(leaf.grad.float()).all(), name

    check()
