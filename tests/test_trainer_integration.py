"""DistillationTrainer: the Distiller's objective inside transformers.Trainer, on tiny models."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny import tiny_bert, tiny_dataset
from transformers import EvalPrediction, TrainingArguments

from textdistill import DistillationConfig, Distiller, Match, TrainingConfig
from textdistill.errors import ConfigError
from textdistill.integrations import DistillationTrainer, classification_metrics
from textdistill.models.projections import SPECS_NAME, WEIGHTS_NAME, load_projections

# Hidden (32 -> 48: a projection) and attention matches, soft and hard targets.
MATCHES = DistillationConfig(temperature=2.0, hard_weight=0.5,
                             matches=[Match("hidden", 2, 4), Match("attention", 2, 4)])
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def _teacher():
    return tiny_bert(num_layers=4, hidden_size=48, num_heads=4, seed=3, **NO_DROPOUT)


def _student(seed: int = 1):
    return tiny_bert(seed=seed, **NO_DROPOUT)


def _args(tmp_path, **overrides) -> TrainingArguments:
    base = dict(output_dir=str(tmp_path / "run"), per_device_train_batch_size=8,
                per_device_eval_batch_size=16, learning_rate=5e-3, max_steps=1,
                logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
                use_cpu=True)
    return TrainingArguments(**(base | overrides))


def _distiller(tmp_path, teacher, student, config, **kwargs) -> Distiller:
    cfg = TrainingConfig(output_dir=str(tmp_path / "distiller"), batch_size=8, max_steps=1,
                         logging_steps=1, report_to=[], progress_bar=False)
    return Distiller(teacher, student, config, cfg, **kwargs)


def test_first_step_loss_and_metrics_equal_the_distillers(tmp_path):
    # One batch holds the whole set, so both loops see the same batch whatever their order;
    # one row has no label (-100), which the hard loss must skip in both.
    rows = tiny_dataset(8, seed=2).to_list()
    rows[3]["labels"] = -100
    data, eval_data = datasets.Dataset.from_list(rows), tiny_dataset(16, seed=4)
    teacher = _teacher()
    distiller = _distiller(tmp_path, teacher, _student(), MATCHES)
    trainer = DistillationTrainer(model=_student(), args=_args(tmp_path), teacher=teacher,
                                  distill_config=MATCHES, train_dataset=data)
    assert list(trainer.projections) == list(distiller.projections) == \
        ["hidden_s2_t4/hidden_mse"]
    trainer.projections.load_state_dict(distiller.projections.state_dict())

    history = distiller.train(data)
    trainer.train()
    logged = trainer.state.log_history[0]
    for key in ("loss", "loss/kd", "loss/hard", "loss/hidden_s2_t4/hidden_mse",
                "loss/attention_s2_t4/attention_mse"):
        assert logged[key] == pytest.approx(history.series(key)[1][0], rel=1e-5, abs=1e-7), key

    metrics = trainer.evaluate(eval_data)
    expected = distiller.evaluate(eval_data, model=trainer.model)
    for key, value in expected.items():
        assert metrics[f"eval_{key}"] == pytest.approx(value), key
    assert "eval_loss" in metrics


def test_projections_survive_a_resume_and_stay_out_of_the_saved_model(tmp_path):
    data = tiny_dataset(24, seed=2)  # 3 steps an epoch: the resume lands mid-epoch

    def trainer(run, student_seed):
        args = _args(tmp_path, output_dir=str(tmp_path / run), max_steps=4,
                     save_strategy="steps", save_steps=2, learning_rate=1e-3)
        return DistillationTrainer(model=_student(student_seed), args=args, teacher=_teacher(),
                                   distill_config=MATCHES, train_dataset=data)

    straight = trainer("a", student_seed=1)
    straight.train()
    checkpoint = tmp_path / "a" / "checkpoint-2"
    assert {WEIGHTS_NAME, SPECS_NAME} <= {p.name for p in checkpoint.iterdir()}

    resumed = trainer("b", student_seed=99)  # fresh weights and projections: all restored
    resumed.train(resume_from_checkpoint=str(checkpoint))
    for name, value in straight.projections.state_dict().items():
        torch.testing.assert_close(resumed.projections.state_dict()[name], value)
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value)
    saved = load_projections(tmp_path / "a" / "checkpoint-4").state_dict()
    for name, value in straight.projections.state_dict().items():
        assert torch.equal(saved[name], value), name

    straight.save_model(str(tmp_path / "final"))
    files = {p.name for p in (tmp_path / "final").iterdir()}
    assert not {WEIGHTS_NAME, SPECS_NAME} & files
    weights = load_file(str(tmp_path / "final" / "model.safetensors"))
    assert set(weights) == set(straight.model.state_dict())

    shutil.copytree(checkpoint, tmp_path / "bare")
    (tmp_path / "bare" / SPECS_NAME).unlink()
    with pytest.raises(ConfigError, match=f"resume_from_checkpoint: .* has no {SPECS_NAME}"):
        trainer("c", student_seed=1).train(resume_from_checkpoint=str(tmp_path / "bare"))


def test_teacher_stays_frozen_in_eval_mode_and_out_of_the_optimizer(tmp_path):
    teacher = _teacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    trainer = DistillationTrainer(model=_student(), args=_args(tmp_path, max_steps=3),
                                  teacher=teacher, distill_config=MATCHES,
                                  train_dataset=tiny_dataset(24), projection_lr=1e-2)
    trainer.train()
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not optimized & {id(p) for p in teacher.parameters()}
    last_group = trainer.optimizer.param_groups[-1]
    assert [id(p) for p in last_group["params"]] == [id(p) for p in trainer.projections.parameters()]
    assert last_group["initial_lr"] == 1e-2
    # Cleared after each step: the Trainer itself only clears the model's gradients.
    assert all(p.grad is None for p in trainer.projections.parameters())


def test_one_gradient_norm_clips_the_student_and_the_projections(tmp_path):
    # Plain SGD at lr 1 moves the weights by the clipped gradient itself, so the whole
    # update's norm is max_grad_norm when it clips one norm over all of them.
    args = _args(tmp_path, optim="sgd", learning_rate=1.0, max_grad_norm=1e-3)
    trainer = DistillationTrainer(model=_student(), args=args, teacher=_teacher(),
                                  distill_config=MATCHES, train_dataset=tiny_dataset(8))
    modules = (trainer.model, trainer.projections)
    before = [p.detach().clone() for m in modules for p in m.parameters()]
    trainer.train()
    after = [p.detach() for m in modules for p in m.parameters()]
    update = torch.cat([(a - b).flatten() for a, b in zip(after, before)])
    assert update.norm().item() == pytest.approx(1e-3, rel=1e-3)
    assert trainer.state.log_history[0]["grad_norm"] > 1e-2  # it did clip


def test_gradient_accumulation_takes_the_same_step_as_one_big_batch(tmp_path):
    config = DistillationConfig(temperature=2.0, hard_weight=0.5)
    data = tiny_dataset(8, seed=5)
    students = []
    for run, batch, accumulation in (("one", 8, 1), ("two", 4, 2)):
        # Plain SGD, whose step is proportional to the gradient (Adam's first step is not).
        args = _args(tmp_path, output_dir=str(tmp_path / run), per_device_train_batch_size=batch,
                     gradient_accumulation_steps=accumulation, optim="sgd", learning_rate=1.0)
        trainer = DistillationTrainer(model=_student(), args=args, teacher=_teacher(),
                                      distill_config=config, train_dataset=data)
        trainer.train()
        students.append((trainer.model.state_dict(), trainer.state.log_history[0]["loss"]))
    (one, one_loss), (two, two_loss) = students
    assert two_loss == pytest.approx(one_loss, rel=1e-5)
    for name, value in one.items():
        torch.testing.assert_close(two[name], value, rtol=1e-4, atol=1e-6)


def test_teacher_with_its_own_tokenizer_reads_its_columns_through_the_trainer(tmp_path):
    # The teacher's ids differ from the student's (the body reversed); an unused text
    # column and a `label` column show what remove_unused_columns keeps.
    rows = []
    for row in tiny_dataset(8, seed=6).to_list():
        ids = row["input_ids"]
        own = [ids[0], *reversed(ids[1:-1]), ids[-1]]
        rows.append({"input_ids": ids, "attention_mask": row["attention_mask"],
                     "label": row["labels"], "text": "unused", "t0_input_ids": own,
                     "t0_attention_mask": [1] * len(own)})
    data = datasets.Dataset.from_list(rows)
    config = DistillationConfig(temperature=2.0, hard_weight=0.5)
    tokenizers = {0: SimpleNamespace(pad_token_id=0)}
    teacher = _teacher()
    distiller = _distiller(tmp_path, teacher, _student(), config, teacher_tokenizers=tokenizers)
    trainer = DistillationTrainer(model=_student(), args=_args(tmp_path), teacher=teacher,
                                  distill_config=config, teacher_tokenizers=tokenizers,
                                  train_dataset=data)
    history = distiller.train(data)
    trainer.train()
    logged = trainer.state.log_history[0]
    assert logged["loss/kd"] == pytest.approx(history.series("loss/kd")[1][0], rel=1e-5)
    assert logged["loss"] == pytest.approx(history.series("loss")[1][0], rel=1e-5)


def test_bf16_on_cpu_trains(tmp_path):
    trainer = DistillationTrainer(model=_student(), args=_args(tmp_path, bf16=True, max_steps=2),
                                  teacher=_teacher(), distill_config=MATCHES,
                                  train_dataset=tiny_dataset(16))
    trainer.train()
    assert all(np.isfinite(r["loss"]) for r in trainer.state.log_history if "loss" in r)


def test_push_to_hub_offline_fails_with_the_hubs_message(tmp_path, monkeypatch):
    import huggingface_hub

    # The Hub reads HF_HUB_OFFLINE when imported, before the conftest fixture sets it.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    args = _args(tmp_path, push_to_hub=True, hub_model_id="someone/student")
    with pytest.raises(OSError, match="offline mode is enabled"):
        DistillationTrainer(model=_student(), args=args, teacher=_teacher())


def test_what_the_trainer_refuses(tmp_path):
    with pytest.raises(ConfigError, match="teacher: give a teacher"):
        DistillationTrainer(model=_student(), args=_args(tmp_path), teacher=[])
    with pytest.raises(ConfigError, match="model_init: not supported"):
        DistillationTrainer(model=_student(), args=_args(tmp_path), teacher=_teacher(),
                            model_init=_student)
    # plan()'s checks, as for the Distiller.
    with pytest.raises(ConfigError, match="student_layer: 5"):
        DistillationTrainer(model=_student(), args=_args(tmp_path), teacher=_teacher(),
                            distill_config=DistillationConfig(matches=[Match("hidden", 5, 4)]))
    optimizer = torch.optim.SGD(_student().parameters(), lr=0.1)
    trainer = DistillationTrainer(model=_student(), args=_args(tmp_path), teacher=_teacher(),
                                  distill_config=MATCHES, train_dataset=tiny_dataset(8),
                                  optimizers=(optimizer, None))
    with pytest.raises(ConfigError, match="does not hold the projections"):
        trainer.train()


def test_default_metrics_leave_out_unlabelled_rows():
    logits = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    labels = np.array([1, 0, -100, -100])
    metrics = classification_metrics(2)(EvalPrediction(predictions=logits, label_ids=labels))
    assert metrics["accuracy"] == 1.0 and metrics["f1"] == 1.0


def test_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    from test_readme import readme_code_blocks
    from tiny import sentiment_rows, write_tiny_classifier

    (block,) = readme_code_blocks("Inside transformers.Trainer")
    # Tiny stand-ins for the Hub's models (one vocabulary, 32 -> 48 wide) and SST-2.
    teacher = write_tiny_classifier(tmp_path / "teacher", num_layers=4, hidden_size=48,
                                    num_heads=4)
    small = write_tiny_classifier(tmp_path / "small")
    for hub_id, directory in (("textattack/bert-base-uncased-SST-2", teacher),
                              ("google/bert_uncased_L-4_H-256_A-4", small)):
        assert f'"{hub_id}"' in block
        block = block.replace(f'"{hub_id}"', f'"{directory}"')

    def load_dataset(name):
        assert name == "stanfordnlp/sst2"
        return datasets.DatasetDict({
            split: datasets.Dataset.from_list(
                [{"idx": i, "sentence": s, "label": y}
                 for i, (s, y) in enumerate(sentiment_rows(n, seed))])
            for split, n, seed in (("train", 24, 0), ("validation", 16, 1))})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})

    assert "'eval_accuracy':" in capsys.readouterr().out
    run = tmp_path / "runs" / "trainer-kd"
    checkpoints = list(run.glob("checkpoint-*"))
    assert checkpoints and all((checkpoint / WEIGHTS_NAME).is_file() for checkpoint in checkpoints)
    saved = {p.name for p in (run / "student").iterdir()}
    assert "model.safetensors" in saved and not {WEIGHTS_NAME, SPECS_NAME} & saved
