"""The command line as people run it: ``python -m catalog``, its inputs and the upload-only command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from catalog.tests.conftest import TEMPLATE_URL, cookiecutter_bin, s3_registration

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "sagemaker-projects/sagemaker-mlops-template"


def test_python_m_catalog_plans_a_registration_against_the_emulator(bucket, domain_id, iam_roles, template_repo):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "catalog",
            "register",
            "--mode",
            "s3",
            "--bucket",
            bucket,
            "--domain-id",
            domain_id,
            "--use-role",
            iam_roles["use"],
            "--template-dir",
            str(template_repo),
            "--template-ref",
            "v0.0.0",
            "--template-url",
            TEMPLATE_URL,
            "--cookiecutter",
            cookiecutter_bin(),
            "--dry-run",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Plan for version v0.0.0 (s3 mode):" in result.stdout
    assert "Dry run: 5 change(s) planned, nothing changed." in result.stdout


def test_upload_only_prints_what_the_registration_templates_take(run, bucket, iam_roles, clients):
    code, out = run("upload", "--bucket", bucket, "--use-role", iam_roles["use"], "--template-ref", "v0.0.0")

    assert code == 0, out
    assert f"ProductTemplateUrl: https://{bucket}.s3.us-east-1.amazonaws.com/{PREFIX}/v0.0.0/product.yaml" in out
    assert "TemplateVersion: v0.0.0" in out
    assert len(clients["s3"].list_objects_v2(Bucket=bucket)["Contents"]) == 3

    code, out = run("upload", "--bucket", bucket, "--use-role", iam_roles["use"], "--template-ref", "v0.0.0")
    assert code == 0 and "Already up to date" in out


def test_project_answers_cannot_be_fixed_at_registration(run, bucket, domain_id, iam_roles):
    code, out = run(*s3_registration(bucket, domain_id, iam_roles["use"], "--answer", "project_name=x"))
    assert code == 1 and "--answer project_name=... cannot be fixed at registration" in out


def test_unknown_questions_and_bad_roles_are_named(run, bucket, domain_id, iam_roles):
    code, out = run(*s3_registration(bucket, domain_id, iam_roles["use"], "--answer", "colour=blue"))
    assert code == 1 and "--answer colour=... is not a template question: use one of project_name" in out

    code, out = run(*s3_registration(bucket, domain_id, "SageMakerMlopsTemplateUseRole"))
    assert code == 1 and "--use-role 'SageMakerMlopsTemplateUseRole' is not a role ARN" in out


def test_toolchain_parameters_are_checked_against_the_toolchain(run, bucket, domain_id, iam_roles):
    base = ["register", "--mode", "s3", "--bucket", bucket, "--domain-id", domain_id, "--use-role", iam_roles["use"]]
    base += ["--template-ref", "v0.0.0"]

    code, out = run(*base, "--toolchain-parameter", "Colour=blue")
    assert code == 1 and "--toolchain-parameter Colour=... is not a parameter of the toolchain stack" in out
    assert "GitHubOidcProviderArn" in out

    code, out = run(*base, "--toolchain-parameter", "BranchName=develop")
    assert code == 1 and "--toolchain-parameter BranchName=... is set for each project by the product" in out

    code, out = run(*base, "--toolchain-parameter", "ProdAccountId=210987654321", "--dry-run")
    assert code == 0, out
