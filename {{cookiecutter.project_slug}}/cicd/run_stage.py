"""Run one CI/CD stage from its CodeBuild buildspec, anywhere (GitHub Actions, a laptop), the way CodeBuild does.

The buildspecs in pipeline/buildspec/ are the single description of each stage's commands: CodeBuild runs them in
CodePipeline, and this script runs the very same files elsewhere, so the two CI providers cannot drift.

CodeBuild semantics (buildspec version 0.2) reproduced here:
- env.variables are exported; a variable the environment already sets wins (as a project or start-build override
  wins over the buildspec in CodeBuild). env.parameter-store / env.secrets-manager values are read from SSM /
  Secrets Manager with boto3, unless the environment already sets the variable.
- Phases run in the order install, pre_build, build, post_build; commands run one after another in bash, and the
  working directory, exported and plain shell variables carry over from one command to the next and across phases.
- A failing command ends its phase; the phase's `finally` commands still run. on-failure ABORT (the default) stops
  the stage, CONTINUE goes on to the next phase, RETRY[-N] runs the phase again (N times, 3 by default).
- A failing install or pre_build phase skips the later phases; a failing build phase still runs post_build.
  CODEBUILD_BUILD_SUCCEEDING is 1 while the stage succeeds and 0 after a failure, as in CodeBuild.
- CODEBUILD_SRC_DIR is the source directory and CODEBUILD_RESOLVED_SOURCE_VERSION the commit (from GITHUB_SHA or git).
- env.exported-variables are written to $GITHUB_OUTPUT when it is set (the step's outputs on GitHub Actions).

Usage: python -m cicd.run_stage STAGE [--phases install,pre_build] [--skip-parameter-store] [--dry-run]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from model.common import paths

PHASES = ("install", "pre_build", "build", "post_build")
ENV_KEYS = {"shell", "variables", "parameter-store", "secrets-manager", "exported-variables", "git-credential-helper"}
PHASE_KEYS = {"run-as", "on-failure", "runtime-versions", "commands", "finally"}
TOP_KEYS = {"version", "run-as", "env", "proxy", "batch", "phases", "reports", "artifacts", "cache"}
ON_FAILURE = re.compile(r"^(ABORT|CONTINUE|RETRY(-[1-9][0-9]*)?)$")
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REPO_ROOT = paths.REPO_ROOT

# Saves the shell state after each command: exit code, working directory, environment and plain shell variables.
# Bash's own variables and read-only ones are left alone; the next command starts from this state.
STATE_SCRIPT = r"""
__rs_state=$1
__rs_command=$2
if [ -f "$__rs_state/vars.sh" ]; then . "$__rs_state/vars.sh"; fi
__rs_save() {
  __rs_rc=$?
  pwd > "$__rs_state/cwd"
  env -0 > "$__rs_state/env"
  : > "$__rs_state/vars.sh"
  for __rs_name in $(compgen -v); do
    case $__rs_name in
      __rs_*|BASH*|_|COLUMNS|COMP_*|DIRSTACK|EPOCH*|EUID|FUNCNAME|GROUPS|HIST*|HOSTNAME|HOSTTYPE|IFS|LINENO|\
LINES|MACHTYPE|OLDPWD|OPTARG|OPTERR|OPTIND|OSTYPE|PIPESTATUS|PPID|PS1|PS2|PS4|PWD|RANDOM|SECONDS|SHELLOPTS|\
SHLVL|SRANDOM|UID) continue ;;
    esac
    __rs_decl=$(declare -p "$__rs_name" 2>/dev/null) || continue
    __rs_flags=${__rs_decl#declare -}
    __rs_flags=${__rs_flags%% *}
    case $__rs_flags in *x*|*r*) continue ;; esac
    printf '%s\n' "$__rs_decl" >> "$__rs_state/vars.sh"
  done
  exit $__rs_rc
}
trap __rs_save EXIT
. "$__rs_command"
"""


class BuildspecError(ValueError):
    """A buildspec that CodeBuild would refuse or that this runner cannot honour."""


@dataclass
class Phase:
    name: str
    commands: list[str]
    finally_commands: list[str] = field(default_factory=list)
    on_failure: str = "ABORT"


@dataclass
class Buildspec:
    path: Path
    shell: str
    variables: dict[str, str]
    parameter_store: dict[str, str]
    secrets_manager: dict[str, str]
    exported_variables: list[str]
    phases: list[Phase]


def _commands(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BuildspecError(f"{where} must be a list of command strings, got {value!r}")
    return value


def _string_map(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BuildspecError(f"{where} must be a mapping of NAME: value, got {type(value).__name__}")
    result = {}
    for name, item in value.items():
        if not isinstance(name, str) or not VARIABLE_NAME.match(name):
            raise BuildspecError(f"{where}: {name!r} is not a valid environment variable name (letters, digits, _)")
        if isinstance(item, (dict, list)) or item is None:
            raise BuildspecError(f"{where}.{name} must be a single value, got {item!r}")
        result[name] = item if isinstance(item, str) else str(item).lower() if isinstance(item, bool) else str(item)
    return result


def parse_buildspec(path: Path) -> Buildspec:
    """Load and validate a buildspec; errors name the key and the fix."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise BuildspecError(f"not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise BuildspecError("a buildspec is a YAML mapping with at least `version: 0.2` and `phases`")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise BuildspecError(f"unknown top-level key(s) {sorted(unknown)}: CodeBuild accepts {sorted(TOP_KEYS)}")
    if str(data.get("version")) != "0.2":
        raise BuildspecError(f"version is {data.get('version')!r}: write `version: 0.2` (the version CodeBuild runs)")
    env = data.get("env") or {}
    if not isinstance(env, dict):
        raise BuildspecError("env must be a mapping")
    unknown = set(env) - ENV_KEYS
    if unknown:
        raise BuildspecError(f"env has unknown key(s) {sorted(unknown)}: CodeBuild accepts {sorted(ENV_KEYS)}")
    shell = env.get("shell", "bash")
    if shell not in ("bash", "/bin/sh"):
        raise BuildspecError(f"env.shell is {shell!r}: use bash (the shell this runner and CodeBuild's Linux use)")
    exported = env.get("exported-variables") or []
    if not isinstance(exported, list) or not all(isinstance(name, str) for name in exported):
        raise BuildspecError("env.exported-variables must be a list of variable names")
    phases_data = data.get("phases")
    if not isinstance(phases_data, dict) or not phases_data:
        raise BuildspecError(f"phases must be a mapping with at least one of {', '.join(PHASES)}")
    unknown = set(phases_data) - set(PHASES)
    if unknown:
        raise BuildspecError(f"phases has unknown phase(s) {sorted(unknown)}: use {', '.join(PHASES)}")
    phases = []
    for name in PHASES:
        if name not in phases_data:
            continue
        spec = phases_data[name] or {}
        if not isinstance(spec, dict):
            raise BuildspecError(f"phases.{name} must be a mapping with `commands`")
        unknown = set(spec) - PHASE_KEYS
        if unknown:
            raise BuildspecError(f"phases.{name} has unknown key(s) {sorted(unknown)}: use {sorted(PHASE_KEYS)}")
        on_failure = str(spec.get("on-failure", "ABORT"))
        if not ON_FAILURE.match(on_failure):
            raise BuildspecError(f"phases.{name}.on-failure is {on_failure!r}: use ABORT, CONTINUE, RETRY or RETRY-N")
        phases.append(
            Phase(
                name=name,
                commands=_commands(spec.get("commands"), f"phases.{name}.commands"),
                finally_commands=_commands(spec.get("finally"), f"phases.{name}.finally"),
                on_failure=on_failure,
            )
        )
    return Buildspec(
        path=path,
        shell="bash",
        variables=_string_map(env.get("variables"), "env.variables"),
        parameter_store=_string_map(env.get("parameter-store"), "env.parameter-store"),
        secrets_manager=_string_map(env.get("secrets-manager"), "env.secrets-manager"),
        exported_variables=exported,
        phases=phases,
    )


