"""The Dockerfiles follow the image rules (they cannot be built here: no daemon, no registry)."""

from __future__ import annotations

import fnmatch
import re
import tomllib

import pytest

from gateway.triton_process import GPU_CONFIG_NAME
from tests.deploy.chart import ROOT
from tests.deploy.dockerfile import parse

DOCKER_DIR = ROOT / "deploy" / "docker"
IMAGES = {
    "gateway.Dockerfile": {"ports": {50051, 50052, 9464}, "user": "10001"},
    "triton-cpu.Dockerfile": {"ports": {8000, 8001, 8002}, "user": "10001"},
    "triton-gpu.Dockerfile": {"ports": {8000, 8001, 8002}, "user": "10001"},
}
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|cc1|make|cmake|gfortran|rustc|cargo)\b")
PINNED = re.compile(r"^[\w.\-/]+(:[\w.\-]+)?(@sha256:[0-9a-f]{64})?$")

dockerfiles = pytest.mark.parametrize("name", sorted(IMAGES))


def final(name):
    return parse(DOCKER_DIR / name)[-1]


def test_every_dockerfile_is_tested():
    assert sorted(p.name for p in DOCKER_DIR.glob("*.Dockerfile")) == sorted(IMAGES)


@dockerfiles
def test_base_images_are_pinned(name):
    stage_names = set()
    for stage in parse(DOCKER_DIR / name):
        if stage.base not in stage_names:
            assert PINNED.match(stage.base), stage.base
            tag = stage.base.split("@")[0].rpartition(":")[2] if ":" in stage.base.split("@")[0] else ""
            assert tag and tag != "latest" and not tag.startswith("$"), f"{name}: base {stage.base} is not pinned"
        stage_names.add(stage.name)


@dockerfiles
def test_final_stage_runs_as_a_non_root_user(name):
    users = final(name).all("USER")
    assert users, f"{name}: the final stage sets no USER"
    user = users[-1].value.split(":")[0]
    assert user not in ("root", "0"), name
    assert user == IMAGES[name]["user"], "the chart's runAsUser"
    assert all(i.keyword != "USER" for i in final(name).instructions[final(name).instructions.index(users[-1]) + 1:])


@dockerfiles
def test_no_compiler_in_the_final_stage(name):
    for instruction in final(name).all("RUN"):
        assert not COMPILERS.search(instruction.value), f"{name}:{instruction.line}: {instruction.value[:120]}"


@dockerfiles
def test_ports_healthcheck_and_entrypoint(name):
    stage = final(name)
    exposed = {int(p.split("/")[0]) for i in stage.all("EXPOSE") for p in i.value.split()}
    assert exposed == IMAGES[name]["ports"]
    (healthcheck,) = stage.all("HEALTHCHECK")
    assert healthcheck.exec_form(), f"{name}: HEALTHCHECK in exec form"
    (entrypoint,) = stage.all("ENTRYPOINT")
    assert entrypoint.exec_form(), f"{name}: ENTRYPOINT in exec form (signals reach the server)"


@pytest.mark.parametrize("name", ["gateway.Dockerfile", "triton-cpu.Dockerfile"])
def test_python_images_build_wheels_in_a_builder_and_install_torch_first(name):
    stages = parse(DOCKER_DIR / name)
    assert len(stages) == 2 and stages[0].name == "builder"
    assert all(s.base.startswith("python:3.11") and "slim" in s.base for s in stages)
    builder_runs = " ".join(i.value for i in stages[0].all("RUN"))
    assert "build-essential" in builder_runs and "pip wheel" in builder_runs
    project = re.search(r"--find-links /wheels (\.|\"\.\[\w+\]\")$", builder_runs)
    assert project, "the project's wheels are built last, against the wheels already there"
    assert builder_runs.index("torch==2.13.0") < project.start()
    install = " ".join(i.value for i in stages[1].all("RUN"))
    assert "--no-index --find-links /wheels" in install and "from=builder" in install
    assert "torch==2.13.0" in install and "--constraint" in install
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert stages[1].all("ENTRYPOINT")[0].exec_form()[0] in scripts


def test_cpu_triton_image_carries_the_python_based_backend_where_the_launcher_looks():
    stage = final("triton-cpu.Dockerfile")
    copies = {i.value.split()[-2]: i.value.split()[-1] for i in stage.all("COPY")}
    assert copies["triton_backends"] == "/opt/venv/lib/python3.11/site-packages/triton_backends"
    assert copies["model_repository"] == "/opt/moderation/model_repository"
    assert (ROOT / "triton_backends" / "torchscript_classifier" / "model.py").is_file()


def test_gpu_triton_image_is_nvidias_and_serves_the_gpu_config():
    (stage,) = parse(DOCKER_DIR / "triton-gpu.Dockerfile")
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d{2}\.\d{2}-py3", stage.base)
    entrypoint = stage.all("ENTRYPOINT")[0].exec_form()
    assert entrypoint[0] == "tritonserver"
    assert f"--model-config-name={GPU_CONFIG_NAME}" in entrypoint
    assert "--model-control-mode=explicit" in entrypoint
    assert (ROOT / "model_repository" / "toxicity" / "configs" / f"{GPU_CONFIG_NAME}.pbtxt").is_file()
    assert not any(i.keyword == "RUN" and "pip" in i.value for i in stage.instructions), "libtorch needs no Python of ours"


@dockerfiles
def test_copied_paths_exist_and_are_not_docker_ignored(name):
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for stage in parse(DOCKER_DIR / name):
        for copy in stage.all("COPY"):
            if "--from=" in copy.value:
                continue
            sources = [w for w in copy.value.split() if not w.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"{name}:{copy.line}: {source} is not in the repository"
                assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{name}: {source} is docker-ignored"


def test_parser_reads_continuations_and_stages(tmp_path):
    dockerfile = tmp_path / "x.Dockerfile"
    dockerfile.write_text("ARG V=1\nFROM a:1 AS one\nRUN echo a \\\n  # note\n  && echo b\nFROM b:2\nUSER 5\n")
    one, two = parse(dockerfile)
    assert (one.name, one.all("RUN")[0].value) == ("one", "echo a && echo b")
    assert (two.base, two.all("USER")[0].value) == ("b:2", "5")
