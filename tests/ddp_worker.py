"""Worker for test_ddp.py: the same script runs under 1 or N processes unchanged.

usage: torchrun --nproc_per_node N tests/ddp_worker.py OUT_DIR GLOBAL_BATCH [distiller|trainer]

``distiller`` trains with the Distiller, ``trainer`` with the DistillationTrainer: the same
teacher, student, matches and data either way.
"""

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny import tiny_bert, tiny_dataset  # noqa: E402

from textdistill import DistillationConfig, Distiller, Match, TrainingConfig  # noqa: E402

NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# Hidden 2 -> 4 joins 32 to 48 wide: a projection, trained outside the DDP-wrapped student.
DISTILL = DistillationConfig(temperature=2.0, hard_weight=0.5,
                             matches=[Match("hidden", 2, 4), Match("attention", 1, 2)])


def _teacher():
    return tiny_bert(num_layers=4, hidden_size=48, num_heads=4, seed=3, **NO_DROPOUT)


def _student():
    return tiny_bert(seed=4, **NO_DROPOUT)


def _data():
    # Equal lengths: per-rank token means then equal the global token mean.
    return tiny_dataset(48, seed=6, min_len=10, max_len=10)


def _save_weights(out: Path, world: int, rank: int, student: torch.nn.Module,
                  projections: torch.nn.Module) -> None:
    state = {f"student.{k}": v for k, v in student.state_dict().items()}
    state.update({f"projection.{k}": v for k, v in projections.state_dict().items()})
    torch.save(state, out / f"weights-world{world}-rank{rank}.pt")


def run_distiller(out: Path, global_batch: int, world: int) -> None:
    # The teacher cache is built from both ranks' shares and written by rank 0 only.
    distiller = Distiller(_teacher(), _student(), DISTILL, TrainingConfig(
        output_dir=str(out / "run"), max_steps=4, lr=1e-3, warmup=0.0, logging_steps=1,
        report_to=[], progress_bar=False, save_steps=4, batch_size=global_batch // world,
        teacher_cache=True))
    history = distiller.train(_data(), tiny_dataset(20, seed=7))
    assert distiller.accelerator.num_processes == world, "accelerate missed the launch"
    rank = distiller.accelerator.process_index
    _save_weights(out, world, rank, distiller.accelerator.unwrap_model(distiller.student),
                  distiller.projections)
    if rank == 0:
        (out / f"history-world{world}.json").write_text(json.dumps(
            {"eval": history.eval, "loss": history.series("loss")[1]}))


def run_trainer(out: Path, global_batch: int, world: int) -> None:
    from torch.nn.parallel import DistributedDataParallel
    from transformers import TrainingArguments

    from textdistill.integrations import DistillationTrainer

    teacher = _teacher()
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    args = TrainingArguments(
        output_dir=str(out / "trainer-run"), learning_rate=1e-3, max_steps=4, logging_steps=1,
        # Two micro-batches a step: the projections' gradients accumulate on each rank
        # before they are averaged across the ranks.
        per_device_train_batch_size=global_batch // (world * 2), gradient_accumulation_steps=2,
        save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True)
    trainer = DistillationTrainer(model=_student(), args=args, teacher=teacher,
                                  distill_config=DISTILL, train_dataset=_data())
    trainer.train()
    assert trainer.accelerator.num_processes == world, "accelerate missed the launch"
    rank = trainer.accelerator.process_index
    _save_weights(out, world, rank, trainer.model, trainer.projections)
    # A tensor's device as `.to(args.device)` leaves it ("cpu:0" becomes "cpu").
    device = torch.empty(0, device=trainer.args.device).device
    (out / f"trainer-world{world}-rank{rank}.json").write_text(json.dumps({
        "teacher_on_device": all(v.device == device for v in teacher.state_dict().values()),
        "teacher_training": teacher.training,
        "teacher_frozen": not any(p.requires_grad for p in teacher.parameters()),
        "teacher_is_the_given_model": trainer.teachers.models == [teacher],
        "teacher_is_ddp": any(isinstance(t, DistributedDataParallel)
                              for t in trainer.teachers.models),
        "teacher_unchanged": all(torch.equal(v, teacher.state_dict()[k])
                                 for k, v in teacher_before.items()),
        "student_is_ddp": isinstance(trainer.model_wrapped, DistributedDataParallel),
        # json writes and reads NaN and Infinity, so a non-finite loss reaches the test.
        "logs": [entry for entry in trainer.state.log_history if "loss" in entry]}))


def main() -> None:
    out, global_batch = Path(sys.argv[1]), int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "distiller"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    {"distiller": run_distiller, "trainer": run_trainer}[mode](out, global_batch, world)


if __name__ == "__main__":
    main()