def _aws_client(service: str):
    try:
        import boto3
    except ImportError as error:
        raise SystemExit(
            f"run_stage: boto3 is needed to read {service.upper()} values: run `make setup-aws` and use "
            ".venv-aws/bin/python, or set the variables in the environment"
        ) from error
    return boto3.client(service)


def resolve_parameters(buildspec: Buildspec, environ: dict[str, str]) -> dict[str, str]:
    """SSM Parameter Store and Secrets Manager values for the variables the environment does not set yet."""
    resolved = {}
    missing = {name: ref for name, ref in buildspec.parameter_store.items() if name not in environ}
    if missing:
        from botocore.exceptions import BotoCoreError, ClientError

        ssm = _aws_client("ssm")
        for name, parameter in missing.items():
            try:
                resolved[name] = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
            except (BotoCoreError, ClientError) as error:
                raise SystemExit(
                    f"run_stage: env.parameter-store.{name}: cannot read SSM parameter {parameter} ({error}). "
                    f"Deploy the toolchain stack (docs/runbook.md), check the AWS credentials and region, "
                    f"or set {name} in the environment."
                ) from error
            print(f"[run_stage] {name} <- SSM {parameter}", flush=True)
    missing = {name: ref for name, ref in buildspec.secrets_manager.items() if name not in environ}
    if missing:
        import json

        from botocore.exceptions import BotoCoreError, ClientError

        secrets = _aws_client("secretsmanager")
        for name, reference in missing.items():
            secret_id, _, rest = reference.partition(":")
            if reference.startswith("arn:"):
                parts = reference.split(":")
                secret_id, rest = ":".join(parts[:7]), ":".join(parts[7:])
            json_key, _, rest = rest.partition(":")
            stage, _, version_id = rest.partition(":")
            request = {"SecretId": secret_id}
            if stage:
                request["VersionStage"] = stage
            if version_id:
                request["VersionId"] = version_id
            try:
                value = secrets.get_secret_value(**request)["SecretString"]
                resolved[name] = str(json.loads(value)[json_key]) if json_key else value
            except (BotoCoreError, ClientError, KeyError, ValueError) as error:
                raise SystemExit(
                    f"run_stage: env.secrets-manager.{name}: cannot read {reference} ({error}); "
                    f"check the secret and the credentials, or set {name} in the environment."
                ) from error
            print(f"[run_stage] {name} <- Secrets Manager {secret_id}", flush=True)
    return resolved


