"""Check the CI/CD definitions before CodeBuild or GitHub Actions find the mistakes at run time.

- every stage in pipeline/buildspec/ parses, has `version: 0.2` and the structure CodeBuild expects (the same parser
  run_stage.py uses), calls only Makefile targets that exist, and names only repository files that exist;
- every GitHub workflow in .github/workflows/ (when the folder exists) validates against the GitHub workflow schema
  vendored by check-jsonschema, pins each action to a version, runs only existing stages and names existing files.

Each finding names the file, the line and key, and the fix. Exit code 1 when there is any finding.
Usage: python -m cicd.check_ci [--root REPO]
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from cicd.run_stage import BuildspecError, parse_buildspec
from model.common import paths

STAGES = ("build", "train", "deploy-staging", "test-staging", "deploy-prod", "rollback", "template-update")
# Repository paths a command may name; build/ and the virtual environments are outputs, not sources.
REPO_PATH = re.compile(
    r"(?<![\w./$-])((?:model|pipeline|infra|monitoring|release|data|docs|scripts|\.github)/[A-Za-z0-9_./-]*[A-Za-z0-9_])"
)
GUARD = re.compile(r"\[\s+-[def]\s+[\"']?([A-Za-z0-9_./-]+)[\"']?\s+\]")
MAKE_TARGET = re.compile(r"^([A-Za-z0-9_.%/-]+(?:[ \t]+[A-Za-z0-9_.%/-]+)*)[ \t]*::?(?!=)", re.MULTILINE)
SHELL_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;", "|&"}
SHELL_PREFIXES = {"then", "do", "else", "elif", "if", "while", "until", "!", "time", "exec", "command", "{"}
REDIRECT = re.compile(r"(?:\d*(?:>>?|<)&?|&>>?)\s*[^\s;&|()]+")
RUN_STAGE = re.compile(r"run_stage\.py\s+([A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.key}: {self.message}"


def node_lines(text: str) -> dict[tuple, int]:
    """Line number (1-based) of every key and list item, by path, from the YAML node tree."""
    lines: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[(*path, key.value)] = key.start_mark.line + 1
                walk(value, (*path, key.value))
                lines[(*path, key.value)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return lines


def makefile_targets(makefile: Path) -> set[str]:
    if not makefile.is_file():
        return set()
    text = makefile.read_text(encoding="utf-8")
    targets = set()
    for match in MAKE_TARGET.finditer(text):
        targets.update(name for name in match.group(1).split() if not name.startswith("."))
    return targets


def make_targets_in(command: str) -> list[str]:
    """Targets of every `make ...` call in a shell command (options and VAR=value words skipped)."""
    found = []
    for line in command.replace("\\\n", " ").splitlines():
        line = REDIRECT.sub(" ", line)
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            tokens = list(lexer)
        except ValueError:
            tokens = line.split()
        start = True
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token in SHELL_SEPARATORS:
                start = True
            elif start and (token in SHELL_PREFIXES or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", token)):
                pass
            elif start and token in ("make", "$(MAKE)", "gmake"):
                index += 1
                other_makefile = False
                while index < len(tokens) and tokens[index] not in SHELL_SEPARATORS:
                    word = tokens[index]
                    if word in ("-C", "-f", "--directory", "--file", "--makefile", "-j", "-l", "-o", "-W"):
                        other_makefile |= word in ("-C", "-f", "--directory", "--file", "--makefile")
                        index += 1
                    elif word.startswith(("-", ">", "<", "2>", "$", "`")) or "=" in word:
                        other_makefile |= word.startswith(("--directory=", "--file=", "--makefile="))
                    elif not other_makefile:
                        found.append(word)
                    index += 1
                start = True
                continue
            else:
                start = False
            index += 1
    return found


def path_findings(root: Path, text: str, relpath: str, line: int, key: str) -> list[Finding]:
    guarded = GUARD.findall(text)
    findings = []
    for reference in sorted(set(REPO_PATH.findall(text))):
        if any(char in reference for char in "*?") or (root / reference).exists():
            continue
        if any(reference == guard or reference.startswith(guard.rstrip("/") + "/") for guard in guarded):
            continue
        findings.append(
            Finding(relpath, line, key, f"refers to {reference}, which does not exist: fix the path or add the file")
        )
    return findings


def read_yaml(root: Path, path: Path) -> tuple[str, dict, object] | Finding:
    """(relative path, line of each key, the document), or the Finding that the file is not valid YAML."""
    relpath = path.relative_to(root).as_posix()
    text = path.read_text(encoding="utf-8")
    try:
        return relpath, node_lines(text), yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        return Finding(relpath, mark.line + 1 if mark else 1, "yaml", f"not valid YAML: {error}")


def check_buildspec(root: Path, path: Path, targets: set[str]) -> list[Finding]:
    read = read_yaml(root, path)
    if isinstance(read, Finding):
        return [read]
    relpath, lines, _ = read
    try:
        buildspec = parse_buildspec(path)
    except BuildspecError as error:
        # Messages start with the key they are about (phases.build.commands ...): point at its line.
        key = re.match(r"[A-Za-z_.-]*", str(error)).group(0).rstrip(".") or "buildspec"
        line = lines.get(tuple(key.split(".")), 1) if key != "buildspec" else 1
        return [Finding(relpath, line, key, str(error))]
    findings = []
    for phase in buildspec.phases:
        for block, commands in (("commands", phase.commands), ("finally", phase.finally_commands)):
            for index, command in enumerate(commands):
                key = f"phases.{phase.name}.{block}[{index}]"
                line = lines.get(("phases", phase.name, block, index), 1)
                for target in make_targets_in(command):
                    if target not in targets:
                        known = ", ".join(sorted(targets)) or "none (no Makefile)"
                        findings.append(
                            Finding(
                                relpath,
                                line,
                                key,
                                f"`make {target}`: the Makefile has no target {target!r}; add it to the Makefile "
                                f"or call an existing target ({known})",
                            )
                        )
                findings.extend(path_findings(root, command, relpath, line, key))
    return findings


def schema_findings(root: Path, workflows: list[Path]) -> list[Finding]:
    """Validate against check-jsonschema's vendored GitHub workflow schema (its CLI, from the AWS venv)."""
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
    result = subprocess.run(
        [*command, "--output-format", "json", *map(str, workflows)], capture_output=True, text=True, check=False
    )
    if "No module named check_jsonschema" in result.stderr:
        return [
            Finding(
                ".github/workflows",
                1,
                "schema",
                f"check-jsonschema is not installed for {sys.executable}: run `make setup-aws` and run this "
                "script with .venv-aws/bin/python",
            )
        ]
    if result.returncode == 0:
        return []
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        return [Finding(".github/workflows", 1, "schema", (result.stdout + result.stderr).strip())]
    findings = []
    for error in report.get("errors", []) + report.get("parse_errors", []):
        filename = Path(error.get("filename", ".github/workflows"))
        relpath = filename.resolve().relative_to(root).as_posix() if filename.is_absolute() else filename.as_posix()
        location = error.get("path", "$")
        keys = tuple(int(part) if part.isdigit() else part for part in location.split(".")[1:] if part)
        try:
            line = node_lines((root / relpath).read_text(encoding="utf-8")).get(keys, 1)
        except (OSError, yaml.YAMLError):
            line = 1
        message = error.get("message", "")
        best = error.get("best_match") or {}
        if best.get("message") and best.get("path") != location:
            message += f" (best match: {best.get('path')}: {best['message']})"
        findings.append(Finding(relpath, line, location, f"{message}; fix it to match the GitHub workflow syntax"))
    return findings


