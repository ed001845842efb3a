"""Start the reference stack: nginx -> gunicorn (gevent workers) -> Flask, as in AWS's sklearn container.

    python benchmarks/reference_stack/serve.py --model-dir DIR --port 8080 [--workers 2]

It writes nginx.conf into a private run folder, starts gunicorn on a unix socket and nginx in front of it, and
on SIGTERM stops both and exits 0. Needs the nginx Debian package and benchmarks/requirements.txt.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import string
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="holds model.joblib and contract.json")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        print("nginx is not installed: apt-get install nginx", file=sys.stderr)
        return 1
    run_dir = Path(tempfile.mkdtemp(prefix="reference-stack-"))
    # nginx workers drop root privileges: they must reach the socket and their temporary folders.
    run_dir.chmod(0o755)
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run_dir / name).mkdir(mode=0o777)
        (run_dir / name).chmod(0o777)
    template = string.Template((HERE / "nginx.conf.template").read_text())
    config = run_dir / "nginx.conf"
    config.write_text(template.substitute(run_dir=run_dir, host=args.host, port=args.port))
    env = {**os.environ, "REFERENCE_MODEL_DIR": str(args.model_dir.resolve())}
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--chdir",
                str(HERE),
                "-k",
                "gevent",
                "--workers",
                str(args.workers),
                "--worker-connections",
                "1000",
                "--timeout",
                "60",
                "--bind",
                f"unix:{run_dir / 'gunicorn.sock'}",
                "--log-level",
                "warning",
                "app:app",
            ],
            env=env,
        ),
        subprocess.Popen([nginx, "-c", str(config), "-p", str(run_dir)]),
    ]

    def stop(signum, frame) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        # Either process ending ends the stack, as in AWS's container.
        os.wait()
        stop(None, None)
        for child in children:
            child.wait(timeout=30)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
