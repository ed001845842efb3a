"""The chi-square tail the Robust comparison uses agrees with scipy's."""

from __future__ import annotations

import pytest

from monitoring.drift_statistics import chi2_survival, homogeneity_p_value


@pytest.mark.parametrize("dof", [1, 2, 3, 9, 10, 57])
@pytest.mark.parametrize("x", [0.5, 3.0, 12.0, 80.0, 400.0])
def test_chi2_survival_matches_scipy(dof, x):
    stats = pytest.importorskip("scipy.stats")
    assert chi2_survival(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-7, abs=1e-12)


def test_identical_shares_give_p_value_one():
    assert homogeneity_p_value([10, 20, 30], [20, 40, 60]) == pytest.approx(1.0)


def test_bins_empty_on_both_sides_are_ignored():
    assert homogeneity_p_value([10, 0, 30], [20, 0, 60]) == pytest.approx(1.0)
