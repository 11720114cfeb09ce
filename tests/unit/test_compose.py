"""docker-compose.yaml cannot run here (no Docker engine): check its structure statically."""

import re

import yaml
from helpers import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def env(name):
    return SERVICES[name].get("environment", {})


def test_the_services_of_the_stack():
    assert {
        "postgres",
        "redis",
        "minio",
        "minio-init",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker-cpu",
        "airflow-worker-gpu",
    } <= set(SERVICES)


def test_celery_queues_and_gpu_reservation():
    assert env("airflow-scheduler")["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert SERVICES["airflow-worker-cpu"]["command"].endswith("-q default")
    gpu = SERVICES["airflow-worker-gpu"]
    assert "-q gpu" in gpu["command"] and gpu["build"]["args"]["TORCH_INDEX"].startswith("cu")
    dev = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert dev["driver"] == "nvidia" and "gpu" in dev["capabilities"] and gpu["environment"]["NCF_DEVICE"] == "cuda"
    assert env("airflow-worker-gpu")["NCF_TRAIN_QUEUE"] == "gpu"


def test_long_running_services_have_healthchecks():
    for name, svc in SERVICES.items():
        if name not in ("minio-init", "airflow-init"):
            assert "healthcheck" in svc, name


def test_dags_mounted_and_one_image_from_requirements():
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-worker-cpu"):
        assert "./dags:/opt/airflow/dags" in SERVICES[name]["volumes"]
        assert SERVICES[name]["build"]["dockerfile"] == "include/docker/Dockerfile"
    dockerfile = (ROOT / "include" / "docker" / "Dockerfile").read_text()
    assert "requirements.txt" in dockerfile and "apache/airflow:3.3.2" in dockerfile


def test_s3_connection_points_at_minio_and_bucket_is_created():
    e = env("airflow-scheduler")
    assert e["NCF_AWS_CONN_ID"] == "ncf_s3" and "http://minio:9000" in e["AIRFLOW_CONN_NCF_S3"]
    assert "mc mb" in " ".join(SERVICES["minio-init"]["entrypoint"])
    assert "minio/minio" not in SERVICES["minio"]["image"].split("/", 1)[0]  # not Docker Hub's removed image
    assert e["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080")


def test_no_secrets_in_the_file():
    text = (ROOT / "docker-compose.yaml").read_text()
    for key in ("PASSWORD", "SECRET", "FERNET_KEY"):
        for m in re.finditer(rf"{key}\w*:\s*(\S+)", text):
            assert m.group(1).startswith(("${", '"${', "'${")), m.group(0)
    assert (ROOT / ".env.example").is_file()


def test_production_details_of_the_official_file():
    """Issue 14: folders owned by AIRFLOW_UID, warm shutdown of workers, no env_file with every secret,
    code mounted beside the DAGs, two GPU slots so GMF and MLP pretrain in parallel."""
    init = SERVICES["airflow-init"]
    assert init["user"] == "0:0" and "chown -R" in init["command"][1] and "/opt/airflow/logs" in init["command"][1]
    for name in ("airflow-worker-cpu", "airflow-worker-gpu"):
        assert env(name)["DUMB_INIT_SETSID"] == "0", name
    assert all("env_file" not in svc for svc in SERVICES.values())
    volumes = SERVICES["airflow-scheduler"]["volumes"]
    assert "./ncf_tasks:/opt/airflow/project/ncf_tasks:ro" in volumes and "./dags:/opt/airflow/dags" in volumes
    assert "--concurrency 3" in SERVICES["airflow-worker-gpu"]["command"]  # GMF, MLP and EASE^R side by side
    assert env("airflow-scheduler")["NCF_SCHEDULE"].startswith("${NCF_SCHEDULE")
    # password variables only where they are needed; Airflow services get them inside the connection strings
    with_password_vars = sorted(n for n in SERVICES if any("PASSWORD" in k for k in env(n)))
    assert with_password_vars == ["airflow-init", "minio", "minio-init", "postgres"], with_password_vars
    assert [k for k in env("airflow-init") if "PASSWORD" in k] == ["_AIRFLOW_WWW_USER_PASSWORD"]


def test_login_from_the_metadata_db_and_the_gpu_outage_policy():
    """A production login (FAB: users in Postgres, created once by airflow-init, kept across restarts) and
    the GPU-outage policy: a queued task waits GPU_WAIT_SECONDS for its worker, then fails once."""
    for name in SERVICES:
        if name.startswith("airflow-"):
            e = env(name)
            assert e["AIRFLOW__CORE__AUTH_MANAGER"].endswith("fab_auth_manager.FabAuthManager"), name
            assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS" not in e, name
            assert e["AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT"] == "${GPU_WAIT_SECONDS:-21600}", name
            assert e["AIRFLOW__SCHEDULER__NUM_STUCK_IN_QUEUED_RETRIES"] == "0", name
    assert env("airflow-init")["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert "GPU_WAIT_SECONDS=" in (ROOT / ".env.example").read_text()


def _pins(name: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            pkg, version = line.split("==")
            out[pkg.split("[")[0].lower()] = version
    return out


def test_production_requirements_carry_the_executor_and_no_test_tools():
    """Issue 14, item 1: the image installs requirements.txt only; CeleryExecutor, Postgres, Redis and the
    FAB login are in it, with celery held below 5.7 (5.7.0 kills scheduler and workers at start)."""
    prod, dev = _pins("requirements.txt"), _pins("requirements-dev.txt")
    text = (ROOT / "requirements.txt").read_text()
    assert "apache-airflow[celery,postgres,redis]==3.3.2" in text
    assert {"apache-airflow-providers-celery", "apache-airflow-providers-fab", "celery"} <= prod.keys()
    assert tuple(int(x) for x in prod["celery"].split(".")[:2]) < (5, 7)
    assert not {"moto", "pytest", "hypothesis", "playwright"} & prod.keys()
    assert {"moto", "pytest", "hypothesis", "playwright"} <= dev.keys()
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
    dockerfile = (ROOT / "include" / "docker" / "Dockerfile").read_text()
    assert "requirements-dev" not in dockerfile and "moto" not in dockerfile
