"""Helpers the GitHub Actions deployment workflow runs (issue 6).

Each module is a small command (``python -m pipeline.<module>``) with no Azure
SDK dependency, so the steps of ``.github/workflows/deploy.yml`` that turn
Azure CLI output into workflow outputs or deployment inputs are plain,
reviewable and unit-tested (``tests/pipeline``) instead of inline shell.
"""
