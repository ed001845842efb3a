"""Seed a new SageMaker project's repository with the template baked for that project.

Runs once, in the CodeBuild project the catalog product creates (see catalog/product.yaml), and locally for tests:

1. clone the template from the git bundle the registration uploaded, at the registered version;
2. refuse to go on when the target repository already has any branch or tag (history is never overwritten);
3. bake it with cookiecutter, ``project_name`` = the SageMaker project name plus the answers chosen at registration,
   and record the template's public URL in ``.copier-answers.yml`` so ``copier update`` works later;
4. commit the tree and push it to the target branch (no force).

The pushed tree is exactly what ``cookiecutter <template-url> --checkout <version> --no-input project_name=<name>``
produces. Exit codes: 0 pushed, 2 refused (repository not empty or bad input), 1 any other failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

# SageMaker's own rule for project names (CreateProject ProjectName).
PROJECT_NAME_PATTERN = re.compile(r"^[a-zA-Z](-*[a-zA-Z0-9])*\Z")
PROJECT_NAME_MAX = 32
ANSWERS_FILE = ".copier-answers.yml"
COMMIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "SageMaker project seeding",
    "GIT_AUTHOR_EMAIL": "sagemaker-project-seeding@noreply.invalid",
    "GIT_COMMITTER_NAME": "SageMaker project seeding",
    "GIT_COMMITTER_EMAIL": "sagemaker-project-seeding@noreply.invalid",
}
# Where CodeConnections providers serve git over HTTPS, and the user name their access tokens go with.
CONNECTION_HOSTS = {
    "GitHub": ("github.com", "x-access-token"),
    "GitLab": ("gitlab.com", "oauth2"),
    "Bitbucket": ("bitbucket.org", "x-token-auth"),
}
SELF_MANAGED_USERS = {"GitHubEnterpriseServer": "x-access-token", "GitLabSelfManaged": "oauth2"}


class SeedError(Exception):
    """A problem the person creating the project can act on; the message says what and how."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def validate_project_name(name: str) -> None:
    if len(name) > PROJECT_NAME_MAX or not PROJECT_NAME_PATTERN.match(name):
        raise SeedError(
            f"project name '{name}' is not a SageMaker project name: use at most {PROJECT_NAME_MAX} letters, digits "
            "and hyphens, starting with a letter and not ending with a hyphen (for example 'churn-model').",
            exit_code=2,
        )


def redact(url: str) -> str:
    """The remote URL without credentials, for messages and logs."""
    parts = urlsplit(url)
    if parts.password or parts.username:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))
    return url


def git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, **COMMIT_IDENTITY, "GIT_TERMINAL_PROMPT": "0"}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        shown = " ".join(redact(arg) for arg in args)
        raise SeedError(f"git {shown} failed: {redact(result.stderr.strip()) or result.returncode}")
    return result.stdout


def remote_refs(remote: str) -> list[str]:
    """Every branch and tag the remote already has."""
    listing = git("ls-remote", "--heads", "--tags", remote)
    return [line.split("\t", 1)[1] for line in listing.splitlines() if "\t" in line]


def ensure_empty(remote: str) -> None:
    refs = remote_refs(remote)
    if refs:
        shown = ", ".join(refs[:5]) + (" ..." if len(refs) > 5 else "")
        raise SeedError(
            f"repository {redact(remote)} is not empty (it has {shown}); seeding never overwrites history. "
            "Create the project with a new, empty repository, or bake the template yourself and merge it "
            "(see docs/data-scientist-guide.md).",
            exit_code=2,
        )


def checkout_template(bundle: Path, version: str, workdir: Path) -> Path:
    """The template at ``version``, as a git repository whose checkout is exactly that tag."""
    template = workdir / "template"
    git("clone", "--quiet", "--no-checkout", str(bundle), str(template))
    git("-c", "advice.detachedHead=false", "checkout", "--quiet", f"refs/tags/{version}", cwd=template)
    return template


