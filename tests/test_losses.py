"""The loss library, each loss against an independent float64 reference.

References are written with numpy and plain loops over examples / real tokens, never by
calling the library, so a shared bug cannot hide on both sides.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import textdistill.losses as losses
from textdistill.losses import dkd_terms, get_loss, probability_shift, register_loss
from textdistill.losses import registry as registry_module

LOGIT_LOSSES = ["kd_ce", "kd_kl", "kd_mse", "dkd", "hard_ce"]
HIDDEN_LOSSES = ["hidden_mse", "hidden_cos", "pkd", "hidden_mmd"]
ATTENTION_LOSSES = ["attention_mse", "attention_kl"]
ALL_LOSSES = LOGIT_LOSSES + HIDDEN_LOSSES + ATTENTION_LOSSES


# --------------------------------------------------------------------------- inputs


def logits(batch=6, classes=5, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, classes, generator=g) * scale


def labels_for(batch=6, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    return torch.randint(0, classes, (batch,), generator=g)


LENGTHS = [7, 4, 2]


def token_mask(lengths=LENGTHS, total=7):
    return torch.tensor([[1] * n + [0] * (total - n) for n in lengths])


def hidden(width, seed, batch=3, tokens=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, tokens, width, generator=g)


def attention_scores(heads, seed, mask, fill=-1e4):
    """(B, heads, T, T) scores with ``fill`` at padded keys, as a BERT layer builds them."""
    batch, tokens = mask.shape
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(batch, heads, tokens, tokens, generator=g) * 2
    return scores.masked_fill(mask[:, None, None, :] == 0, fill)


def case(name, seed=0):
    """(student, teacher, mask, options) for any registered loss."""
    if name in LOGIT_LOSSES:
        student, labels = logits(seed=seed), labels_for(seed=seed)
        teacher = labels if name == "hard_ce" else logits(seed=seed + 1)
        return student, teacher, None, {"temperature": 2.0, "labels": labels}
    mask = token_mask()
    if name in HIDDEN_LOSSES:
        t_width = 12 if name == "hidden_mmd" else 8
        return hidden(8, seed), hidden(t_width, seed + 1), mask, {}
    s = attention_scores(2, seed, mask).softmax(-1)
    t = attention_scores(2, seed + 1, mask).softmax(-1)
    return s, t, mask, {}


# --------------------------------------------------------------------------- references


def np_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def np_log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    m = x.max()
    return x - m - math.log(np.exp(x - m).sum())


def rows(mask, batch):
    return [b for b in range(batch) if mask is None or bool(mask[b])]


def ref_kd_ce(s, t, T, mask=None):
    """Without the T**2 factor."""
    s, t = s.double().numpy(), t.double().numpy()
    vals = [-(np_softmax(t[b] / T) * np_log_softmax(s[b] / T)).sum() for b in rows(mask, len(s))]
    return float(np.mean(vals))


def ref_kd_kl(s, t, T, mask=None):
    """Without the T**2 factor."""
    s, t = s.double().numpy(), t.double().numpy()
    vals = []
    for b in rows(mask, len(s)):
        p, q = np_softmax(t[b] / T), np_softmax(s[b] / T)
        vals.append(sum(pc * math.log(pc / qc) for pc, qc in zip(p, q, strict=True)))
    return float(np.mean(vals))


def ref_kd_mse(s, t, T, mask=None):
    s, t = s.double().numpy(), t.double().numpy()
    return float(np.mean([np.mean((s[b] / T - t[b] / T) ** 2) for b in rows(mask, len(s))]))


def ref_hard_ce(s, y, mask=None, ignore_index=-100):
    s = s.double().numpy()
    vals = [-np_log_softmax(s[b])[int(y[b])] for b in rows(mask, len(s))
            if int(y[b]) != ignore_index]
    return float(np.mean(vals))


def ref_dkd_per_example(s, t, y, T):
    """The official DKD code's construction (binary 'cat_mask', -1000 on the target)."""
    s, t = s.double().numpy(), t.double().numpy()
    tckd, nckd = [], []
    for b in range(len(s)):
        k = int(y[b])
        ps, pt = np_softmax(s[b] / T), np_softmax(t[b] / T)
        bs, bt = np.array([ps[k], 1 - ps[k]]), np.array([pt[k], 1 - pt[k]])
        tckd.append(float((bt * np.log(bt / bs)).sum()) * T**2)
        gt = np.zeros_like(s[b])
        gt[k] = 1000.0
        qt = np_softmax(t[b] / T - gt)
        log_qs = np_log_softmax(s[b] / T - gt)
        log_qt = np_log_softmax(t[b] / T - gt)
        nckd.append(float((qt * (log_qt - log_qs)).sum()) * T**2)
    return np.array(tckd), np.array(nckd)


