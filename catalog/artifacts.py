"""What a registration uploads, built from a tagged template release (standard library and git only).

For template version V under s3://BUCKET/PREFIX/:
- ``V/product.yaml``: catalog/product.yaml with its Registration mapping filled in (the template Studio shows);
- ``V/toolchain.json``: the generated repository's own infra/lib/toolchain.yaml, baked with the registration's
  answers and made project-independent (catalog/toolchain.py); the product nests it, so no copy is kept here;
- ``V/seed-source.zip``: the seeding build's source: buildspec.yml, seed_repository.py, requirements.txt,
  answers.json and template.bundle (a git bundle of the template files at V, tagged V).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from catalog.errors import CatalogError
from catalog.toolchain import PLACEHOLDER_NAME, project_independent

CATALOG_DIR = Path(__file__).resolve().parent
PRODUCT_TEMPLATE = CATALOG_DIR / "product.yaml"
SEED_DIR = CATALOG_DIR / "seed"
# What a template checkout needs: cookiecutter reads cookiecutter.json + hooks, copier reads copier.yml.
TEMPLATE_PARTS = ("cookiecutter.json", "copier.yml", "hooks", "{{cookiecutter.project_slug}}")
TOOLCHAIN_PATH = "infra/lib/toolchain.yaml"
PRODUCT_KEY, TOOLCHAIN_KEY, SEED_KEY = "product.yaml", "toolchain.json", "seed-source.zip"
# Answers that must come from the SageMaker project, never from the registration.
PROJECT_ANSWERS = ("project_name", "project_slug")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "sagemaker-mlops-template release",
    "GIT_AUTHOR_EMAIL": "release@noreply.invalid",
    "GIT_COMMITTER_NAME": "sagemaker-mlops-template release",
    "GIT_COMMITTER_EMAIL": "release@noreply.invalid",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
}
# A zip entry's timestamp, fixed so the same release always gives the same archive.
ZIP_TIME = (2000, 1, 1, 0, 0, 0)


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise CatalogError(f"git {' '.join(args)} in {cwd} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def resolve_version(template_dir: Path, ref: str, version: str | None) -> str:
    """The release name: the tag at ``ref`` unless given; untagged work cannot be registered by accident."""
    if version:
        return version
    result = subprocess.run(
        ["git", "describe", "--tags", "--exact-match", ref], cwd=template_dir, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise CatalogError(
            f"--template-ref '{ref}' in {template_dir} is not a tagged release: "
            f"tag it (for example: git tag v1.2.0 {ref}) "
            "or give --template-version."
        )
    return result.stdout.strip()


def default_template_url(template_dir: Path) -> str | None:
    result = subprocess.run(["git", "remote", "get-url", "origin"], cwd=template_dir, capture_output=True, text=True)
    return result.stdout.strip() or None if result.returncode == 0 else None


@dataclass
class Release:
    """One template version ready to upload."""

    version: str
    template_url: str
    answers: dict[str, object]
    bundle: bytes
    toolchain: bytes
    ci_provider: str


def build_bundle(template_dir: Path, ref: str, version: str, workdir: Path) -> Path:
    """The template files at ``ref`` as a one-commit repository tagged ``version``, bundled.

    A seeded repository then records ``_commit: <version>`` exactly like a bake from the template's own
    repository at that tag, so ``copier update`` can take it forward.
    """
    git(template_dir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    repo = workdir / "template"
    repo.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "--", *TEMPLATE_PARTS], cwd=template_dir, capture_output=True
    )
    if archive.returncode != 0:
        raise CatalogError(
            f"git archive {ref} in {template_dir} failed: {archive.stderr.decode(errors='replace').strip()} "
            "(is it a checkout of sagemaker-mlops-template?)"
        )
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive.stdout, check=True)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--no-verify", "--message", f"sagemaker-mlops-template {version}")
    git(repo, "tag", version)
    bundle = workdir / "template.bundle"
    git(repo, "bundle", "create", str(bundle), "--all")
    return bundle


def template_defaults(template: Path) -> dict[str, object]:
    config = json.loads((template / "cookiecutter.json").read_text(encoding="utf-8"))
    return {key: value for key, value in config.items() if not key.startswith("_")}


def validate_answers(answers: dict[str, object], defaults: dict[str, object]) -> None:
    for key in answers:
        if key in PROJECT_ANSWERS:
            raise CatalogError(
                f"--answer {key}=... cannot be fixed at registration: every SageMaker project's name becomes its "
                "project_name (and project_slug is derived from it)."
            )
        if key not in defaults:
            raise CatalogError(f"--answer {key}=... is not a template question: use one of {', '.join(defaults)}.")


def render_toolchain(template: Path, answers: dict[str, object], cookiecutter_bin: str, workdir: Path) -> bytes:
    """Bake the template with the registration's answers and take the generated toolchain stack from it."""
    out = workdir / "toolchain-bake"
    config = workdir / "cookiecutter-config.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(workdir / 'cookiecutters'))}\n"
        f"replay_dir: {json.dumps(str(workdir / 'replay'))}\n",
        encoding="utf-8",
    )
    command = [
        cookiecutter_bin,
        "--no-input",
        "--config-file",
        str(config),
        "--output-dir",
        str(out),
        str(template),
    ]
    command += [f"{key}={value}" for key, value in {**answers, "project_name": PLACEHOLDER_NAME}.items()]
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError as error:
        raise CatalogError(
            f"cookiecutter not found ({cookiecutter_bin}): "
            "install it (pip install cookiecutter) or pass --cookiecutter."
        ) from error
    if result.returncode != 0:
        raise CatalogError(f"baking the template to render the toolchain failed:\n{result.stderr.strip()}")
    projects = [path for path in out.iterdir() if path.is_dir()]
    toolchain = projects[0] / TOOLCHAIN_PATH if len(projects) == 1 else None
    if toolchain is None or not toolchain.is_file():
        raise CatalogError(f"the baked template has no {TOOLCHAIN_PATH}: this template version cannot be registered.")
    return project_independent(toolchain.read_text(encoding="utf-8"))


