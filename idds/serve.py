"""``idds serve``: the registry pipeline as a Prefect deployment on a schedule.

One long-lived process (run it under systemd, see the README) registers the deployment
``registry-pipeline/nightly`` with the Prefect API and starts a flow run at every tick of
the cron schedule (Asia/Shanghai time; nightly at 02:00 by default). Each run:

* takes whatever is new in the landing folder (a delivery whose newest file changed less
  than ``IDDS_SETTLE_SECONDS`` ago, default 120, may still be being written: the
  planning task fails and Prefect retries it with back-off, 10 s doubling to 80 s);
* retries a locked warehouse the same way, task by task;
* is retried once as a whole, 15 minutes later, when it fails anyway;
* never overlaps another run: the deployment's concurrency limit is 1 (a run due while
  one is running waits in the queue), and the flow itself waits for the run lock, which
  a manual ``idds run`` may hold.
"""

from __future__ import annotations

import os
from pathlib import Path

from idds.settings import ConfigError, Settings

DEPLOYMENT_NAME = "nightly"
DEFAULT_CRON = "0 2 * * *"
TIMEZONE = "Asia/Shanghai"
SETTLE_ENV = "IDDS_SETTLE_SECONDS"
DEFAULT_SETTLE_SECONDS = 120.0
ENTRYPOINT = "flows.registry.scheduled_pipeline"


def deployment_parameters(settings: Settings) -> dict:
    """Absolute paths (the flow run may start elsewhere), wait for the lock, settle time."""
    return {
        "landing": str(Path(settings.landing).resolve()),
        "warehouse": str(Path(settings.warehouse).resolve()),
        "publish_path": str(Path(settings.publish).resolve()),
        "reports": str(Path(settings.reports).resolve()),
        "wait": True,
        "settle_seconds": float(os.environ.get(SETTLE_ENV) or DEFAULT_SETTLE_SECONDS),
    }


def build_deployment(settings: Settings, cron: str = DEFAULT_CRON, timezone: str = TIMEZONE):
    """The RunnerDeployment ``registry-pipeline/nightly`` (built, not yet registered)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from flows.registry import scheduled_pipeline

    try:
        schedule = Cron(cron, timezone=timezone)
    except ValueError as exc:
        raise ConfigError(f"--cron {cron!r} is not a cron expression ({str(exc).splitlines()[0]}).") from None
    deployment = scheduled_pipeline.to_deployment(
        name=DEPLOYMENT_NAME,
        schedule=schedule,
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
        parameters=deployment_parameters(settings),
        description=f"IDDS registry: new deliveries in {settings.landing} -> analyst file "
                    f"{settings.publish}; {cron} ({timezone}).",
        tags=["idds"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # the runner loads the flow from here: the retried variant, not the bare function name
    deployment.entrypoint = ENTRYPOINT
    return deployment


def serve(settings: Settings, cron: str = DEFAULT_CRON) -> int:
    """Register the deployment and run it on its schedule until stopped (blocks)."""
    from prefect import serve as prefect_serve

    from idds.pseudonym import load_key

    load_key(settings)  # fail now, not at 02:00, when no key is configured
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    deployment = build_deployment(settings, cron)
    print(f"serving registry-pipeline/{DEPLOYMENT_NAME}: {cron} ({TIMEZONE}), one run at a time; "
          "stop with Ctrl-C or SIGTERM", flush=True)
    prefect_serve(deployment, limit=1)
    return 0
