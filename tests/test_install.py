"""scripts/install.sh: cached reruns, clear errors, the Dockerfile lints clean."""
from __future__ import annotations

import os
import subprocess

from conftest import REPO

INSTALL = REPO / "scripts" / "install.sh"


def run_install(*args, **env):
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})


def test_second_run_is_cached_and_links_pycaffe():
    run = run_install()
    assert run.returncode == 0, run.stderr
    assert "recipe unchanged" in run.stdout
    assert "import caffe OK" in run.stdout
    pth = list((REPO / ".venv" / "lib").glob("python3.*/site-packages/caffe.pth"))
    assert pth and ".caffe/cpu/src/python" in pth[0].read_text()


def test_missing_python_is_a_clear_error():
    run = run_install(PYTHON="/nonexistent/python3.11")
    assert run.returncode != 0
    assert "'/nonexistent/python3.11' not found" in run.stderr


def test_wrong_python_version_is_a_clear_error(tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text('#!/bin/sh\necho 3.9\n')
    fake.chmod(0o755)
    run = run_install(PYTHON=str(fake))
    assert run.returncode != 0
    assert "is Python 3.9" in run.stderr and "3.11" in run.stderr


def test_unknown_option_is_refused():
    run = run_install("--frobnicate")
    assert run.returncode != 0 and "unknown option '--frobnicate'" in run.stderr


def test_bad_caffe_src_is_a_clear_error(tmp_path):
    run = run_install(CAFFE_SRC=str(tmp_path / "nope.tar.gz"))
    assert run.returncode != 0 and "does not exist" in run.stderr


def test_dockerfile_lints_clean():
    hadolint = REPO / ".venv" / "bin" / "hadolint"
    run = subprocess.run([str(hadolint), "--config", str(REPO / ".hadolint.yaml"),
                          str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_no_network_is_a_clear_error(tmp_path):
    """A fresh checkout (no .venv) in a network namespace without network."""
    import shutil

    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        import pytest

        pytest.skip("this machine does not allow network namespaces (unshare -n)")
    shutil.copytree(REPO / "scripts", tmp_path / "scripts")
    for name in ("requirements.txt", "constraints.txt"):
        shutil.copy(REPO / name, tmp_path / name)
    run = subprocess.run(["unshare", "-n", "bash", str(tmp_path / "scripts" / "install.sh")],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PIP_RETRIES": "0", "PIP_TIMEOUT": "3"})
    assert run.returncode != 0
    assert "no network to the Python package registry" in run.stderr
    assert not (tmp_path / ".caffe" / "cpu").exists()  # stopped before building anything


def test_missing_packages_without_root_is_a_clear_error():
    """As an unprivileged user (no sudo), a missing system package stops the install with a reason."""
    if os.geteuid() != 0:
        import pytest

        pytest.skip("needs root to switch to an unprivileged user")
    script = (f'source "{INSTALL}"; APT_PACKAGES=(cmake no-such-package-stem-restore); '
              'check_prerequisites; install_apt_packages')
    run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          "bash", "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHON": "/usr/bin/python3"})
    assert run.returncode != 0
    assert "missing system packages (no-such-package-stem-restore) and no root" in run.stderr


def _pins(path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"{path.name}: {line!r} is not pinned with =="
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_every_installed_package_is_pinned_and_installed_at_its_pin():
    """requirements.txt's pins agree with constraints.txt's, and install.sh installed exactly those
    versions of everything in the venv (so a fresh machine gets the environment the tests ran in)."""
    from importlib.metadata import distributions

    required, constrained = _pins(REPO / "requirements.txt"), _pins(REPO / "constraints.txt")
    assert {k: constrained.get(k) for k in required} == required
    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in distributions()}
    for skip in ("pip", "setuptools", "stem-restore"):
        installed.pop(skip, None)
    assert installed == constrained