def source_version(source_dir: Path, environ: dict[str, str]) -> str:
    if environ.get("CODEBUILD_RESOLVED_SOURCE_VERSION"):
        return environ["CODEBUILD_RESOLVED_SOURCE_VERSION"]
    if environ.get("GITHUB_SHA"):
        return environ["GITHUB_SHA"]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source_dir, capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip()


class Shell:
    """One bash "session": each command runs in its own bash process that starts from the previous one's state."""

    def __init__(self, cwd: Path, environ: dict[str, str]) -> None:
        self._state = Path(tempfile.mkdtemp(prefix="run_stage-"))
        (self._state / "state.sh").write_text(STATE_SCRIPT, encoding="utf-8")
        self.cwd = cwd
        self.environ = environ

    def run(self, command: str) -> int:
        command_file = self._state / "command.sh"
        command_file.write_text(command + "\n", encoding="utf-8")
        for name in ("cwd", "env"):
            (self._state / name).unlink(missing_ok=True)
        script = [str(self._state / "state.sh"), str(self._state), str(command_file)]
        if not self.cwd.is_dir():
            print(f"[run_stage] working directory {self.cwd} no longer exists", flush=True)
            return 1
        returncode = subprocess.run(["bash", *script], cwd=self.cwd, env=self.environ, check=False).returncode
        self._load_state()
        return returncode

    def _load_state(self) -> None:
        cwd_file, env_file = self._state / "cwd", self._state / "env"
        if cwd_file.exists():
            self.cwd = Path(cwd_file.read_text(encoding="utf-8").strip() or self.cwd)
        if env_file.exists():
            pairs = (item.split("=", 1) for item in env_file.read_bytes().decode("utf-8", "replace").split("\0"))
            self.environ = {pair[0]: pair[1] for pair in pairs if len(pair) == 2 and pair[0] not in ("_", "SHLVL")}

    def close(self) -> None:
        for item in self._state.iterdir():
            item.unlink()
        self._state.rmdir()


def _short(command: str) -> str:
    lines = command.strip().splitlines() or [""]
    return lines[0] + (f" ... ({len(lines)} lines)" if len(lines) > 1 else "")


def run_commands(shell: Shell, phase: str, commands: list[str], block: str = "commands") -> bool:
    for index, command in enumerate(commands, start=1):
        print(f"[run_stage] {phase} {block} {index}/{len(commands)}: {_short(command)}", flush=True)
        started = time.monotonic()
        returncode = shell.run(command)
        elapsed = time.monotonic() - started
        if returncode != 0:
            print(f"[run_stage] {phase}: command failed with exit code {returncode} after {elapsed:.1f}s", flush=True)
            return False
        print(f"[run_stage] {phase}: ok ({elapsed:.1f}s)", flush=True)
    return True


def run_phase(shell: Shell, phase: Phase) -> bool:
    attempts = 1
    if phase.on_failure.startswith("RETRY"):
        attempts += int(phase.on_failure.split("-", 1)[1]) if "-" in phase.on_failure else 3
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            print(f"[run_stage] {phase.name}: retry {attempt - 1} of {attempts - 1}", flush=True)
        ok = run_commands(shell, phase.name, phase.commands)
        if phase.finally_commands:
            ok = run_commands(shell, phase.name, phase.finally_commands, block="finally") and ok
        if ok:
            return True
    return False


