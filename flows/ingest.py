"""The ``ingest-deliveries`` flow: every new delivery folder into raw, one transaction each."""

from __future__ import annotations

import shutil
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from idds.dq import ensure_dq_schema
from idds.ingest.files import DeliveryRefused, discover, ready
from idds.ingest.load import ReconciliationError, ensure_raw_tables, is_new, load_delivery
from idds.mapping import load_mapping
from idds.pseudonym import load_key
from idds.settings import Settings
from idds.status import retry_if_transient
from idds.warehouse import connect

# Transient failures (a delivery still being written, the warehouse locked by another
# process) are retried with exponential back-off: 10 s, 20 s, 40 s, 80 s (+-20 %).
# Anything else fails at once: retrying a data problem only repeats it.
TRANSIENT_RETRIES = {
    "retries": 4,
    "retry_delay_seconds": exponential_backoff(backoff_factor=10),
    "retry_jitter_factor": 0.2,
    "retry_condition_fn": retry_if_transient,
    # every task has side effects: never skip one for a cached result (a flow retry runs
    # them again under the same flow run)
    "cache_policy": NO_CACHE,
}


@task(name="find_new_deliveries", **TRANSIENT_RETRIES)
def find_new_deliveries(settings: Settings) -> list[str]:
    """Delivery ids, in delivery order, holding a file not taken in before."""
    mapping = load_mapping()
    with connect(settings.warehouse, load_key(settings)) as con:
        ensure_dq_schema(con)
        ensure_raw_tables(con, mapping)
        new, waiting = ready([d for d in discover(settings.landing, mapping) if is_new(con, d)],
                             settings.quiet_seconds)
    if waiting:
        get_run_logger().warning(waiting)
    return [d.delivery_id for d in new]


@task(name="load_delivery", **TRANSIENT_RETRIES)
def load_delivery_task(settings: Settings, run_id: str, delivery_id: str) -> dict:
    """Load one delivery (one transaction); returns counts only, never patient rows.

    The decoded working copies of its files are removed afterwards (they are as large as
    the delivery); a run killed mid-load leaves them, and the next run clears them."""
    mapping = load_mapping()
    delivery = next(d for d in discover(settings.landing, mapping) if d.delivery_id == delivery_id)
    work = settings.work / "ingest" / run_id
    try:
        with connect(settings.warehouse, load_key(settings)) as con:
            try:
                files = load_delivery(con, run_id, delivery, mapping, work)
            except DeliveryRefused as exc:
                return {"delivery_id": delivery_id, "status": "refused", "message": str(exc)}
            except ReconciliationError as exc:  # rolled back: nothing of the delivery stays
                return {"delivery_id": delivery_id, "status": "unreconciled", "message": str(exc)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "delivery_id": delivery_id,
        "status": "loaded",
        "files": len(files),
        "rows_read": sum(f.rows_read for f in files),
        "rows_loaded": sum(f.rows_loaded for f in files),
        "rows_quarantined": sum(f.rows_quarantined for f in files),
        "rows_duplicate": sum(f.rows_duplicate for f in files),
    }


@flow(name="ingest-deliveries")
def ingest_deliveries(run_id: str, landing: str | None = None, warehouse: str | None = None) -> list[dict]:
    """Load each new delivery in order. A refused delivery (unreadable, broken transfer)
    or one whose records do not reconcile stops the ingest: it and every later delivery
    wait, and the run is blocked (see the registry flow's ``record_ingest``)."""
    logger = get_run_logger()
    settings = Settings().with_overrides(landing=landing, warehouse=warehouse)
    new = find_new_deliveries(settings)
    if not new:
        logger.info("No new delivery in %s.", Path(settings.landing))
    results = []
    for delivery_id in new:
        result = load_delivery_task(settings, run_id, delivery_id)
        if result["status"] in ("unreconciled", "refused"):
            # deliveries apply in order: the later ones wait until this one is redelivered
            waiting = new[new.index(delivery_id) + 1:]
            result["waiting"] = waiting
            logger.error(result["message"] + (f" Waiting with it: {', '.join(waiting)}." if waiting else ""))
            results.append(result)
            break
        else:
            logger.info(
                "Delivery %s: %d files, %d records read = %d loaded + %d quarantined + %d duplicate.",
                delivery_id, result["files"], result["rows_read"], result["rows_loaded"],
                result["rows_quarantined"], result["rows_duplicate"],
            )
        results.append(result)
    return results
