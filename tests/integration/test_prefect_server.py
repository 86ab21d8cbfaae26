"""Integration: a real Prefect server on 127.0.0.1, the scheduled deployments, a worker running the
training deployment on a toy DVC project, then `unigrec run` against the same server finding it cached.

Slow (a server start, a worker start and a flow-run subprocess: ~40 s on 2 cores). Every process the
test starts is its own process group, killed in ``finally``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.prefect_local_server import BIN, kill_group, prefect_server
from support.toy_dvc_project import PROJECT_ROOT, make_toy_project

from unigrec.config import load_section

pytestmark = pytest.mark.slow

WORKER_TIMEOUT_S = 180
CLI_TIMEOUT_S = 120


def _run(cmd: list[str], env: dict[str, str], timeout: float, cwd: Path = PROJECT_ROOT) -> str:
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-4000:]}"
    return out


def test_scheduled_deployments_run_by_a_worker_on_a_real_server(tmp_path: Path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    cfg = load_section("orchestration", PROJECT_ROOT / "params.yaml")
    toy = make_toy_project(tmp_path / "toy")
    training = f"training-pipeline/{cfg.training.name}"
    with prefect_server(tmp_path / "prefect-home") as (url, env):
        deployed = _run([str(BIN / "unigrec"), "deploy", "--root", str(toy)], env, CLI_TIMEOUT_S)
        assert training in deployed and f"data-contract-check/{cfg.contract_check.name}" in deployed
        _run([str(BIN / "prefect"), "deployment", "run", training], env, CLI_TIMEOUT_S)
        _run(
            [str(BIN / "prefect"), "worker", "start", "--pool", cfg.work_pool, "--run-once"],
            env,
            WORKER_TIMEOUT_S,
        )
        with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(training)
            crons = [s.schedule.cron for s in deployment.schedules]
            assert crons == [cfg.training.cron] and deployment.parameters == {"root": str(toy)}
            contract = client.read_deployment_by_name(f"data-contract-check/{cfg.contract_check.name}")
            assert [s.schedule.cron for s in contract.schedules] == [cfg.contract_check.cron]
            runs = [r for r in client.read_flow_runs() if r.deployment_id == deployment.id and r.state.is_final()]
            assert len(runs) == 1 and runs[0].state.is_completed(), runs
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[runs[0].id]))
            )
            assert {"make-metrics", "pipeline-run"} <= {a.key for a in artifacts}
        assert (toy / "final.txt").read_text() == "xx"

        # `unigrec run` against the same server: DVC finds every stage cached
        again = _run([str(BIN / "unigrec"), "run", "--root", str(toy)], env, CLI_TIMEOUT_S)
        assert [line.split() for line in again.splitlines() if line.split()[:1] in (["make"], ["use"])] == [
            ["make", "cached"],
            ["use", "cached"],
        ]
