"""The engine on tiny random models: every mode through the one loop."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_bert, tiny_dataset

from textdistill import DistillationConfig, Distiller, Match, TrainingConfig
from textdistill.distiller import StepCallback
from textdistill.errors import ConfigError
from textdistill.losses import get_loss, register_loss


def _train_cfg(tmp_path, **overrides) -> TrainingConfig:
    base = dict(output_dir=str(tmp_path / "run"), batch_size=8, lr=5e-3, epochs=1,
                warmup=0.0, logging_steps=1, report_to=[], progress_bar=False,
                save_total_limit=2)
    base.update(overrides)
    return TrainingConfig(**base)


def _agreement(distiller, data, a, b) -> float:
    pa = distiller.predict(data, a)["logits"].argmax(-1)
    pb = distiller.predict(data, b)["logits"].argmax(-1)
    return (pa == pb).float().mean().item()


def test_kd_lowers_kd_loss_and_student_agrees_with_teacher_more_than_no_kd(tmp_path):
    data = tiny_dataset(128, seed=1)
    # The teacher learns another rule than the gold labels, so the student can only come
    # to agree with it through the soft targets.
    teacher = tiny_bert(seed=11)
    Distiller(None, teacher, training_config=_train_cfg(tmp_path / "t", epochs=10)) \
        .train(tiny_dataset(128, seed=1, rule="first"))
    teacher_preds = Distiller(None, teacher, training_config=_train_cfg(tmp_path)) \
        .predict(data, teacher)["logits"].argmax(-1)
    gold_agreement = (teacher_preds == torch.tensor(data["labels"])).float().mean()
    assert 0.2 < teacher_preds.float().mean() < 0.8, "teacher must predict both classes"
    assert gold_agreement < 0.75

    cfg = _train_cfg(tmp_path, epochs=8)
    kd = Distiller(teacher, tiny_bert(seed=5),
                   DistillationConfig(temperature=2.0, soft_weight=1.0, hard_weight=0.0), cfg)
    history = kd.train(data)
    _, kd_loss = history.series("loss/kd")
    assert sum(kd_loss[-4:]) / 4 < 0.5 * sum(kd_loss[:4]) / 4

    no_kd = Distiller(None, tiny_bert(seed=5), training_config=_train_cfg(tmp_path / "b",
                                                                          epochs=8))
    no_kd.train(data)
    kd_agree = _agreement(kd, data, kd.student, teacher)
    no_kd_agree = _agreement(no_kd, data, no_kd.student, teacher)
    assert kd_agree > no_kd_agree + 0.1, (kd_agree, no_kd_agree)
    assert kd_agree > 0.85


def test_teacher_is_frozen_in_eval_mode_and_not_optimized(tmp_path):
    teacher, student = tiny_bert(seed=1), tiny_bert(seed=2)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    distiller = Distiller(teacher, student, DistillationConfig(), _train_cfg(tmp_path, max_steps=3))
    distiller.train(tiny_dataset(24))
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert not isinstance(teacher, torch.nn.parallel.DistributedDataParallel)


class _StopAt(StepCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, distiller, state):
        return state.step >= self.step


def _resume_distiller(tmp_path, student_seed):
    distill = DistillationConfig(
        temperature=2.0, hard_weight=0.5,
        matches=[Match("hidden", 1, 2, projection="linear+tanh"), Match("attention", 2, 4)])
    cfg = _train_cfg(tmp_path, max_steps=8, save_steps=4, eval_steps=4, logging_steps=2,
                     lr=1e-3, warmup=2)
    teacher = tiny_bert(num_layers=4, hidden_size=48, num_heads=4, seed=3)
    return Distiller(teacher, tiny_bert(seed=student_seed), distill, cfg)


def test_resume_is_bit_exact(tmp_path):
    data, eval_data = tiny_dataset(20, seed=2), tiny_dataset(12, seed=3)
    # 20 examples at batch 8 = 3 steps per epoch, so the 8 steps cross two epochs and the
    # resume lands mid-epoch.
    straight = _resume_distiller(tmp_path / "a", student_seed=7)
    straight.train(data, eval_data)

    first = _resume_distiller(tmp_path / "b", student_seed=7)
    first.train(data, eval_data, callbacks=[_StopAt(4)])
    assert first.state.step == 4
    assert [p.name for p in first.checkpoints()] == ["checkpoint-4"]

    resumed = _resume_distiller(tmp_path / "b", student_seed=99)  # fresh weights: all restored
    history = resumed.train(data, eval_data, resume=True)
    assert resumed.state.step == 8

    ref, got = straight.student.state_dict(), resumed.student.state_dict()
    for name in ref:
        assert torch.equal(ref[name], got[name]), name
    for (name, a), b in zip(straight.projections.state_dict().items(),
                            resumed.projections.state_dict().values()):
        assert torch.equal(a, b), name
    # The history carries over: evals at step 4 (before the stop) and 8.
    assert [r["step"] for r in history.eval] == [4, 8]
    assert [p.name for p in resumed.checkpoints()] == ["checkpoint-4", "checkpoint-8"]


def test_projections_are_trained_checkpointed_and_restored(tmp_path):
    distill = DistillationConfig(matches=[Match("hidden", 2, 4)])  # 32 -> 48: auto projection
    cfg = _train_cfg(tmp_path, max_steps=3, save_steps=3)
    teacher = tiny_bert(num_layers=4, hidden_size=48, num_heads=4, seed=3)
    distiller = Distiller(teacher, tiny_bert(seed=1), distill, cfg)
    assert list(distiller.projections) == ["hidden_s2_t4/hidden_mse"]
    initial = {k: v.clone() for k, v in distiller.projections.state_dict().items()}
    distiller.train(tiny_dataset(24))
    trained = distiller.projections.state_dict()
    assert any(not torch.equal(initial[k], trained[k]) for k in initial)
    # Projections get their own optimizer group.
    assert len(distiller.accelerator._optimizers[0].param_groups) == 3

    other = Distiller(teacher, tiny_bert(seed=9), distill, cfg)
    other.train(tiny_dataset(24), resume=str(distiller.checkpoints()[-1]))
    for k, v in trained.items():
        assert torch.equal(other.projections.state_dict()[k], v)


def test_multi_teacher_loss_sees_weighted_average_of_teacher_logits(tmp_path):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    seen = []

    def recording_kd(student, teacher, mask=None, *, temperature=1.0, labels=None):
        seen.append(teacher.detach().clone())
        return get_loss("kd_kl")(student, teacher, mask, temperature=temperature)

    register_loss("recording_kd", recording_kd, overwrite=True)
    torch.manual_seed(4)
    distil_teacher = DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=60, dim=24, n_layers=2, n_heads=2, hidden_dim=48, max_position_embeddings=64,
        pad_token_id=0))
    teachers = [tiny_bert(seed=1), distil_teacher]
    data = tiny_dataset(8)
    distiller = Distiller(
        teachers, tiny_bert(seed=2),
        DistillationConfig(logit_loss="recording_kd", teacher_weights=[3.0, 1.0]),
        _train_cfg(tmp_path, max_steps=1, group_by_length=False))
    distiller.train(data)
    assert len(seen) == 1
    live = [distiller.predict(data, t)["logits"] for t in teachers]
    expected = 0.75 * live[0] + 0.25 * live[1]
    # The loop's first batch is the plan's first batch of epoch 0.
    from textdistill.data.batching import BatchPlan
    order = BatchPlan(tuple(len(x) for x in data["input_ids"]), 8, seed=42,
                      group_by_length=False).global_batches(0)[0]
    torch.testing.assert_close(seen[0].cpu(), expected[order], atol=1e-5, rtol=1e-5)


def test_teacher_cache_matches_live_losses_and_skips_teacher_forward(tmp_path):
    data = tiny_dataset(40, seed=5)
    distill = DistillationConfig(temperature=3.0)

    def run(out, cache, teacher):
        cfg = _train_cfg(tmp_path, output_dir=str(tmp_path / out), max_steps=5,
                         teacher_cache=cache, pad_to=20)
        return Distiller(teacher, tiny_bert(seed=2), distill, cfg).train(data)

    calls = []
    teacher = tiny_bert(seed=1)
    teacher.register_forward_hook(lambda *args: calls.append(1))
    live = run("live", False, teacher)
    assert len(calls) == 5
    calls.clear()
    cached = run("cached", True, teacher)
    # One pass over 40 examples at the eval batch size (16) builds the cache; training
    # itself never calls the teacher.
    assert len(calls) == 3
    calls.clear()
    again = run("cached", True, teacher)
    assert len(calls) == 0
    for key in ("loss", "loss/kd", "loss/hard"):
        torch.testing.assert_close(torch.tensor(cached.series(key)[1]),
                                   torch.tensor(live.series(key)[1]), atol=1e-5, rtol=1e-5)
        assert again.series(key) == cached.series(key)


def test_teacher_cache_dir_is_shared_between_runs(tmp_path):
    data = tiny_dataset(24, seed=6)
    shared = tmp_path / "shared-cache"
    calls = []
    teacher = tiny_bert(seed=1)
    teacher.register_forward_hook(lambda *args: calls.append(1))

    def run(out, data):
        cfg = _train_cfg(tmp_path, output_dir=str(tmp_path / out), max_steps=2,
                         teacher_cache=str(shared))
        Distiller(teacher, tiny_bert(seed=2), DistillationConfig(), cfg).train(data)

    run("first", data)
    assert calls and len(list(shared.glob("logits-*.safetensors"))) == 1
    assert not (tmp_path / "first" / "teacher_cache").exists()
    calls.clear()
    run("second", data)  # another run directory, same teacher and data: no teacher forward
    assert calls == []
    # The same token ids under another `datasets` fingerprint (as after copying the data
    # files, which changes their modification times) still hit the cache.
    copy = data.map(lambda row: row)
    assert copy._fingerprint != data._fingerprint
    run("copy", copy)
    assert calls == []
    run("third", tiny_dataset(24, seed=7))  # other data: its own file, never the stale one
    assert calls and len(list(shared.glob("logits-*.safetensors"))) == 2


def test_data_fingerprint_follows_the_teacher_inputs_only():
    from datasets import Sequence, Value

    from textdistill.teacher_cache import data_fingerprint

    data = tiny_dataset(30, seed=8)
    same = data_fingerprint(data)
    assert data_fingerprint(data.cast_column("input_ids", Sequence(Value("int32")))) == same
    assert data_fingerprint(data.map(lambda row: {"labels": 1 - row["labels"]})) == same
    assert data_fingerprint(data.select(range(29))) != same
    assert data_fingerprint(data.select(list(range(30))[::-1])) != same
    one_token = data.map(lambda row, i: {"input_ids": row["input_ids"][:-1] + [7]}
                         if i == 3 else {}, with_indices=True)
    assert data_fingerprint(one_token) != same


def test_finetuning_learns_and_writes_best_model(tmp_path):
    from transformers import AutoModelForSequenceClassification

    train, evald = tiny_dataset(256, seed=1), tiny_dataset(64, seed=2)
    cfg = _train_cfg(tmp_path, epochs=6, batch_size=16, lr=3e-3, logging_steps=10)
    distiller = Distiller(None, tiny_bert(seed=0), training_config=cfg)
    history = distiller.train(train, evald)
    assert history.eval and history.best_metric == max(r["accuracy"] for r in history.eval)
    assert history.best_metric > 0.75
    assert set(history.eval[-1]) >= {"accuracy", "f1", "mcc"}
    best = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "best")
    metrics = distiller.evaluate(evald, best)
    assert metrics["accuracy"] == pytest.approx(history.best_metric)
    assert (tmp_path / "run" / "history.json").exists()
    png = history.plot(tmp_path / "history.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_self_distillation_with_preset_matches_and_early_stopping(tmp_path):
    distill = DistillationConfig(matches="uniform")
    cfg = _train_cfg(tmp_path, epochs=50, eval_steps=1, early_stopping_patience=2, lr=1e-6)
    teacher = tiny_bert(seed=1)
    distiller = Distiller(teacher, tiny_bert(seed=2), distill, cfg)
    assert {m.name for m in distiller.matches} == {
        "hidden_s0_t0/hidden_mse", "hidden_s1_t1/hidden_mse", "hidden_s2_t2/hidden_mse",
        "attention_s1_t1/attention_mse", "attention_s2_t2/attention_mse"}
    assert len(distiller.projections) == 0
    history = distiller.train(tiny_dataset(16), tiny_dataset(16, seed=9))
    # lr 1e-6 cannot move accuracy: patience 2 stops after the third eval.
    assert distiller.state.step == 3 and len(history.eval) == 3
    assert {"loss/hidden_s1_t1/hidden_mse", "loss/attention_s2_t2/attention_mse",
            "loss/kd"} <= set(history.train[0])


def test_unknown_match_layer_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"distill\.matches\[0\]\.student_layer: 3 but"):
        Distiller(tiny_bert(), tiny_bert(), DistillationConfig(matches=[Match("hidden", 3, 1)]),
                  _train_cfg(tmp_path))


def test_bf16_after_fp32_in_one_process_and_tensorboard_logs(tmp_path):
    # A notebook switching precision between runs must not need a restart.
    Distiller(None, tiny_bert(), training_config=_train_cfg(tmp_path / "a", max_steps=1))
    cfg = _train_cfg(tmp_path / "b", max_steps=2, precision="bf16", report_to=["tensorboard"])
    distiller = Distiller(tiny_bert(seed=1), tiny_bert(seed=2), DistillationConfig(), cfg)
    assert distiller.accelerator.mixed_precision == "bf16"
    history = distiller.train(tiny_dataset(16))
    assert all(torch.isfinite(torch.tensor(v)) for v in history.series("loss/kd")[1])
    events = list((tmp_path / "b" / "run" / "logs").rglob("events.out.tfevents.*"))
    assert events, "TensorBoard wrote no event file"


def test_projections_start_from_the_training_seed(tmp_path):
    """A learned projection's init follows ``training_config.seed``, not whatever the
    global RNG happened to hold when the Distiller was made."""
    teacher, student = tiny_bert(hidden_size=32), tiny_bert(hidden_size=16, seed=1)
    distill = DistillationConfig(matches=[Match("hidden", 1, 1)])  # 16 -> 32: projected

    def projection_weights(seed: int) -> list[torch.Tensor]:
        torch.rand(7)  # other work in between moves the global RNG
        distiller = Distiller(teacher, student, distill,
                              training_config=_train_cfg(tmp_path, seed=seed))
        return [p.detach().clone() for p in distiller.projections.parameters()]

    first, again, other = projection_weights(3), projection_weights(3), projection_weights(4)
    assert first and all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_weight_files_get_the_permissions_of_any_new_file(tmp_path):
    """safetensors writes 0600; best/, checkpoints, projections and the teacher cache must be
    as readable as the configs beside them (0644 under umask 022)."""
    import os

    from textdistill.models.projections import save_projections

    old_mask = os.umask(0o022)
    try:
        cfg = _train_cfg(tmp_path, max_steps=2, save_steps=2, teacher_cache=True)
        distiller = Distiller(tiny_bert(seed=3), tiny_bert(seed=1), DistillationConfig(), cfg)
        distiller.train(tiny_dataset(24))
        projections = Distiller(tiny_bert(num_layers=4, hidden_size=48, num_heads=4, seed=3),
                                tiny_bert(seed=1),
                                DistillationConfig(matches=[Match("hidden", 2, 4)]),
                                cfg).projections
        save_projections(projections, tmp_path / "projections")
    finally:
        os.umask(old_mask)
    files = [p for p in [*(tmp_path / "run").rglob("*"), *(tmp_path / "projections").iterdir()]
             if p.is_file()]
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert {"model.safetensors", "projections.safetensors"} <= {p.name for p in weights}
    assert any(p.name.startswith("logits-") for p in weights)  # the teacher cache
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o644"}, \
        sorted((p.name, oct(p.stat().st_mode & 0o777)) for p in files)