def check_workflow(root: Path, path: Path, stages: set[str]) -> list[Finding]:
    read = read_yaml(root, path)
    if isinstance(read, Finding):
        return [read]
    relpath, lines, data = read
    findings = []
    jobs = data.get("jobs") if isinstance(data, dict) else None
    for job_name, job in (jobs or {}).items():
        for index, step in enumerate((job or {}).get("steps") or []):
            if not isinstance(step, dict):
                continue
            where = ("jobs", job_name, "steps", index)
            key = f"jobs.{job_name}.steps[{index}]"
            uses = step.get("uses")
            if isinstance(uses, str) and not uses.startswith(("./", "docker://")) and "@" not in uses:
                findings.append(
                    Finding(
                        relpath,
                        lines.get((*where, "uses"), 1),
                        f"{key}.uses",
                        f"{uses} is not pinned: add a version, for example {uses}@v4",
                    )
                )
            if isinstance(uses, str) and uses.startswith("./") and not (root / uses).exists():
                findings.append(
                    Finding(
                        relpath, lines.get((*where, "uses"), 1), f"{key}.uses", f"local action {uses} does not exist"
                    )
                )
            run = step.get("run")
            if not isinstance(run, str):
                continue
            line = lines.get((*where, "run"), 1)
            for stage in RUN_STAGE.findall(run):
                if stage not in stages:
                    findings.append(
                        Finding(
                            relpath,
                            line,
                            f"{key}.run",
                            f"runs stage {stage!r}, but pipeline/buildspec/{stage}.yml does not exist; "
                            f"use one of {', '.join(sorted(stages))}",
                        )
                    )
            findings.extend(path_findings(root, run, relpath, line, f"{key}.run"))
    return findings


def check(root: Path) -> list[Finding]:
    findings = []
    buildspec_dir = root / "pipeline" / "buildspec"
    for stage in STAGES:
        if not (buildspec_dir / f"{stage}.yml").is_file():
            findings.append(
                Finding(f"pipeline/buildspec/{stage}.yml", 1, "file", f"the {stage} stage has no buildspec: add it")
            )
    targets = makefile_targets(root / "Makefile")
    buildspecs = sorted(buildspec_dir.glob("*.yml")) + sorted(buildspec_dir.glob("*.yaml"))
    for path in buildspecs:
        findings.extend(check_buildspec(root, path, targets))
    workflow_dir = root / ".github" / "workflows"
    workflows = sorted(workflow_dir.glob("*.yml")) + sorted(workflow_dir.glob("*.yaml"))
    if workflows:
        findings.extend(schema_findings(root, workflows))
        stages = {path.stem for path in buildspecs}
        for path in workflows:
            findings.extend(check_workflow(root, path, stages))
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=paths.REPO_ROOT, help="repository root")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    findings = check(root)
    for finding in findings:
        print(finding)
    workflow_count = len(list((root / ".github" / "workflows").glob("*.y*ml")))
    buildspec_count = len(list((root / "pipeline" / "buildspec").glob("*.y*ml")))
    if findings:
        print(f"check_ci: {len(findings)} finding(s) in {buildspec_count} buildspecs and {workflow_count} workflows")
        return 1
    print(f"check_ci: {buildspec_count} buildspecs and {workflow_count} workflows OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
