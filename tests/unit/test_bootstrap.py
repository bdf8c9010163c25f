"""The resampling plans against `arch`, the maintained implementation they follow."""

from __future__ import annotations

import numpy as np
import pytest
from arch.bootstrap import optimal_block_length as arch_block_length

from benchlab.runners.analysis.bootstrap import optimal_block_length, plan, stationary_indices


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    x = np.zeros(n)
    noise = rng.normal(size=n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + noise[i]
    return x


@pytest.mark.parametrize(("n", "phi"), [(30, 0.0), (60, 0.5), (120, 0.8), (300, 0.9), (1000, 0.3), (200, -0.4)])
def test_block_length_matches_arch(n: int, phi: float) -> None:
    rng = np.random.default_rng(n)
    for _ in range(5):
        x = _ar1(rng, n, phi) + rng.normal(0, 0.5, n)
        want = float(arch_block_length(x)["stationary"].iloc[0])
        assert optimal_block_length(x) == pytest.approx(want, rel=1e-9)


def test_stronger_autocorrelation_gives_longer_blocks() -> None:
    rng = np.random.default_rng(1)
    short = np.median([optimal_block_length(_ar1(rng, 300, 0.1)) for _ in range(10)])
    long = np.median([optimal_block_length(_ar1(rng, 300, 0.9)) for _ in range(10)])
    assert long > 3 * short


def test_stationary_indices_form_wrapping_blocks_of_the_expected_length() -> None:
    rng = np.random.default_rng(2)
    idx = stationary_indices(200, 8.0, 500, rng)
    assert idx.shape == (500, 200) and idx.min() >= 0 and idx.max() <= 199
    continues = (idx[:, 1:] == (idx[:, :-1] + 1) % 200).mean()
    assert continues == pytest.approx(1 - 1 / 8, abs=0.01)  # a new block starts with probability 1/8
    counts = np.bincount(idx.ravel(), minlength=200)  # every window equally likely: 500 draws each
    assert counts.min() > 400 and counts.max() < 600


def test_block_of_one_is_an_iid_bootstrap() -> None:
    idx = stationary_indices(100, 1.0, 300, np.random.default_rng(3))
    assert (idx[:, 1:] == (idx[:, :-1] + 1) % 100).mean() == pytest.approx(0.01, abs=0.005)


def test_plan_weights_count_draws_and_runs() -> None:
    rng = np.random.default_rng(4)
    one = plan([50, 30], [3.0, 2.0], 200, rng, runs=False)
    assert one.weights.shape == (200, 80)
    assert np.all(one.weights[:, :50].sum(axis=1) == 50) and np.all(one.weights[:, 50:].sum(axis=1) == 30)
    both = plan([50, 30], [3.0, 2.0], 400, rng, runs=True)
    drawn = both.weights.sum(axis=1)
    assert set(np.unique(drawn)) <= {60.0, 80.0, 100.0} and both.resampled_runs
    assert 0.15 < np.mean(drawn == 100) < 0.35  # the first run twice: probability 1/4