def seed_source_zip(bundle: bytes, answers: dict[str, object]) -> bytes:
    """The seeding build's source archive (deterministic: fixed order, timestamps and modes)."""
    entries = {
        "buildspec.yml": (SEED_DIR / "buildspec.yml").read_bytes(),
        "requirements.txt": (SEED_DIR / "requirements.txt").read_bytes(),
        "seed_repository.py": (SEED_DIR / "seed_repository.py").read_bytes(),
        "answers.json": (json.dumps(answers, indent=2, sort_keys=True) + "\n").encode(),
        "template.bundle": bundle,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


TOOLCHAIN_PARAMETERS_LINE = re.compile(r"^( *)# @@TOOLCHAIN_PARAMETERS@@.*\n", re.MULTILINE)


def render_product(values: dict[str, str], toolchain_parameters: dict[str, str] | None = None) -> bytes:
    """catalog/product.yaml with the Registration mapping filled: each quoted value holding ``@@NAME@@`` is replaced
    whole (the placeholders are shaped like real values so the unfilled template lints clean)."""
    text = PRODUCT_TEMPLATE.read_text(encoding="utf-8")
    indent = TOOLCHAIN_PARAMETERS_LINE.search(text)
    if indent is None:
        raise CatalogError("catalog/product.yaml has no @@TOOLCHAIN_PARAMETERS@@ line")
    block = "".join(
        f"{indent.group(1)}{key}: {json.dumps(value)}\n" for key, value in (toolchain_parameters or {}).items()
    )
    text = TOOLCHAIN_PARAMETERS_LINE.sub(lambda _: block, text)
    for name, value in values.items():
        pattern = re.compile(r'"[^"\n]*@@' + re.escape(name) + r'@@[^"\n]*"')
        if not pattern.search(text):
            raise CatalogError(f"catalog/product.yaml has no @@{name}@@ placeholder")
        text = pattern.sub(lambda _, value=value: json.dumps(value), text)
    if "@@" in text:
        raise CatalogError("catalog/product.yaml has a placeholder this registration does not fill")
    return text.encode()


def product_passes() -> frozenset[str]:
    """The toolchain parameters that catalog/product.yaml sets for each project: the keys of its Toolchain stack's
    Parameters, above the @@TOOLCHAIN_PARAMETERS@@ line where a registration's own values go."""
    text = PRODUCT_TEMPLATE.read_text(encoding="utf-8")
    marker = TOOLCHAIN_PARAMETERS_LINE.search(text)
    if marker is None:
        raise CatalogError("catalog/product.yaml has no @@TOOLCHAIN_PARAMETERS@@ line")
    block = text[: marker.start()].rsplit("\n      Parameters:\n", 1)[-1]
    return frozenset(re.findall(r"^ {8}(\w+):", block, re.MULTILINE))


def s3_https_url(bucket: str, key: str, region: str) -> str:
    """The URL CloudFormation accepts for a nested stack's TemplateURL."""
    return f"https://{bucket}.s3.{region}.amazonaws.com/{key}"


def build_release(
    *,
    template_dir: Path,
    ref: str,
    version: str | None,
    template_url: str | None,
    answers: dict[str, object],
    cookiecutter_bin: str,
) -> Release:
    template_dir = template_dir.resolve()
    version = resolve_version(template_dir, ref, version)
    template_url = template_url or default_template_url(template_dir)
    if not template_url:
        raise CatalogError(
            f"{template_dir} has no 'origin' remote: give --template-url (where data scientists' repositories take "
            "template updates from, for example https://github.com/my-org/sagemaker-mlops-template.git)."
        )
    with tempfile.TemporaryDirectory(prefix="catalog-release-") as tmp:
        workdir = Path(tmp)
        bundle = build_bundle(template_dir, ref, version, workdir)
        template = workdir / "template"
        defaults = template_defaults(template)
        validate_answers(answers, defaults)
        choices = defaults.get("ci_provider")
        ci_provider = str(answers.get("ci_provider") or (choices[0] if isinstance(choices, list) else choices))
        toolchain = render_toolchain(template, answers, cookiecutter_bin, workdir)
        bundle_bytes = bundle.read_bytes()
        shutil.rmtree(template, ignore_errors=True)
    return Release(version, template_url, dict(answers), bundle_bytes, toolchain, ci_provider)


def check_toolchain_parameters(release: Release, parameters: dict[str, str]) -> None:
    """Only the toolchain's own parameters, and none the product already passes for each project."""
    declared = json.loads(release.toolchain)["Parameters"]
    passed = product_passes()
    for key in parameters:
        if key in passed:
            raise CatalogError(
                f"--toolchain-parameter {key}=... is set for each project by the product template: leave it out."
            )
        if key not in declared:
            raise CatalogError(
                f"--toolchain-parameter {key}=... is not a parameter of the toolchain stack: "
                f"use one of {', '.join(sorted(set(declared) - passed))}."
            )


def release_files(
    release: Release,
    *,
    bucket: str,
    prefix: str,
    region: str,
    use_role_arn: str,
    toolchain_parameters: dict[str, str] | None = None,
) -> dict[str, bytes]:
    """The three objects of a release, keyed by their S3 key."""
    check_toolchain_parameters(release, toolchain_parameters or {})
    base = f"{prefix}{release.version}/"
    product = render_product(
        {
            "TOOLCHAIN_TEMPLATE_URL": s3_https_url(bucket, base + TOOLCHAIN_KEY, region),
            "SEED_SOURCE_LOCATION": f"{bucket}/{base}{SEED_KEY}",
            "TEMPLATE_VERSION": release.version,
            "TEMPLATE_URL": release.template_url,
            "CI_PROVIDER": release.ci_provider,
            "USE_ROLE_ARN": use_role_arn,
        },
        toolchain_parameters,
    )
    return {
        base + PRODUCT_KEY: product,
        base + TOOLCHAIN_KEY: release.toolchain,
        base + SEED_KEY: seed_source_zip(release.bundle, release.answers),
    }
