"""Tests of the drift job and baselines."""