def ref_dkd(s, t, y, T, mask, alpha=1.0, beta=8.0):
    tckd, nckd = ref_dkd_per_example(s, t, y, T)
    return float(np.mean([alpha * tckd[b] + beta * nckd[b] for b in rows(mask, len(s))]))


def real_tokens(mask, b, tokens):
    return [i for i in range(tokens) if mask is None or bool(mask[b, i])]


def ref_hidden_mse(s, t, mask):
    total, count = 0.0, 0
    for b in range(s.shape[0]):
        for i in real_tokens(mask, b, s.shape[1]):
            for h in range(s.shape[2]):
                total += (float(s[b, i, h]) - float(t[b, i, h])) ** 2
                count += 1
    return total / count


def cos(u, v):
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


def ref_hidden_cos(s, t, mask):
    vals = [1 - cos(s[b, i], t[b, i])
            for b in range(s.shape[0]) for i in real_tokens(mask, b, s.shape[1])]
    return float(np.mean(vals))


def ref_pkd(s, t):
    vals = []
    for b in range(s.shape[0]):
        u = s[b, 0].double().numpy()
        v = t[b, 0].double().numpy()
        vals.append(float(((u / np.linalg.norm(u) - v / np.linalg.norm(v)) ** 2).sum()))
    return float(np.mean(vals))


def ref_hidden_mmd(s, t, mask):
    total, count = 0.0, 0
    for b in range(s.shape[0]):
        real = real_tokens(mask, b, s.shape[1])
        for i in real:
            for j in real:
                total += (cos(s[b, i], s[b, j]) - cos(t[b, i], t[b, j])) ** 2
                count += 1
    return total / count


def ref_attention_mse(s, t, mask, scores=False):
    s, t = s.double().numpy(), t.double().numpy()
    if scores:
        s, t = np.where(s <= -1e4, 0.0, s), np.where(t <= -1e4, 0.0, t)
    if s.shape[1] != t.shape[1]:
        s, t = s.mean(1, keepdims=True), t.mean(1, keepdims=True)
    total, count = 0.0, 0
    for b in range(s.shape[0]):
        real = real_tokens(mask, b, s.shape[-1])
        for h in range(s.shape[1]):
            for i in real:
                for j in real:
                    total += (s[b, h, i, j] - t[b, h, i, j]) ** 2
                    count += 1
    return total / count


def ref_attention_kl(s, t, mask, scores=False):
    s, t = s.double().numpy(), t.double().numpy()
    total, count = 0.0, 0
    for b in range(s.shape[0]):
        real = real_tokens(mask, b, s.shape[-1])
        for h in range(s.shape[1]):
            for i in real:
                if scores:
                    p, q = np_softmax(t[b, h, i, real]), np_softmax(s[b, h, i, real])
                else:
                    p, q = t[b, h, i, real], s[b, h, i, real]
                total += sum(pk * math.log(pk / qk) for pk, qk in zip(p, q, strict=True) if pk > 0)
                count += 1
    return total / count


def num(x):
    return float(x.detach()) if isinstance(x, torch.Tensor) else float(x)


def close(actual, expected, rtol=1e-5, atol=1e-6):
    assert actual.dtype == torch.float32 and actual.dim() == 0
    assert math.isclose(num(actual), num(expected), rel_tol=rtol, abs_tol=atol), \
        (num(actual), num(expected))


# --------------------------------------------------------------------------- registry


@pytest.fixture
def clean_registry():
    before = dict(registry_module._REGISTRY)
    yield
    registry_module._REGISTRY.clear()
    registry_module._REGISTRY.update(before)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_every_builtin_is_registered_and_exported(name):
    assert get_loss(name) is getattr(losses, name)
    assert name in losses.available_losses()