def set_source_url(project: Path, template_url: str) -> None:
    """Point ``_src_path`` at the template's public URL (the bake recorded the local checkout)."""
    import yaml

    answers_file = project / ANSWERS_FILE
    lines = answers_file.read_text(encoding="utf-8").splitlines(keepends=True)
    replacement = yaml.dump({"_src_path": template_url}, indent=4, allow_unicode=True, default_flow_style=False)
    updated = [replacement if line.startswith("_src_path:") else line for line in lines]
    if updated == lines:
        raise SeedError(f"{ANSWERS_FILE} of the baked project has no _src_path line: the template is not supported.")
    answers_file.write_text("".join(updated), encoding="utf-8")


def cli_value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def bake(template: Path, project_name: str, answers: dict[str, object], output_dir: Path, template_url: str) -> Path:
    """cookiecutter's own command line, so the template's validation messages reach the build log and the error."""
    validate_project_name(project_name)
    config = output_dir.parent / "cookiecutter-config.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(output_dir.parent / 'cookiecutters'))}\n"
        f"replay_dir: {json.dumps(str(output_dir.parent / 'replay'))}\n",
        encoding="utf-8",
    )
    context = {**answers, "project_name": project_name}
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "--config-file", str(config)]
    command += ["--output-dir", str(output_dir), str(template)]
    command += [f"{key}={cli_value(value)}" for key, value in context.items()]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        # Keep the template's own message; cookiecutter may append its whole rendering context to others.
        lines = [line for line in result.stderr.splitlines() if line.strip() and " Context: " not in line]
        reason = "\n".join(lines[-5:]) or result.stdout.strip()
        raise SeedError(f"baking the template for project '{project_name}' failed:\n{reason}", exit_code=2)
    projects = [path for path in output_dir.iterdir() if path.is_dir()]
    if len(projects) != 1:
        raise SeedError(f"baking the template for project '{project_name}' produced {len(projects)} directories")
    set_source_url(projects[0], template_url)
    return projects[0]


def push(project: Path, remote: str, branch: str, version: str) -> str:
    git("init", "--quiet", f"--initial-branch={branch}", cwd=project)
    git("add", "--all", cwd=project)
    git(
        "commit",
        "--quiet",
        "--no-verify",
        "--message",
        f"Generated from sagemaker-mlops-template {version}",
        cwd=project,
    )
    git("push", "--quiet", remote, f"HEAD:refs/heads/{branch}", cwd=project)
    return git("rev-parse", "HEAD", cwd=project).strip()


def seed(
    *,
    bundle: Path,
    version: str,
    project_name: str,
    answers: dict[str, object],
    template_url: str,
    remote: str,
    branch: str,
    workdir: Path,
) -> str:
    """Bake and push; returns the pushed commit. Nothing is pushed when any step fails."""
    validate_project_name(project_name)
    ensure_empty(remote)
    template = checkout_template(bundle, version, workdir)
    project = bake(template, project_name, answers, workdir / "out", template_url)
    return push(project, remote, branch, version)


# --- Resolving the remote inside AWS (CodeBuild) -----------------------------------------------------------------


def codecommit_remote(repository: str, region: str) -> str:
    """git-remote-codecommit's URL: credentials come from the build's role, nothing is stored."""
    return f"codecommit::{region}://{repository}"