def write_exported(buildspec: Buildspec, environ: dict[str, str]) -> None:
    output = environ.get("GITHUB_OUTPUT") or os.environ.get("GITHUB_OUTPUT")
    if not buildspec.exported_variables or not output:
        return
    with open(output, "a", encoding="utf-8") as handle:
        for name in buildspec.exported_variables:
            value = environ.get(name, "")
            if "\n" in value:
                raise SystemExit(f"run_stage: exported variable {name} holds a line break; export one-line values")
            handle.write(f"{name}={value}\n")


def run_stage(
    buildspec: Buildspec,
    source_dir: Path,
    phases: list[str] | None = None,
    skip_parameter_store: bool = False,
    environ: dict[str, str] | None = None,
) -> int:
    """Run the buildspec's phases; returns 0 when every phase succeeded, 1 otherwise."""
    environ = dict(os.environ if environ is None else environ)
    for name, value in buildspec.variables.items():
        environ.setdefault(name, value)
    if not skip_parameter_store:
        environ.update(resolve_parameters(buildspec, environ))
    environ.setdefault("CODEBUILD_SRC_DIR", str(source_dir))
    environ["CODEBUILD_RESOLVED_SOURCE_VERSION"] = source_version(source_dir, environ)
    environ["CODEBUILD_BUILD_SUCCEEDING"] = "1"
    shell = Shell(source_dir, environ)
    failed = stopped = False
    started = time.monotonic()
    try:
        for phase in buildspec.phases:
            if phases is not None and phase.name not in phases:
                continue
            if stopped and phase.name != "post_build":
                print(f"[run_stage] {phase.name}: skipped after the failure above", flush=True)
                continue
            if not (phase.commands or phase.finally_commands):
                continue
            print(f"[run_stage] == phase {phase.name} ==", flush=True)
            if run_phase(shell, phase):
                continue
            print(f"[run_stage] phase {phase.name} FAILED", flush=True)
            failed = True
            shell.environ["CODEBUILD_BUILD_SUCCEEDING"] = "0"
            if phase.on_failure == "CONTINUE":
                print(f"[run_stage] {phase.name}: on-failure CONTINUE, going on with the next phase", flush=True)
            elif phase.name == "build":
                stopped = True  # CodeBuild still runs post_build after a failed build phase
            else:
                break  # and nothing after a failed install, pre_build or post_build phase
        if not failed:
            write_exported(buildspec, shell.environ)
    finally:
        shell.close()
    status = "FAILED" if failed else "SUCCEEDED"
    print(f"[run_stage] stage {buildspec.path.stem} {status} in {time.monotonic() - started:.1f}s", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="the buildspec's name without .yml, for example build, train, deploy-staging")
    parser.add_argument(
        "--phases",
        help=f"comma-separated subset of the phases to run (default: all of {', '.join(PHASES)})",
    )
    parser.add_argument(
        "--skip-parameter-store",
        action="store_true",
        help="do not read env.parameter-store/secrets-manager values (for phases that need no AWS, such as tests)",
    )
    parser.add_argument("--buildspec-dir", type=Path, default=REPO_ROOT / "pipeline" / "buildspec")
    parser.add_argument("--source-dir", type=Path, default=REPO_ROOT, help="where the commands run (the repo root)")
    parser.add_argument("--dry-run", action="store_true", help="print the phases and commands, run nothing")
    args = parser.parse_args(argv)

    path = args.buildspec_dir / f"{args.stage}.yml"
    if not path.is_file():
        stages = sorted(item.stem for item in args.buildspec_dir.glob("*.yml"))
        print(f"run_stage: no buildspec {path}; stages: {', '.join(stages) or 'none'}", file=sys.stderr)
        return 2
    try:
        buildspec = parse_buildspec(path)
    except BuildspecError as error:
        print(f"run_stage: {path}: {error}", file=sys.stderr)
        return 2
    phases = None
    if args.phases:
        phases = [name.strip() for name in args.phases.split(",") if name.strip()]
        unknown = [name for name in phases if name not in PHASES]
        if unknown:
            print(f"run_stage: --phases {args.phases}: unknown {unknown}; use {', '.join(PHASES)}", file=sys.stderr)
            return 2
    if args.dry_run:
        for phase in buildspec.phases:
            if phases is None or phase.name in phases:
                for block, commands in (("commands", phase.commands), ("finally", phase.finally_commands)):
                    for command in commands:
                        print(f"{phase.name} {block}: " + command.strip().replace("\n", "\n    "))
        return 0
    return run_stage(buildspec, args.source_dir.resolve(), phases, args.skip_parameter_store)


if __name__ == "__main__":
    sys.exit(main())