def test_available_losses_sorted_and_unknown_name_lists_them():
    names = losses.available_losses()
    assert names == sorted(names) and set(ALL_LOSSES) <= set(names)
    with pytest.raises(KeyError) as err:
        get_loss("kd_kll")
    message = str(err.value)
    assert "'kd_kll'" in message and all(n in message for n in ALL_LOSSES)


def test_register_loss_function_and_decorator_forms(clean_registry):
    def mine(student, teacher, mask=None, **options):
        return (student - teacher).abs().mean()

    assert register_loss("test_mine", mine) is mine
    assert get_loss("test_mine") is mine

    @register_loss("test_decorated")
    def decorated(student, teacher, mask=None, **options):
        return student.sum() * 0

    assert get_loss("test_decorated") is decorated
    assert {"test_mine", "test_decorated"} <= set(losses.available_losses())

    with pytest.raises(ValueError, match="already registered"):
        register_loss("test_mine", decorated)
    with pytest.raises(ValueError, match="already registered"):
        register_loss("kd_kl", decorated)
    assert get_loss("kd_kl") is losses.kd_kl
    register_loss("test_mine", decorated, overwrite=True)
    assert get_loss("test_mine") is decorated


# --------------------------------------------------------------------------- logit losses


@pytest.mark.parametrize("T", [1.0, 2.5, 4.0])
def test_kd_ce_and_kd_kl_match_reference_times_t_squared(T):
    s, t = logits(seed=1), logits(seed=2)
    close(losses.kd_ce(s, t, temperature=T), T**2 * ref_kd_ce(s, t, T))
    close(losses.kd_kl(s, t, temperature=T), T**2 * ref_kd_kl(s, t, T))


def test_t_squared_factor_at_t4():
    s, t = logits(seed=3), logits(seed=4)
    close(losses.kd_ce(s, t, temperature=4.0), 16 * ref_kd_ce(s, t, 4.0))
    close(losses.kd_kl(s, t, temperature=4.0), 16 * ref_kd_kl(s, t, 4.0))


@pytest.mark.parametrize("T", [1.0, 3.0])
def test_kd_kl_is_kd_ce_minus_teacher_entropy(T):
    s, t = logits(seed=5), logits(seed=6)
    p = [np_softmax(row / T) for row in t.double().numpy()]
    entropy = float(np.mean([-(pr * np.log(pr)).sum() for pr in p]))
    ce = num(losses.kd_ce(s, t, temperature=T))
    close(losses.kd_kl(s, t, temperature=T), ce - T**2 * entropy, rtol=1e-4, atol=1e-5)


def test_kd_kl_is_zero_for_identical_logits_and_shift_invariant():
    s = logits(seed=7)
    assert num(losses.kd_kl(s, s + 5.0, temperature=2.0)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("T", [1.0, 2.0])
def test_kd_mse_matches_reference(T):
    s, t = logits(seed=8), logits(seed=9)
    close(losses.kd_mse(s, t, temperature=T), ref_kd_mse(s, t, T))
    close(losses.kd_mse(s, t), float(((s - t) ** 2).double().mean()))  # raw logit MSE


def test_hard_ce_matches_reference_and_ignores_soft_options():
    s, y = logits(seed=10), labels_for(seed=10)
    close(losses.hard_ce(s, y), ref_hard_ce(s, y))
    close(losses.hard_ce(s, y, temperature=4.0, labels=labels_for(seed=99)), ref_hard_ce(s, y))


def test_hard_ce_ignore_index_and_mask():
    s, y = logits(seed=11), labels_for(seed=11)
    y[1] = -100
    mask = torch.tensor([1, 1, 0, 1, 1, 1])
    close(losses.hard_ce(s, y), ref_hard_ce(s, y))
    close(losses.hard_ce(s, y, mask), ref_hard_ce(s, y, mask))
    with pytest.raises(ValueError, match="gold labels"):
        losses.hard_ce(s, logits(seed=12))


LOGIT_REFERENCES = {
    "kd_ce": lambda s, t, y, T, m: T**2 * ref_kd_ce(s, t, T, m),
    "kd_kl": lambda s, t, y, T, m: T**2 * ref_kd_kl(s, t, T, m),
    "kd_mse": lambda s, t, y, T, m: ref_kd_mse(s, t, T, m),
    "dkd": lambda s, t, y, T, m: ref_dkd(s, t, y, T, m),
    "hard_ce": lambda s, t, y, T, m: ref_hard_ce(s, y, m),
}


@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.long, torch.float32])
@pytest.mark.parametrize("name", LOGIT_LOSSES)
def test_logit_loss_mask_normaliser_and_garbage_rows(name, mask_dtype):
    s, t, _, options = case(name, seed=13)
    y, T = options["labels"], options["temperature"]
    mask = torch.tensor([1, 0, 1, 1, 0, 1]).to(mask_dtype)
    fn = get_loss(name)
    value = fn(s, t, mask, **options)
    close(value, LOGIT_REFERENCES[name](s, t, y, T, mask), rtol=1e-4)

    s2 = s.clone()
    s2[1], s2[4] = 1e6, float("nan")
    t2, y2 = t.clone(), y.clone()
    if name == "hard_ce":
        t2[1], t2[4] = 3, 0
    else:
        t2[1], t2[4] = -1e6, float("inf")
    y2[1] = 4 - y2[1]
    s2.requires_grad_(True)
    value2 = fn(s2, t2, mask, **{**options, "labels": y2})
    assert num(value2) == pytest.approx(num(value), rel=1e-6)
    value2.backward()
    assert torch.isfinite(s2.grad).all()
    assert (s2.grad[[1, 4]] == 0).all()


