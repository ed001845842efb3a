"""Tests of the CI/CD definitions, the stage runner and the template-update stage."""