def connection_remote(connection_arn: str, full_repository_id: str, token_secret_arn: str, session=None) -> str:
    """HTTPS URL with a token for a repository behind a CodeConnections connection.

    CodeConnections gives AWS services read access to the repository, not a git push credential, so pushing needs
    a token of the provider (GitHub, GitLab, Bitbucket) stored in Secrets Manager.
    """
    import boto3

    session = session or boto3.session.Session()
    if not token_secret_arn:
        raise SeedError(
            "the project's repository is reached through CodeConnections and no RepositoryTokenSecretArn was given: "
            "a token is needed to push the generated code. Store a token with write access in Secrets Manager and "
            "pass its ARN, or push the generated code yourself (see docs/data-scientist-guide.md).",
            exit_code=2,
        )
    connection = session.client("codeconnections").get_connection(ConnectionArn=connection_arn)["Connection"]
    provider = connection["ProviderType"]
    if provider in CONNECTION_HOSTS:
        host, user = CONNECTION_HOSTS[provider]
    elif provider in SELF_MANAGED_USERS:
        endpoint = session.client("codeconnections").get_host(HostArn=connection["HostArn"])["ProviderEndpoint"]
        host, user = urlsplit(endpoint).netloc or endpoint, SELF_MANAGED_USERS[provider]
    else:
        raise SeedError(f"connection {connection_arn} is a {provider} connection, which seeding does not support.")
    if connection.get("ConnectionStatus") != "AVAILABLE":
        raise SeedError(
            f"connection {connection_arn} is {connection.get('ConnectionStatus')}: complete the handshake in the "
            "console (Developer Tools > Settings > Connections) first.",
            exit_code=2,
        )
    secret = session.client("secretsmanager").get_secret_value(SecretId=token_secret_arn)["SecretString"]
    token = secret.strip()
    if token.startswith("{"):
        token = json.loads(token).get("token", "")
    if not token:
        raise SeedError(f"secret {token_secret_arn} holds no token (plain text, or JSON with a 'token' key).", 2)
    return f"https://{quote(user, safe='')}:{quote(token, safe='')}@{host}/{full_repository_id}.git"


def parse_answers(pairs: list[str], answers_file: Path | None) -> dict[str, object]:
    answers: dict[str, object] = {}
    if answers_file:
        answers.update(json.loads(answers_file.read_text(encoding="utf-8")))
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SeedError(f"--answer '{pair}' is not key=value (for example problem_type=regression).", 2)
        answers[key] = value
    answers.pop("project_name", None)
    return answers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="git bundle of the template (template.bundle)")
    parser.add_argument("--version", required=True, help="template version tag in the bundle, e.g. v1.2.0")
    parser.add_argument("--project-name", required=True, help="SageMaker project name (becomes project_name)")
    parser.add_argument("--template-url", required=True, help="public URL of the template, for copier update")
    parser.add_argument("--answers-file", type=Path, help="JSON answers chosen at registration")
    parser.add_argument("--answer", action="append", default=[], metavar="KEY=VALUE", help="extra answer")
    parser.add_argument("--branch", default="main")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--remote", help="git URL to push to (any URL git understands)")
    target.add_argument("--codecommit-repository", help="CodeCommit repository name (git-remote-codecommit)")
    target.add_argument("--connection-arn", help="CodeConnections connection ARN (with --full-repository-id)")
    parser.add_argument("--full-repository-id", default="", help="owner/repository behind the connection")
    parser.add_argument("--token-secret-arn", default="", help="Secrets Manager secret holding a push token")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        answers = parse_answers(args.answer, args.answers_file)
        if args.remote:
            remote = args.remote
        elif args.codecommit_repository:
            if not args.region:
                raise SeedError("--region (or AWS_REGION) is needed for a CodeCommit repository.", 2)
            remote = codecommit_remote(args.codecommit_repository, args.region)
        else:
            if not re.match(r"^[^/\s]+/[^/\s]+\Z", args.full_repository_id):
                raise SeedError(
                    f"--full-repository-id '{args.full_repository_id}' is not owner/repository "
                    "(for example my-org/churn-model).",
                    2,
                )
            remote = connection_remote(args.connection_arn, args.full_repository_id, args.token_secret_arn)
        with tempfile.TemporaryDirectory(prefix="seed-") as workdir:
            commit = seed(
                bundle=args.bundle,
                version=args.version,
                project_name=args.project_name,
                answers=answers,
                template_url=args.template_url,
                remote=remote,
                branch=args.branch,
                workdir=Path(workdir),
            )
    except SeedError as error:
        print(
            f"seeding refused: {error}" if error.exit_code == 2 else f"seeding failed: {error}",
            file=sys.stderr,
        )
        return error.exit_code
    print(f"Pushed {commit} to {redact(remote)} branch {args.branch} (template {args.version}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