def test_logit_loss_all_masked_is_zero_not_nan():
    s, t = logits(seed=14), logits(seed=15)
    mask = torch.zeros(6, dtype=torch.bool)
    assert num(losses.kd_kl(s, t, mask, temperature=2.0)) == 0.0


def test_logit_loss_rejects_bad_shapes_and_temperature():
    with pytest.raises(ValueError, match="same shape"):
        losses.kd_kl(logits(classes=5), logits(classes=4))
    with pytest.raises(ValueError, match="temperature"):
        losses.kd_ce(logits(), logits(seed=1), temperature=0.0)
    with pytest.raises(ValueError, match="mask"):
        losses.kd_ce(logits(), logits(seed=1), torch.ones(5))


# --------------------------------------------------------------------------- DKD


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_dkd_matches_reference_implementation(T):
    s, t, y = logits(seed=16), logits(seed=17), labels_for(seed=16)
    ref_t, ref_n = ref_dkd_per_example(s, t, y, T)
    tckd, nckd = dkd_terms(s, t, y, temperature=T, reduction="none")
    np.testing.assert_allclose(tckd.double().numpy(), ref_t, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(nckd.double().numpy(), ref_n, rtol=1e-4, atol=1e-6)
    mean_t, mean_n = dkd_terms(s, t, y, temperature=T)
    close(mean_t, float(ref_t.mean()), rtol=1e-4)
    close(mean_n, float(ref_n.mean()), rtol=1e-4)
    close(losses.dkd(s, t, temperature=T, labels=y), ref_dkd(s, t, y, T, None), rtol=1e-4)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_dkd_identity_kl_equals_tckd_plus_weighted_nckd(T):
    s, t, y = logits(seed=18), logits(seed=19), labels_for(seed=18)
    tckd, nckd = dkd_terms(s, t, y, temperature=T, reduction="none")
    for b in range(len(s)):
        kl = T**2 * ref_kd_kl(s[b:b + 1], t[b:b + 1], T)
        p_target = np_softmax(t[b].double().numpy() / T)[int(y[b])]
        assert num(tckd[b]) + (1 - p_target) * num(nckd[b]) == pytest.approx(kl, rel=1e-4)


def test_dkd_two_classes_has_exactly_zero_nckd():
    s = logits(classes=2, seed=20).requires_grad_(True)
    t, y = logits(classes=2, seed=21), labels_for(classes=2, seed=20)
    tckd, nckd = dkd_terms(s, t, y, temperature=2.0, reduction="none")
    assert (nckd == 0).all()
    loss = losses.dkd(s, t, temperature=2.0, labels=y)
    assert torch.isfinite(loss)
    # With one non-target class, TCKD is the whole KL.
    close(loss, 4.0 * ref_kd_kl(s.detach(), t, 2.0), rtol=1e-4)
    loss.backward()
    assert torch.isfinite(s.grad).all()


def test_dkd_extreme_logits_stay_finite():
    s = torch.tensor([[60.0, -60.0, 0.0], [-80.0, 80.0, 1.0]], requires_grad=True)
    t = torch.tensor([[80.0, -80.0, 0.0], [0.0, 90.0, -90.0]])
    loss = losses.dkd(s, t, labels=torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_dkd_alpha_beta_scale_terms_and_labels_required():
    s, t, y = logits(seed=22), logits(seed=23), labels_for(seed=22)
    tckd, nckd = dkd_terms(s, t, y, temperature=2.0)
    for alpha, beta in [(1.0, 0.0), (0.0, 1.0), (2.0, 3.0)]:
        value = losses.dkd(s, t, temperature=2.0, labels=y, alpha=alpha, beta=beta)
        close(value, alpha * num(tckd) + beta * num(nckd), rtol=1e-5)
    with pytest.raises(ValueError, match="labels"):
        losses.dkd(s, t, temperature=2.0)


def test_dkd_unlabeled_rows_take_the_teacher_class_or_are_excluded():
    s, t, y = logits(seed=25), logits(seed=26), labels_for(seed=25)
    missing = y.clone()
    missing[[1, 4]] = -100
    teacher_class = torch.as_tensor(np.argmax(t.numpy(), axis=1))
    by_teacher = y.clone()
    by_teacher[[1, 4]] = teacher_class[[1, 4]]
    labelled = torch.tensor([1, 0, 1, 1, 0, 1])
    for T in (1.0, 4.0):
        # The default: an unlabelled row is decoupled at the teacher's top class.
        close(losses.dkd(s, t, temperature=T, labels=missing), ref_dkd(s, t, by_teacher, T, None),
              rtol=1e-4)
        close(losses.dkd(s, t, temperature=T, labels=missing, unlabeled="exclude"),
              ref_dkd(s, t, y, T, labelled), rtol=1e-4)
    # A mask still wins over the teacher's class.
    mask = torch.tensor([1, 0, 1, 1, 1, 1])
    close(losses.dkd(s, t, mask, temperature=2.0, labels=missing),
          ref_dkd(s, t, by_teacher, 2.0, mask), rtol=1e-4)
    tckd, nckd = dkd_terms(s, t, missing, temperature=2.0, reduction="none",
                           unlabeled="exclude")
    assert (tckd[[1, 4]] == 0).all() and (nckd[[1, 4]] == 0).all()
    # The engine passes distill.logit_loss_options as keywords.
    options = {"unlabeled": "exclude", "alpha": 1.0, "beta": 8.0}
    close(get_loss("dkd")(s, t, temperature=2.0, labels=missing, **options),
          ref_dkd(s, t, y, 2.0, labelled), rtol=1e-4)
    with pytest.raises(ValueError, match=r"unlabeled must be one of \['teacher', 'exclude'\]"):
        losses.dkd(s, t, labels=y, unlabeled="drop")


def test_dkd_on_an_all_unlabelled_batch():
    s = logits(seed=27).requires_grad_(True)
    t = logits(seed=28)
    none = torch.full((6,), -100)
    assert num(losses.dkd(s, t, labels=none, unlabeled="exclude")) == 0.0
    loss = losses.dkd(s, t, temperature=2.0, labels=none)
    close(loss, ref_dkd(s.detach(), t, t.argmax(-1), 2.0, None), rtol=1e-4)
    loss.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


# --------------------------------------------------------------------------- probability shift


def test_probability_shift_swaps_only_wrong_rows():
    t = torch.tensor([[3.0, 1.0, 0.5], [0.2, 2.0, -1.0], [1.0, -2.0, 4.0]])
    y = torch.tensor([0, 2, 1])  # row 0 right, rows 1 and 2 wrong
    original = t.clone()
    shifted = probability_shift(t, y)
    assert torch.equal(t, original)  # input untouched
    assert shifted.data_ptr() != t.data_ptr()
    expected = torch.tensor([[3.0, 1.0, 0.5], [0.2, -1.0, 2.0], [1.0, 4.0, -2.0]])
    assert torch.equal(shifted, expected)
    assert torch.equal(shifted.argmax(-1), y)
    # Same multiset of values per row: the distribution's shape is kept.
    assert torch.equal(shifted.sort(-1).values, t.sort(-1).values)


def test_probability_shift_leaves_ignored_labels():
    t = logits(seed=24)
    y = labels_for(seed=24)
    y[0] = -100
    shifted = probability_shift(t, y)
    assert torch.equal(shifted[0], t[0])
    assert torch.equal(shifted[1:].argmax(-1), y[1:])
    # A batch of augmented rows only: nothing to shift.
    assert torch.equal(probability_shift(t, torch.full((6,), -100)), t)


def test_objective_with_unlabelled_rows_probability_shift_and_dkd():
    from textdistill.config import DistillationConfig
    from textdistill.models.adaptors import ModelView
    from textdistill.objective import Objective

    s, t, y = logits(seed=29), logits(seed=30), labels_for(seed=29)
    y[[0, 3]] = -100
    for unlabeled in ("teacher", "exclude"):
        config = DistillationConfig(logit_loss="dkd", probability_shift=True,
                                    logit_loss_options={"unlabeled": unlabeled},
                                    temperature=2.0, hard_weight=1.0)
        objective = Objective(config, [], torch.nn.ModuleDict(), num_teachers=1)
        out = objective(ModelView(logits=s), y, 0.0, teacher_logits=[t])
        shifted = probability_shift(t, y)
        assert torch.equal(shifted[[0, 3]], t[[0, 3]])
        expected = losses.dkd(s, shifted, temperature=2.0, labels=y, unlabeled=unlabeled)
        close(out.components["kd"], num(expected), rtol=1e-6)
        close(out.components["hard"], ref_hard_ce(s, y), rtol=1e-4)


# --------------------------------------------------------------------------- hidden states


def test_hidden_mse_cos_pkd_match_references_with_mask():
    mask = token_mask()
    s, t = hidden(8, 30), hidden(8, 31)
    close(losses.hidden_mse(s, t, mask), ref_hidden_mse(s, t, mask))
    close(losses.hidden_mse(s, t), ref_hidden_mse(s, t, None))
    close(losses.hidden_cos(s, t, mask), ref_hidden_cos(s, t, mask))
    close(losses.hidden_cos(s, t), ref_hidden_cos(s, t, None))
    close(losses.pkd(s, t, mask), ref_pkd(s, t))
    close(losses.pkd(s[:, 0], t[:, 0]), ref_pkd(s, t))  # (B, H) input


@pytest.mark.parametrize("t_width", [8, 12, 5])
def test_hidden_mmd_matches_reference_across_widths(t_width):
    mask = token_mask()
    s, t = hidden(8, 32), hidden(t_width, 33)
    close(losses.hidden_mmd(s, t, mask), ref_hidden_mmd(s, t, mask), rtol=1e-4)
    close(losses.hidden_mmd(s, t), ref_hidden_mmd(s, t, None), rtol=1e-4)


@pytest.mark.parametrize("name", ["hidden_mse", "hidden_cos", "pkd"])
def test_same_width_losses_reject_width_mismatch(name):
    with pytest.raises(ValueError, match="projection") as err:
        get_loss(name)(hidden(8, 34), hidden(12, 35), token_mask())
    if name != "pkd":
        assert "8" in str(err.value) and "12" in str(err.value)


def test_intermediate_mask_shape_is_checked():
    with pytest.raises(ValueError, match="mask"):
        losses.hidden_mse(hidden(8, 0), hidden(8, 1), torch.ones(3, 6))


def garbage_at_padding(x, mask, value):
    """Copy of x with ``value`` wherever the (B, T) mask marks padding, on every axis of
    length T (tokens for hidden states; queries and keys for attention maps)."""
    x = x.detach().clone()
    pad = mask == 0
    if x.dim() == 3:
        x[pad] = value
    else:
        x.masked_fill_(pad[:, None, :, None] | pad[:, None, None, :], value)
    return x


@pytest.mark.parametrize("garbage", [123.0, -1e6, float("nan")])
@pytest.mark.parametrize("name", ["hidden_mse", "hidden_cos", "hidden_mmd", "attention_mse",
                                  "attention_kl"])
def test_padding_never_contributes(name, garbage):
    s, t, mask, options = case(name, seed=36)
    fn = get_loss(name)
    clean = fn(s, t, mask)
    s2 = garbage_at_padding(s, mask, garbage).requires_grad_(True)
    t2 = garbage_at_padding(t, mask, -garbage)
    dirty = fn(s2, t2, mask)
    assert num(dirty) == pytest.approx(num(clean), rel=1e-6, abs=1e-7)
    dirty.backward()
    assert torch.isfinite(s2.grad).all()


# --------------------------------------------------------------------------- attention


@pytest.mark.parametrize("heads", [(2, 2), (2, 4)])
def test_attention_losses_match_references_on_probabilities(heads):
    mask = token_mask()
    s = attention_scores(heads[0], 40, mask).softmax(-1)
    t = attention_scores(heads[1], 41, mask).softmax(-1)
    close(losses.attention_mse(s, t, mask), ref_attention_mse(s, t, mask), rtol=1e-4)
    close(losses.attention_mse(s, t), ref_attention_mse(s, t, None), rtol=1e-4)
    if heads[0] == heads[1]:
        close(losses.attention_kl(s, t, mask), ref_attention_kl(s, t, mask), rtol=1e-4)


def test_attention_kl_with_different_heads_mixes_distributions():
    mask = token_mask()
    s = attention_scores(2, 42, mask).softmax(-1)
    t = attention_scores(4, 43, mask).softmax(-1)
    expected = ref_attention_kl(s.mean(1, keepdim=True), t.mean(1, keepdim=True), mask)
    close(losses.attention_kl(s, t, mask), expected, rtol=1e-4)


@pytest.mark.parametrize("fill", [-1e4, torch.finfo(torch.float32).min, float("-inf")])
def test_attention_scores_with_large_negative_masks(fill):
    mask = token_mask()
    s = attention_scores(2, 44, mask, fill=fill).requires_grad_(True)
    t = attention_scores(2, 45, mask, fill=fill)
    for fn, ref in [(losses.attention_mse, ref_attention_mse),
                    (losses.attention_kl, ref_attention_kl)]:
        masked = fn(s, t, mask, scores=True)
        assert torch.isfinite(masked)
        close(masked, ref(s.detach(), t, mask, scores=True), rtol=1e-4)
        # Without a mask the masked keys are still recognised from their values.
        unmasked = fn(s, t, scores=True)
        assert torch.isfinite(unmasked)
        unmasked.backward()
        assert torch.isfinite(s.grad).all()
        s.grad = None
    # KL over scores equals KL over the probabilities a softmax makes of them.
    kl_scores = losses.attention_kl(s, t, mask, scores=True)
    kl_probs = losses.attention_kl(s.softmax(-1), t.softmax(-1), mask)
    close(kl_scores, num(kl_probs), rtol=1e-4)


def test_attention_mse_without_mask_zeroes_masked_scores_like_tinybert():
    mask = token_mask()
    s = attention_scores(2, 46, mask, fill=-1e4)
    t = attention_scores(2, 47, mask, fill=torch.finfo(torch.float32).min)
    close(losses.attention_mse(s, t, scores=True), ref_attention_mse(s, t, None, scores=True),
          rtol=1e-4)


# --------------------------------------------------------------------------- all losses


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_gradients_reach_the_student_only(name):
    s, t, mask, options = case(name, seed=50)
    s = s.clone().requires_grad_(True)
    if t.is_floating_point():
        t = t.clone().requires_grad_(True)
    loss = get_loss(name)(s, t, mask, **options)
    assert loss.dim() == 0 and loss.dtype == torch.float32
    assert loss.requires_grad
    loss.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_float32_result_under_bf16_autocast(name):
    s, t, mask, options = case(name, seed=60)
    reference = get_loss(name)(s, t, mask, **options)
    s16 = s.to(torch.bfloat16).requires_grad_(True)
    t16 = t.to(torch.bfloat16) if t.is_floating_point() else t
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = get_loss(name)(s16, t16, mask, **options)
    assert value.dtype == torch.float32 and value.dim() == 0
    # Same bf16-rounded inputs in plain fp32: autocast changed nothing.
    exact = get_loss(name)(s16.detach().float(), t16.float() if t16.is_floating_point()
                           else t16, mask, **options)
    assert num(value) == pytest.approx(num(exact), rel=1e-5, abs=1e-6)
    # Only the bf16 rounding of the inputs separates it from the fp32 result.
    assert num(value) == pytest.approx(num(reference), rel=5e-2, abs=5e-3)
    value.backward()
    assert s16.grad.dtype == torch.bfloat16 and torch.isfinite(s16.grad.float()).all()
