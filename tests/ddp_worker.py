"""Worker for test_ddp.py: the same script runs under 1 or N processes unchanged.

usage: torchrun --nproc_per_node N tests/ddp_worker.py OUT_DIR GLOBAL_BATCH
"""

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny import tiny_bert, tiny_dataset  # noqa: E402

from textdistill import DistillationConfig, Distiller, Match, TrainingConfig  # noqa: E402


def main() -> None:
    out, global_batch = Path(sys.argv[1]), int(sys.argv[2])
    no_dropout = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    teacher = tiny_bert(num_layers=4, hidden_size=48, num_heads=4, seed=3, **no_dropout)
    student = tiny_bert(seed=4, **no_dropout)
    distill = DistillationConfig(temperature=2.0, hard_weight=0.5,
                                 matches=[Match("hidden", 2, 4), Match("attention", 1, 2)])
    # The teacher cache is built from both ranks' shares and written by rank 0 only.
    # Equal lengths: per-rank token means then equal the global token mean.
    data = tiny_dataset(48, seed=6, min_len=10, max_len=10)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    distiller = Distiller(teacher, student, distill, TrainingConfig(
        output_dir=str(out / "run"), max_steps=4, lr=1e-3, warmup=0.0, logging_steps=1,
        report_to=[], progress_bar=False, save_steps=4, batch_size=global_batch // world,
        teacher_cache=True))
    history = distiller.train(data, tiny_dataset(20, seed=7))
    assert distiller.accelerator.num_processes == world, "accelerate missed the launch"
    rank = distiller.accelerator.process_index
    state = {f"student.{k}": v for k, v in distiller.accelerator.unwrap_model(
        distiller.student).state_dict().items()}
    state.update({f"projection.{k}": v for k, v in distiller.projections.state_dict().items()})
    torch.save(state, out / f"weights-world{world}-rank{rank}.pt")
    if rank == 0:
        (out / f"history-world{world}.json").write_text(json.dumps(
            {"eval": history.eval, "loss": history.series("loss")[1]}))


if __name__ == "__main__":
    main()
