"""The compose checks on the image: versions, and requirements installed as the no-Docker path installs them.

The image must pin the Airflow, Python and moto versions the no-Docker path pins (moto: the moto
service runs the project's endpoint from this image, as the no-Docker stack runs it from .venv), install
requirements.txt under the same local constraints (its constraints URL dropped exactly as
scripts/bootstrap.sh drops it), and carry no pin the constraints would reject.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from clean_zone_tools import requirements_file
from clean_zone_tools.mwaa_deploy.mwaa_env import preinstalled_file

from .parsing import (
    AIRFLOW_SERVICES,
    BOOTSTRAP_SCRIPT,
    COMPOSE_FILE,
    DOCKERFILE,
    MOTO_SERVICE,
    Stack,
    Versions,
    copy_sources,
    dockerfiles,
    image_tag,
    option_values,
    pip_installs,
    read,
    strip_command,
)


def check_versions(stack: Stack) -> list[str]:
    """Airflow, Python and moto versions: every Dockerfile and compose match the no-Docker pins."""
    problems: list[str] = []
    versions = stack.versions()
    airflow_tag = f"{versions.airflow}-python{versions.python}"
    for relative, instructions in dockerfiles(stack):
        bases = [args.split()[0] for word, args in instructions if word == "FROM" and args]
        airflow_bases = [base for base in bases if image_tag(base)[0] == "apache/airflow"]
        if relative == DOCKERFILE and not airflow_bases:
            problems.append(f"{relative}: no FROM apache/airflow:{airflow_tag}")
        problems += [
            f"{relative}: FROM {base}, but the no-Docker path pins apache/airflow:{airflow_tag} "
            f"(requirements-mwaa-base.txt, {versions.constraints_file})"
            for base in airflow_bases
            if image_tag(base)[1] != airflow_tag
        ]
        problems += [
            f"{relative}: pip install without --constraint {Path(versions.constraints_file).name}"
            for words in pip_installs(instructions)
            if relative != DOCKERFILE  # checked in detail by check_requirements_install
            and Path(versions.constraints_file).name not in option_values(words, "-c", "--constraint")
        ]
    expected_image = f"clean-zone-airflow:{airflow_tag}"
    for name in (*AIRFLOW_SERVICES, MOTO_SERVICE):
        service = stack.service(name)
        build = service.get("build")
        if not service:
            problems.append(f"{COMPOSE_FILE}: service {name} is missing")
        elif service.get("image") != expected_image:
            problems.append(f"{name}: image {service.get('image')!r}, expected {expected_image!r}")
        elif not isinstance(build, dict) or build.get("dockerfile") != DOCKERFILE or build.get("args"):
            problems.append(f"{name}: must build {DOCKERFILE} with no build args (the pins live there)")
    moto_pins = [
        requirement
        for words in pip_installs(stack.dockerfile)
        for requirement in words
        if re.match(r"moto(\[[^\]]*\])?\s*[=<>~!]", requirement)
    ]
    if not moto_pins:
        problems.append(
            f"{DOCKERFILE}: no pip install of moto[server]=={versions.moto} "
            f"(requirements-dev.txt's version; the {MOTO_SERVICE} service runs it)"
        )
    problems += [
        f"{DOCKERFILE}: installs {pin}, but requirements-dev.txt pins moto {versions.moto} "
        f"(expected moto[server]=={versions.moto})"
        for pin in moto_pins
        if pin.replace(" ", "") != f"moto[server]=={versions.moto}"
    ]
    problems += [
        f"{name}: image {service['image']!r} has no version tag"
        for name, service in stack.services.items()
        if service.get("image") and image_tag(service["image"])[1] in {"", "latest"}
    ]
    return problems


def check_requirements_install(stack: Stack) -> list[str]:
    """The image installs requirements.txt as scripts/bootstrap.sh does: local constraints, no URL line."""
    problems: list[str] = []
    versions = stack.versions()
    url = (
        f"https://raw.githubusercontent.com/apache/airflow/constraints-{versions.airflow}/"
        f"constraints-{versions.python}.txt"
    )
    parsed = requirements_file.parse(read(stack.root, "requirements.txt"))
    urls = [value for _, value in parsed.constraint_urls]
    if urls != [url]:
        problems.append(f"requirements.txt: needs one --constraint line for {url}, has {urls}")
    copied = {src for word, args in stack.dockerfile if word == "COPY" for src in copy_sources(args)}
    for needed in (
        "requirements.txt",
        "requirements-mwaa-base.txt",
        versions.constraints_file,
        versions.essential_file,
    ):
        if needed not in copied:
            problems.append(f"{DOCKERFILE}: does not COPY {needed}")
    strip = strip_command(stack)
    if strip is None:
        problems.append(
            f"{DOCKERFILE}: no `grep -v ... requirements.txt > FILE` dropping the --constraint URL"
        )
    installs = pip_installs(stack.dockerfile)
    if not installs:
        problems.append(f"{DOCKERFILE}: no pip install")
    constraints_name, essential_name = (
        Path(versions.constraints_file).name,
        Path(versions.essential_file).name,
    )
    for words in installs:
        constraints = option_values(words, "-c", "--constraint")
        files = option_values(words, "-r", "--requirement")
        if constraints_name not in constraints:
            problems.append(f"{DOCKERFILE}: pip install without --constraint {constraints_name}")
        if essential_name not in constraints:
            problems.append(f"{DOCKERFILE}: pip install without MWAA's essential pins ({essential_name})")
        if "requirements.txt" in files:
            problems.append(
                f"{DOCKERFILE}: installs requirements.txt itself (its constraints URL, not the copy)"
            )
        if "requirements-mwaa-base.txt" not in files:
            problems.append(f"{DOCKERFILE}: pip install without -r requirements-mwaa-base.txt")
        if strip is not None and strip[1] not in files:
            problems.append(
                f"{DOCKERFILE}: pip install without -r {strip[1]} (requirements.txt minus the URL)"
            )
    return problems + pin_conflicts(stack.root, versions)


CELERY_PROVIDER = "apache-airflow-providers-celery"
MWAA_BASE = "requirements-mwaa-base.txt"


def check_celery_provider(stack: Stack) -> list[str]:
    """The executor the stack runs comes at MWAA's version, by name, not from the base image's extras.

    apache/airflow carries about 30 providers from its default extras, the Celery provider among them;
    the image must pin MWAA's version of it (requirements-mwaa-base.txt, installed by the Dockerfile), so
    a base image built with another provider release cannot change the executor under the stack.
    """
    versions = stack.versions()
    preinstalled = preinstalled_file(Path("constraints"), versions.airflow).as_posix()
    mwaa = requirements_file.pins(read(stack.root, preinstalled)).get(CELERY_PROVIDER)
    pinned = requirements_file.pins(read(stack.root, MWAA_BASE)).get(CELERY_PROVIDER)
    problems: list[str] = []
    if mwaa is None:
        problems.append(f"{preinstalled}: no {CELERY_PROVIDER} (MWAA's executor provider)")
    if pinned is None:
        problems.append(
            f"{MWAA_BASE}: no {CELERY_PROVIDER}==X pin; the image would run whatever Celery provider "
            "the base image's extras carry"
        )
    elif mwaa is not None and pinned != mwaa:
        problems.append(f"{MWAA_BASE}: {CELERY_PROVIDER}=={pinned}, MWAA {versions.airflow} runs {mwaa}")
    if not any(
        MWAA_BASE in option_values(words, "-r", "--requirement") for words in pip_installs(stack.dockerfile)
    ):
        problems.append(
            f"{DOCKERFILE}: no pip install -r {MWAA_BASE}: the {CELERY_PROVIDER} pin would not reach the "
            "image, and its extras would decide the executor's version"
        )
    return problems


# Lines the image and scripts/bootstrap.sh must treat alike: the first four dropped, the rest kept.
CONSTRAINT_SAMPLE = """\
--constraint "https://example.invalid/constraints-3.3.1/constraints-3.12.txt"
-c https://example.invalid/constraints.txt
--constraint=https://example.invalid/constraints.txt
   -c   ./local-constraints.txt
