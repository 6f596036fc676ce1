"""run_inference: sharded, length-sorted, gathered back into dataset order."""

from __future__ import annotations

import threading
from contextlib import nullcontext

import pytest
import torch
from tiny import tiny_bert, tiny_dataset

from textdistill.inference import run_inference
from textdistill.models.adaptors import hf_adaptor


class ThreadAccelerator:
    """One rank of a world of threads: ``gather`` concatenates every rank's tensor in rank
    order, as ``accelerate.Accelerator.gather`` does across processes."""

    def __init__(self, rank: int, world: int, slots: list, barrier: threading.Barrier):
        self.process_index, self.num_processes = rank, world
        self.is_local_main_process = rank == 0
        self.device = torch.device("cpu")
        self._slots, self._barrier = slots, barrier

    def autocast(self):
        return nullcontext()

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        self._slots[self.process_index] = tensor
        self._barrier.wait()
        gathered = torch.cat(list(self._slots))
        self._barrier.wait()  # nobody overwrites a slot before every rank has read it
        return gathered


def _on_ranks(world: int, run) -> list[torch.Tensor]:
    """``run(accelerator)`` on ``world`` thread ranks; their results, by rank."""
    slots, barrier = [None] * world, threading.Barrier(world, timeout=30)
    results: list = [None] * world
    errors: list[BaseException] = []

    def target(rank: int) -> None:
        try:
            results[rank] = run(ThreadAccelerator(rank, world, slots, barrier))
        except BaseException as err:  # re-raised in the test's thread below
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=target, args=(rank,)) for rank in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def _token_stats(batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Two "models" whose logits identify the example exactly: (token sum, length) and
    (first word, last word)."""
    mask = batch["attention_mask"]
    ids = batch["input_ids"] * mask
    lengths = mask.sum(-1)
    last = ids.gather(1, (lengths - 2).unsqueeze(1)).squeeze(1)
    return [torch.stack([ids.sum(-1), lengths], dim=1).float(),
            torch.stack([ids[:, 1], last], dim=1).float()]


def _expected_stats(data) -> torch.Tensor:
    rows = data["input_ids"]
    return torch.tensor([[[sum(r), len(r)] for r in rows],
                         [[r[1], r[-2]] for r in rows]], dtype=torch.float32)


@pytest.mark.parametrize(("world", "n"), [(1, 7), (2, 7), (3, 10), (4, 3)])
def test_every_example_comes_back_in_dataset_order(world, n):
    """Shards of unequal size (7 on 2 ranks, 10 on 3), and ranks without any example
    (3 on 4), all gather into the dataset's order."""
    data = tiny_dataset(n, seed=11)

    def run(accelerator):
        return run_inference(data, _token_stats, accelerator, batch_size=2, pad_token_id=0)

    results = _on_ranks(world, run)
    expected = _expected_stats(data)
    for rank_result in results:
        assert rank_result.shape == (2, n, 2) and rank_result.dtype == torch.float32
        assert torch.equal(rank_result, expected)


def test_each_rank_runs_its_share_longest_first():
    data = tiny_dataset(9, seed=12)
    seen: dict[int, list[int]] = {}

    def run(accelerator):
        def forward(batch):
            assert batch["input_ids"].shape[1] == int(batch["attention_mask"].sum(-1).max())
            seen.setdefault(accelerator.process_index, []).extend(
                batch["attention_mask"].sum(-1).tolist())
            return _token_stats(batch)

        return run_inference(data, forward, accelerator, batch_size=2, pad_token_id=0)

    _on_ranks(2, run)
    lengths = [len(ids) for ids in data["input_ids"]]
    for rank, share in seen.items():
        assert share == sorted((lengths[i] for i in range(rank, 9, 2)), reverse=True)


def test_fixed_padding_gives_the_logits_of_dynamic_padding():
    data = tiny_dataset(12, seed=13, min_len=2, max_len=9)
    model = tiny_bert(seed=1).eval()
    accelerator = ThreadAccelerator(0, 1, [None], threading.Barrier(1))
    widths = []

    def forward(batch):
        widths.append(batch["input_ids"].shape[1])
        return [hf_adaptor(model, batch).logits]

    dynamic = run_inference(data, forward, accelerator, batch_size=4, pad_token_id=0)
    assert len(set(widths)) > 1
    widths.clear()
    fixed = run_inference(data, forward, accelerator, batch_size=4, pad_token_id=0, pad_to=16)
    assert set(widths) == {16}
    torch.testing.assert_close(fixed, dynamic, atol=1e-5, rtol=1e-5)
    one_by_one = torch.cat([hf_adaptor(model, {"input_ids": torch.tensor([ids])}).logits
                            for ids in data["input_ids"]]).detach()
    torch.testing.assert_close(dynamic[0], one_by_one, atol=1e-5, rtol=1e-5)


def test_empty_dataset_is_an_error():
    accelerator = ThreadAccelerator(0, 1, [None], threading.Barrier(1))
    with pytest.raises(ValueError, match="dataset is empty"):
        run_inference(tiny_dataset(0), _token_stats, accelerator, batch_size=2,
                      pad_token_id=0)
