"""`make package`: the deployment package for the target runtime (python3.13 on arm64), built and checked.

Chalice builds the dependencies of a package for the Python that runs it (this venv's), so the
package is built from a staging copy of the project instead: app.py, chalicelib/ and
.chalice/config.json, an empty requirements.txt, and vendor/ (which Chalice copies into the zip as
it is) holding requirements.txt installed from wheels for the target:

    pip install --target vendor --only-binary=:all: --platform manylinux2014_aarch64
                --platform manylinux_2_28_aarch64 --python-version 3.13 --implementation cp -r requirements.txt

(manylinux_2_28 too: the python3.13 runtime is Amazon Linux 2023, glibc 2.34, and some
dependencies publish arm64 wheels only for glibc 2.28 and later: cbor2 6, which passkeys need.)

The staged code and vendor/ are then compiled to bytecode by the target's Python
(`compileall --invalidation-mode unchecked-hash`): /var/task is read-only, so without .pyc files
in the zip every cold start that is not restored from a SnapStart snapshot (publishing, scaling
past the snapshots, the rotation function) compiles botocore and the rest from source, about a
second of CPU. Unchecked hash-based .pyc files are used as they are, with no source mtime check.

Then `chalice package --merge-template` writes sam.json and deployment.zip (for an API_FRONT_DOOR=http
stage without Chalice's REST API, which the HTTP API of the merge template replaces), and the zip is
checked:

1. every native library in it (ELF file) is built for aarch64, and every extension module for
   CPython 3.13 or the stable ABI (abi3);
2. its code imports and serves on Python 3.13: a python3.13 interpreter imports app.py,
   chalicelib and Chalice's runtime from the zip, with the same pinned dependencies built for this
   machine in front of it (aarch64 binaries cannot load on an x86_64 host), runs the SnapStart init (chalicelib/runtime.py:
   every module, every template) and answers a discovery request. The interpreter is PYTHON313,
   else python3.13 on PATH, else a pyenv 3.13.

    .venv/bin/python -m infra.package --stage prod --dist dist/prod
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from infra.stage import StageError
from infra.template import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME

ROOT = Path(__file__).resolve().parent.parent
PYTHON_VERSION = LAMBDA_RUNTIME.removeprefix("python")  # "3.13"
#: manylinux2014 = glibc 2.17, which every Lambda Python runtime's Amazon Linux exceeds.
MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}
ELF_MACHINES = {"aarch64": 183, "x86_64": 62}


class PackageError(Exception):
    """The package cannot be built or fails its check; the message says what and why."""


def stage_project(project: Path) -> None:
    """A copy of what Chalice packages, with the dependencies pre-built for the target in vendor/."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    project.mkdir(parents=True)
    shutil.copy2(ROOT / "app.py", project / "app.py")
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib", ignore=ignore)
    (project / ".chalice").mkdir()
    shutil.copy2(ROOT / ".chalice" / "config.json", project / ".chalice" / "config.json")
    (project / "requirements.txt").write_text(
        f"# Built by infra/package.py into vendor/ for {LAMBDA_RUNTIME} on {LAMBDA_ARCHITECTURE}.\n")
    pip_install(project / "vendor", MACHINES[LAMBDA_ARCHITECTURE])
    compile_bytecode(project)


def compile_bytecode(project: Path) -> None:
    """Compile every module of the staged project for the target Python (see the module docstring)."""
    subprocess.run([find_python313(), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    "app.py", "chalicelib", "vendor"], cwd=project, check=True, stdout=subprocess.DEVNULL)


def count_bytecode(package: Path) -> int:
    """How many of the zip's .py files come with a .pyc of the target's Python; raises PackageError
    for a chalicelib module without one, and for any other .pyc: a developer's cpython-311 file
    (or a legacy one next to its source) is dead weight in every cold start's unzip, and stale
    code if its source changed. (Chalice packages app.py alone, without its __pycache__: that one
    small module is compiled at each cold start.)"""
    tag = f"cpython-{PYTHON_VERSION.replace('.', '')}"
    with zipfile.ZipFile(package) as zipped:
        names = set(zipped.namelist())
    foreign = sorted(n for n in names if n.endswith(".pyc") and not (
        "/__pycache__/" in f"/{n}" and n.endswith(f".{tag}.pyc")))
    if foreign:
        raise PackageError(f"bytecode not built for {tag} in the package: {', '.join(foreign[:5])}")
    def compiled(source: str) -> bool:
        folder, _, file = source.rpartition("/")
        return f"{folder + '/' if folder else ''}__pycache__/{file[:-3]}.{tag}.pyc" in names
    sources = [n for n in names if n.endswith(".py")]
    missing = [n for n in sources if n.startswith("chalicelib/") and not compiled(n)]
    if missing:
        raise PackageError(f"no {tag} bytecode in the package for {', '.join(sorted(missing)[:5])}")
    return sum(compiled(n) for n in sources)


def pip_install(target: Path, machine: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--target", str(target), "--only-binary=:all:", "--platform", f"manylinux2014_{machine}",
                    # The runtime's glibc is 2.34 (Amazon Linux 2023): wheels for 2.28 load too.
                    "--platform", f"manylinux_2_28_{machine}",
                    "--python-version", PYTHON_VERSION, "--implementation", "cp", "--no-compile",
                    "-r", str(ROOT / "requirements.txt")], check=True)


def chalice_package(project: Path, stage: str, dist: Path) -> None:
    chalice = Path(sys.executable).parent / "chalice"
    subprocess.run([str(chalice), "package", "--stage", stage, "--merge-template",
                    str(dist / "merge-template.json"), str(dist)], cwd=project, check=True)
    drop_rest_api(stage, dist / "sam.json")