aiobotocore==3.9.0
apache-airflow-providers-common-messaging==2.0.4  # --constraint in a comment
# -c in a comment line
-r other-requirements.txt
--index-url https://example.invalid/simple
celery[redis]==5.6.3
"""


def check_constraint_stripping(stack: Stack) -> list[str]:
    """The image drops requirements.txt's --constraint line exactly as scripts/bootstrap.sh does."""
    strip = strip_command(stack)
    bootstrap = re.search(r"grep -v -E '([^']+)'", read(stack.root, BOOTSTRAP_SCRIPT))
    if strip is None or bootstrap is None:
        return [f"no `grep -v -E` dropping the --constraint line in {DOCKERFILE} or {BOOTSTRAP_SCRIPT}"]
    problems: list[str] = []
    samples = {
        "requirements.txt": read(stack.root, "requirements.txt"),
        "a sample of option lines": CONSTRAINT_SAMPLE,
    }
    with tempfile.TemporaryDirectory() as folder:
        for label, text in samples.items():
            Path(folder, "requirements.txt").write_text(text, encoding="utf-8")
            image = subprocess.run(
                ["bash", "-c", strip[0]], cwd=folder, capture_output=True, text=True, check=False
            )
            local = subprocess.run(
                ["grep", "-v", "-E", bootstrap.group(1), "requirements.txt"],
                cwd=folder,
                capture_output=True,
                text=True,
                check=False,
            )
            if image.stdout != local.stdout:
                problems.append(
                    f"{DOCKERFILE} filters {label} differently from {BOOTSTRAP_SCRIPT}: "
                    f"image keeps {image.stdout.splitlines()}, bootstrap keeps {local.stdout.splitlines()}"
                )
            kept = [value for _, value in requirements_file.parse(image.stdout).constraint_urls]
            if kept:
                problems.append(f"{DOCKERFILE} keeps the constraint lines {kept} of {label}")
            lost = set(requirements_file.pins(text)) - set(requirements_file.pins(image.stdout))
            if lost:
                problems.append(f"{DOCKERFILE} drops requirements {sorted(lost)} of {label}")
    return problems


def pin_conflicts(root: Path, versions: Versions) -> list[str]:
    """Pins that disagree with the constraints the image installs under (the build would fail)."""
    problems: list[str] = []
    official = requirements_file.pins(read(root, versions.constraints_file))
    essential = requirements_file.pins(read(root, versions.essential_file))
    problems += [
        f"{versions.essential_file}: {package}=={version}, official constraints: {official[package]}"
        for package, version in essential.items()
        if package in official and official[package] != version
    ]
    for relative in ("requirements.txt", "requirements-mwaa-base.txt"):
        for package, version in requirements_file.pins(read(root, relative)).items():
            for source, pins in ((versions.constraints_file, official), (versions.essential_file, essential)):
                if package in pins and pins[package] != version:
                    problems.append(
                        f"{relative}: {package}=={version} conflicts with {source} ({pins[package]}): "
                        "the image build would fail"
                    )
    return problems
