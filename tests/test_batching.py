import torch

from textdistill.data.batching import BatchPlan, pad_batch


def test_pad_batch_pads_to_longest_and_keeps_scalars():
    features = {"input_ids": [[2, 7, 3], [2, 9, 9, 9, 3]], "attention_mask": [[1] * 3, [1] * 5],
                "labels": [1, 0], "idx": [4, 7], "sentence": ["a", "b"]}
    batch = pad_batch(features, pad_token_id=0)
    assert batch["input_ids"].tolist() == [[2, 7, 3, 0, 0], [2, 9, 9, 9, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert batch["labels"].tolist() == [1, 0] and batch["idx"].tolist() == [4, 7]
    assert "sentence" not in batch


def test_pad_batch_max_length_and_missing_mask():
    batch = pad_batch({"input_ids": [[5, 6], [5]], "token_type_ids": [[0, 1], [0]]}, 1, pad_to=4)
    assert batch["input_ids"].tolist() == [[5, 6, 1, 1], [5, 1, 1, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 0, 0, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 1, 0, 0], [0, 0, 0, 0]]


def _lengths(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randint(3, 60, (n,), generator=g).tolist())


def test_plan_is_deterministic_per_epoch_and_covers_every_example():
    plan = BatchPlan(_lengths(103), batch_size=8, seed=3)
    first = plan.global_batches(0)
    assert first == BatchPlan(_lengths(103), batch_size=8, seed=3).global_batches(0)
    assert first != plan.global_batches(1)
    assert sorted(i for b in first for i in b) == list(range(103))
    assert len(first) == plan.batches_per_epoch == 13


def test_two_ranks_split_the_global_batches_of_one():
    lengths = _lengths(50)
    two = BatchPlan(lengths, batch_size=4, num_processes=2, seed=1)
    one = BatchPlan(lengths, batch_size=8, num_processes=1, seed=1)
    assert two.global_batches(0)[:-1] == one.global_batches(0)[:-1]
    for g, r0, r1 in zip(two.global_batches(0), two.local_batches(0, 0), two.local_batches(0, 1)):
        assert r0 + r1 == g and len(r0) == len(r1)
    # 50 is not divisible by 8: the last global batch is topped up to an even split.
    assert len(two.global_batches(0)[-1]) % 2 == 0


def test_length_grouping_reduces_padding():
    lengths = _lengths(2000)

    def padded_tokens(plan):
        return sum(max(lengths[i] for i in b) * len(b) for b in plan.global_batches(0))

    grouped = padded_tokens(BatchPlan(lengths, batch_size=32, group_by_length=True))
    shuffled = padded_tokens(BatchPlan(lengths, batch_size=32, group_by_length=False))
    assert grouped < 0.8 * shuffled
    assert grouped >= sum(lengths)