def drop_rest_api(stage: str, sam: Path) -> None:
    """Chalice always generates a REST API; an API_FRONT_DOOR=http stage serves through the merge
    template's HTTP API instead, so the REST API and its outputs are taken out of sam.json."""
    from infra.stage import load
    from infra.template import without_rest_api

    if load(stage).front_door == "http":
        sam.write_text(json.dumps(without_rest_api(json.loads(sam.read_text())), indent=2))


def check_binaries(package: Path) -> int:
    """Every ELF file in the zip is for the target machine; extension modules for 3.13 or abi3."""
    machine = MACHINES[LAMBDA_ARCHITECTURE]
    tag = f"cpython-{PYTHON_VERSION.replace('.', '')}-{machine}-linux-gnu"
    count = 0
    with zipfile.ZipFile(package) as zipped:
        names = set(zipped.namelist())
        for needed in ("app.py", "chalicelib/runtime.py"):
            if needed not in names:
                raise PackageError(f"{package} has no {needed}")
        for name in names:
            with zipped.open(name) as member:
                header = member.read(20)
            if header[:4] != b"\x7fELF":
                continue
            count += 1
            if int.from_bytes(header[18:20], "little") != ELF_MACHINES[machine]:
                raise PackageError(f"{name} in {package} is not built for {machine}")
            if name.endswith(".so") and ".cpython-" in name and tag not in name:
                raise PackageError(f"{name} in {package} is an extension module for another Python than {tag}")
    return count


IMPORT_CHECK = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
from chalicelib import runtime
assert app.__file__.startswith(sys.argv[2]), app.__file__
event = {"resource": "/.well-known/openid-configuration", "path": "/.well-known/openid-configuration",
         "httpMethod": "GET", "headers": {"Host": "package-check"}, "multiValueHeaders": None,
         "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
         "stageVariables": None, "body": None, "isBase64Encoded": False,
         "requestContext": {"resourcePath": "/.well-known/openid-configuration", "httpMethod": "GET",
                            "stage": "api", "requestId": "package-check", "identity": {"sourceIp": "127.0.0.1"}}}
response = app.app(event, None)
print(json.dumps({"python": sys.version.split()[0], "status": response["statusCode"],
                  "issuer": json.loads(response["body"]).get("issuer"), "modules": len(sys.modules)}))
"""


def find_python313() -> str:
    candidates = [os.environ.get("PYTHON313"), shutil.which(f"python{PYTHON_VERSION}"),
                  *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{PYTHON_VERSION}*/bin/python3")))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                               text=True, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(int(p) for p in PYTHON_VERSION.split("."))):
            return candidate
    raise PackageError(f"checking the package needs a Python {PYTHON_VERSION} interpreter: install one, or "
                       f"point PYTHON313 at it (make package PYTHON313=/path/to/python{PYTHON_VERSION})")


def check_imports(package: Path, stage: str) -> dict:
    """Import the zip's code on Python 3.13 and serve discovery (see the module docstring)."""
    from infra.stage import load

    python = find_python313()
    with tempfile.TemporaryDirectory(prefix="idp-package-check-") as scratch:
        code, native = Path(scratch) / "code", Path(scratch) / "native"
        with zipfile.ZipFile(package) as zipped:
            zipped.extractall(code)  # behind `native` on sys.path: only what it lacks loads from here
        pip_install(native, platform.machine())
        env = {"PATH": os.environ.get("PATH", ""), **load(stage).env, "AWS_REGION": "us-east-1",
               "AWS_DEFAULT_REGION": "us-east-1",
               # Dummy credentials keep botocore from probing instance metadata; no AWS call is made.
               "AWS_ACCESS_KEY_ID": "package-check", "AWS_SECRET_ACCESS_KEY": "package-check",
               "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
        result = subprocess.run([python, "-I", "-c", IMPORT_CHECK, str(native), str(code)], env=env, cwd=scratch,
                                capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackageError(f"the package's code does not import on {python}:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["status"] != 200:
        raise PackageError(f"discovery answered {report['status']} on {python}")
    return report


def check_issuer(stage: str) -> None:
    """Refuse the example issuer, unless ALLOW_EXAMPLE_ISSUER (or DRY_RUN, for `make deploy
    DRY_RUN=1`) says the package is only being checked."""
    from infra.stage import ALLOW_EXAMPLE_ISSUER, load, require_real_issuer

    try:
        require_real_issuer(load(stage))
    except StageError as exc:
        if not any(os.environ.get(flag) not in (None, "", "0") for flag in (ALLOW_EXAMPLE_ISSUER, "DRY_RUN")):
            raise
        print(f"warning: {exc}\n  (building anyway for a check: {ALLOW_EXAMPLE_ISSUER} or DRY_RUN is set; "
              "this package must not be deployed)", file=sys.stderr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", required=True)
    parser.add_argument("--dist", required=True, type=Path, help="holds merge-template.json; gets sam.json and the zip")
    args = parser.parse_args(argv)
    dist = args.dist.resolve()
    project = dist / "project"
    try:
        check_issuer(args.stage)
        shutil.rmtree(project, ignore_errors=True)
        stage_project(project)
        chalice_package(project, args.stage, dist)
        shutil.rmtree(project)
        binaries = check_binaries(dist / "deployment.zip")
        compiled = count_bytecode(dist / "deployment.zip")
        report = check_imports(dist / "deployment.zip", args.stage)
    except (PackageError, StageError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"package: {binaries} native libraries, all {MACHINES[LAMBDA_ARCHITECTURE]}; {compiled} modules "
          f"compiled for Python {PYTHON_VERSION}; the code imports and "
          f"serves discovery on Python {report['python']} ({report['modules']} modules after the SnapStart init)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
