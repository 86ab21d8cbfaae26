"""Create or update the scheduled Prefect deployments on a process work pool (``unigrec deploy``).

Two deployments, both from this checkout (``flow.from_source`` on a local folder: the worker changes
into it and imports the flow, no image is built):
- ``training-pipeline/<orchestration.training.name>``: nightly retraining on a cron schedule;
- ``data-contract-check/<orchestration.contract_check.name>``: the scheduled data-quality check.
Schedules, pool, names and parameters all come from the ``orchestration`` section of params.yaml.
"""

from __future__ import annotations

import logging
from pathlib import Path
from uuid import UUID

from unigrec.config import PARAMS_FILE, OrchestrationConfig, load_section
from unigrec.errors import UnigrecError

log = logging.getLogger(__name__)

# Entry points relative to the checkout the worker runs from.
TRAINING_ENTRYPOINT = "flows/training_pipeline.py:training_pipeline"
CONTRACT_ENTRYPOINT = "flows/data_contract_check.py:data_contract_check"
PROCESS_POOL_TYPE = "process"


def require_api_url() -> str:
    """The Prefect server to deploy to; schedules only exist on a real server, not Prefect's temporary one."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise UnigrecError(
            "PREFECT_API_URL is not set: deployments and schedules need a running Prefect server "
            "(e.g. `prefect server start --host 127.0.0.1`, then "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api`)"
        )
    return url


def ensure_process_pool(name: str) -> bool:
    """Create the process work pool unless it exists; True if it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            # The default job template is what `prefect work-pool create --type process` would store.
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type=PROCESS_POOL_TYPE,
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
            log.info("created process work pool %s", name)
            return True


def deploy_all(code_root: Path, cfg: OrchestrationConfig, workspace: str = ".") -> dict[str, UUID]:
    """Create/update both deployments; return deployment name -> id.

    ``code_root`` is the checkout holding ``flows/`` (the worker runs there); ``workspace`` is the
    ``root`` parameter the flows get: the DVC project they operate on, relative to that checkout.
    """
    from prefect import Flow
    from prefect.schedules import Cron

    require_api_url()
    ensure_process_pool(cfg.work_pool)
    source = str(Path(code_root).resolve())
    plans = [
        (TRAINING_ENTRYPOINT, cfg.training, {"root": workspace}),
        (
            CONTRACT_ENTRYPOINT,
            cfg.contract_check,
            {"root": workspace, "drop_path": cfg.contract_check.drop_path},
        ),
    ]
    ids: dict[str, UUID] = {}
    for entrypoint, deployment, parameters in plans:
        loaded = Flow.from_source(source=source, entrypoint=entrypoint)
        ids[f"{loaded.name}/{deployment.name}"] = loaded.deploy(
            name=deployment.name,
            work_pool_name=cfg.work_pool,
            schedules=[Cron(deployment.cron, timezone=cfg.timezone)],
            concurrency_limit=deployment.concurrency_limit,
            parameters=parameters,
            build=False,
            push=False,
            print_next_steps=False,
        )
        log.info("deployment %s/%s: cron %r %s", loaded.name, deployment.name, deployment.cron, cfg.timezone)
    return ids


def main() -> None:
    """``python flows/deploy.py``: deploy from the current checkout with its params.yaml."""
    root = Path(".")
    for name, deployment_id in deploy_all(root, load_section("orchestration", root / PARAMS_FILE)).items():
        print(f"{name}: {deployment_id}")


if __name__ == "__main__":
    main()
