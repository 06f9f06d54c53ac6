"""Static checks of deploy/: the files parse and name what the code expects.

No Docker engine or Helm runs on the test machines, so these tests read the
YAML and the Dockerfile and compare them with the project's own constants
(environment variable names, module, ports, paths). When the `docker compose`
command exists, its own rendering is checked as well. `helm template` is
not run: it needs the chart downloaded from its repository.
"""

from __future__ import annotations

import importlib
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from routiine_pipeline import oauth_settings, settings
from routiine_pipeline.cli.instance import PG_URL_ENV, check_postgres_url
from routiine_pipeline.control import vault
from routiine_pipeline.storage.lease import lease_required

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
IMAGE = "routiine-pipeline:0.1.0"
DEFINITIONS_MODULE = "routiine_pipeline.definitions"

# What a code location, and every run it launches, reads from the environment.
RUN_ENVIRONMENT = {
    settings.HOME_ENV,
    settings.CONTROL_URL_ENV,
    vault.KEYS_ENV,
    oauth_settings.CLIENT_ID_ENV,
    oauth_settings.CLIENT_SECRET_ENV,
    oauth_settings.REDIRECT_URI_ENV,
}
SECRET_ENVIRONMENT = {vault.KEYS_ENV, oauth_settings.CLIENT_SECRET_ENV}


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


def _option(args: list[str], *names: str) -> str:
    for index, arg in enumerate(args):
        if arg in names:
            return args[index + 1]
    raise AssertionError(f"none of {names} in {args}")


def _dockerfile() -> list[tuple[str, str]]:
    """Return the Dockerfile's instructions as (keyword, arguments), continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, rest in _dockerfile():
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def _expand(value: str, env: dict[str, str]) -> str:
    for name, replacement in env.items():
        value = value.replace("${" + name + "}", replacement)
    return value


# -- Dagster instance --------------------------------------------------------


def test_deploy_instance_on_postgres(postgres_dagster_home):
    """deploy/dagster.yaml builds a real instance whose run, event-log and schedule storage is PostgreSQL."""
    import dagster as dg
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    instance = dg.DagsterInstance.from_config(str(postgres_dagster_home))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        limits = {
            limit["key"]: limit
            for limit in coordinator.get_run_queue_config().tag_concurrency_limits
        }
        for key in ("routiine/tenant", "dagster/partition/tenant"):
            assert limits[key]["limit"] == 1
            assert limits[key]["value"] == {"applyLimitPerUniqueValue": True}
        assert coordinator.get_run_queue_config().max_concurrent_runs >= 1
        assert instance.run_monitoring_enabled
        # The instance really writes: add a tenant partition and read it back.
        instance.add_dynamic_partitions("routiine_tenants", ["acme"])
        assert instance.get_dynamic_partitions("routiine_tenants") == ["acme"]
    finally:
        instance.dispose()


def test_instances_share_run_queue_limits():
    local = _yaml(DEPLOY / "dagster-local.yaml")["run_coordinator"]["config"]
    deployed = _yaml(DEPLOY / "dagster.yaml")["run_coordinator"]["config"]
    assert local["tag_concurrency_limits"] == deployed["tag_concurrency_limits"]
    assert "storage" not in _yaml(DEPLOY / "dagster-local.yaml")


def test_bare_postgres_scheme_rejected():
    with pytest.raises(RuntimeError, match=r"write postgresql\+psycopg2:// instead"):
        check_postgres_url("postgresql://dagster@db:5432/dagster")
    check_postgres_url("postgresql+psycopg2://dagster@db:5432/dagster")


# -- Dockerfile ---------------------------------------------------------------


def test_dockerfile_copies_existing_paths_and_sets_homes():
    env = _dockerfile_env()
    assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    assert env[settings.HOME_ENV] == "/var/lib/routiine"
    froms = [rest for keyword, rest in _dockerfile() if keyword == "FROM"]
    assert froms == ["python:3.11-slim"]
    destinations = {}
    for keyword, rest in _dockerfile():
        if keyword != "COPY":
            continue
        *sources, destination = rest.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY source {source} missing"
            destinations[source] = _expand(destination, env)
    assert (
        destinations["deploy/dagster.yaml"] == "/opt/dagster/dagster_home/dagster.yaml"
    )
    assert destinations["dbt_like_sql"] == "./dbt_like_sql"
    ignored = (REPO / ".dockerignore").read_text().split()
    for needed in ("routiine_pipeline/", "dbt_like_sql/", "deploy/", "pyproject.toml"):
        assert needed not in ignored


def test_dockerfile_serves_the_definitions_module():
    command = next(rest for keyword, rest in _dockerfile() if keyword == "CMD")
    args = yaml.safe_load(command)
    assert args[:3] == ["dagster", "code-server", "start"]
    assert _option(args, "-m", "--module-name") == DEFINITIONS_MODULE
    importlib.import_module(DEFINITIONS_MODULE)


# -- docker compose -----------------------------------------------------------


@pytest.fixture(scope="module")
def compose():
    return _yaml(DEPLOY / "docker-compose.yml")


def test_compose_runs_postgres_code_location_webserver_and_daemon(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "routiine-code", "webserver", "daemon"}
    for name in ("routiine-code", "webserver", "daemon"):
        assert services[name]["image"] == IMAGE
    assert services["routiine-code"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / services["routiine-code"]["build"]["context"]).resolve() == REPO
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]


def test_compose_workspace_points_at_the_code_location(compose):
    code = compose["services"]["routiine-code"]["command"]
    assert code[:3] == ["dagster", "code-server", "start"]
    assert _option(code, "-m", "--module-name") == DEFINITIONS_MODULE
    port = int(_option(code, "-p", "--port"))
    workspace = _yaml(DEPLOY / "workspace.compose.yaml")["load_from"][0]["grpc_server"]
    assert workspace["host"] == "routiine-code"
    assert workspace["port"] == port
    assert workspace["location_name"] == _option(code, "--location-name")
    # The webserver and the daemon read the workspace where the Dockerfile puts it.
    env = _dockerfile_env()
    copied = {
        rest.split()[0]: _expand(rest.split()[-1], env)
        for keyword, rest in _dockerfile()
        if keyword == "COPY"
    }
    for name in ("webserver", "daemon"):
        command = compose["services"][name]["command"]
        assert (
            _option(command, "-w", "--workspace")
            == copied["deploy/workspace.compose.yaml"]
        )


def test_compose_environment_has_what_the_code_reads(compose):
    for name in ("routiine-code", "webserver", "daemon"):
        environment = compose["services"][name]["environment"]
        assert RUN_ENVIRONMENT <= set(environment), name
        assert environment["DAGSTER_HOME"] == _dockerfile_env()["DAGSTER_HOME"]
        check_postgres_url(environment[PG_URL_ENV])
        # Runs of a cluster need the PostgreSQL control store, so they take the writer lease.
        assert lease_required(environment[settings.CONTROL_URL_ENV])
        for secret in SECRET_ENVIRONMENT:
            assert environment[secret].startswith("${"), (
                f"{secret} must come from the env file"
            )
    example = (DEPLOY / "compose.env.example").read_text()
    for secret in SECRET_ENVIRONMENT:
        assert f"\n{secret}=\n" in example


def test_compose_mounts_tenant_files_where_runs_execute(compose):
    code = compose["services"]["routiine-code"]
    home = code["environment"][settings.HOME_ENV]
    assert f"tenant-data:{home}" in code["volumes"]
    assert "tenant-data" in compose["volumes"]
    postgres = compose["services"]["postgres"]
    init = [
        volume
        for volume in postgres["volumes"]
        if "docker-entrypoint-initdb.d" in volume
    ]
    assert init and (DEPLOY / init[0].split(":")[0]).exists()


@pytest.mark.skipif(
    subprocess.run(["docker", "compose", "version"], capture_output=True).returncode
    != 0
    if shutil.which("docker")
    else True,
    reason="docker compose is not installed; the YAML checks above cover the file",
)
def test_docker_compose_config_accepts_the_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        "\n".join(
            line.rstrip("=") + "=placeholder" if line.endswith("=") else line
            for line in (DEPLOY / "compose.env.example").read_text().splitlines()
        )
    )
    completed = subprocess.run(
        [
            "docker",
            "compose",
            "-f",
            str(DEPLOY / "docker-compose.yml"),
            "--env-file",
            str(env_file),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr


# -- Helm ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm_values():
    return _yaml(DEPLOY / "helm" / "values.yaml")


def test_helm_kubernetes_launcher_and_image(helm_values):
    assert helm_values["runLauncher"]["type"] == "K8sRunLauncher"
    deployments = helm_values["dagster-user-deployments"]["deployments"]
    assert len(deployments) == 1
    deployment = deployments[0]
    assert (
        _option(deployment["dagsterApiGrpcArgs"], "-m", "--module-name")
        == DEFINITIONS_MODULE
    )
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert (
        deployment["image"]["repository"]
        == helm_values["dagsterWebserver"]["image"]["repository"]
    )
    assert deployment["image"]["tag"] == IMAGE.split(":")[1]


def test_helm_run_pods_mount_shared_volume(helm_values):
    claim = _yaml(DEPLOY / "helm" / "tenant-data-pvc.yaml")
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    deployment = helm_values["dagster-user-deployments"]["deployments"][0]
    launcher = helm_values["runLauncher"]["config"]["k8sRunLauncher"]
    for owner in (deployment, launcher):
        (volume,) = owner["volumes"]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        (mount,) = owner["volumeMounts"]
        assert mount["name"] == volume["name"]
        assert mount["mountPath"] == _dockerfile_env()[settings.HOME_ENV]
    assert {"name": "ROUTIINE_HOME", "value": "/var/lib/routiine"} in deployment["env"]
    assert "ROUTIINE_HOME=/var/lib/routiine" in launcher["envVars"]


def test_helm_secrets_and_postgres_match_the_code(helm_values):
    deployment = helm_values["dagster-user-deployments"]["deployments"][0]
    launcher = helm_values["runLauncher"]["config"]["k8sRunLauncher"]
    assert (
        deployment["envSecrets"]
        == launcher["envSecrets"]
        == [{"name": "routiine-secrets"}]
    )
    keys = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "helm" / "routiine.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert RUN_ENVIRONMENT - {settings.HOME_ENV} <= keys
    postgres = helm_values["postgresql"]
    assert postgres["enabled"] is False
    check_postgres_url(postgres["postgresqlScheme"] + "://host/db")


def test_helm_run_queue_matches_the_instance_file(helm_values):
    queued = helm_values["dagsterDaemon"]["runCoordinator"]
    assert queued["enabled"] is True
    assert queued["type"] == "QueuedRunCoordinator"
    config = queued["config"]["queuedRunCoordinator"]
    deployed = _yaml(DEPLOY / "dagster.yaml")["run_coordinator"]["config"]
    assert config["maxConcurrentRuns"] == deployed["max_concurrent_runs"]
    assert config["tagConcurrencyLimits"] == deployed["tag_concurrency_limits"]
    assert helm_values["dagsterDaemon"]["runMonitoring"]["enabled"] is True


def test_helm_images_carry_the_kubernetes_launcher(helm_values):
    """The webserver and daemon load K8sRunLauncher, so they run the image built with the k8s extra."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (k8s,) = project["optional-dependencies"]["k8s"]
    dagster_postgres = next(
        dependency
        for dependency in project["dependencies"]
        if dependency.startswith("dagster-postgres")
    )
    # The Dagster integration libraries are released together under one version.
    assert k8s.split("==")[1] == dagster_postgres.split("==")[1]
    installs = [
        rest
        for keyword, rest in _dockerfile()
        if keyword == "RUN" and "pip install" in rest
    ]
    assert any('".[k8s]"' in command for command in installs)
    image = helm_values["dagster-user-deployments"]["deployments"][0]["image"]
    for component in ("dagsterWebserver", "dagsterDaemon"):
        assert helm_values[component]["image"] == image, component


def test_yaml_files_have_no_repeated_keys():
    """A repeated key silently replaces the first block; reject it in every deployment file."""

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = {key for key in keys if keys.count(key) > 1}
        assert not repeated, (
            f"repeated keys {repeated} at line {node.start_mark.line + 1}"
        )
        return loader.construct_mapping(node, deep=deep)

    UniqueKeyLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping
    )
    files = [
        *DEPLOY.glob("*.yaml"),
        *DEPLOY.glob("*.yml"),
        *(DEPLOY / "helm").glob("*.yaml"),
    ]
    assert len(files) >= 6
    for path in files:
        yaml.load(path.read_text(), Loader=UniqueKeyLoader)
