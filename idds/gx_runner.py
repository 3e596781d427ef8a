"""Run the GX checkpoint over the marts and copy every result into ``dq``."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import duckdb

from idds.dq import record_check_result
from idds.warehouse import table_exists


def _lit(value) -> str:
    return "'" + str(value).replace("'", "''") + "'" if isinstance(value, str) else str(value)


def drilldown_sql(mart: str, config) -> str | None:
    """DuckDB SQL returning exactly the rows an expectation counts as unexpected."""
    kw = config.kwargs
    column = kw.get("column")
    table = f"marts.{mart}"
    if config.type == "expect_column_values_to_be_between":
        conds = []
        if kw.get("min_value") is not None:
            conds.append(f'"{column}" < {kw["min_value"]}')
        if kw.get("max_value") is not None:
            conds.append(f'"{column}" > {kw["max_value"]}')
        return f'select * from {table} where {" or ".join(conds)}'
    if config.type == "expect_column_values_to_be_in_set":
        values = ", ".join(_lit(v) for v in kw["value_set"])
        return f'select * from {table} where "{column}" is not null and "{column}" not in ({values})'
    if config.type == "expect_column_values_to_not_be_null":
        return f'select * from {table} where "{column}" is null'
    # table-level expectations count as one violation: the SQL returns one row when violated
    if config.type == "expect_table_row_count_to_be_between":
        low, high = kw.get("min_value"), kw.get("max_value")
        return (f"select count(*) as n_rows from {table} having count(*) < {low if low is not None else 0}"
                + (f" or count(*) > {high}" if high is not None else ""))
    if config.type == "expect_column_mean_to_be_between":
        return (f'select avg("{column}") as mean from {table} having avg("{column}") < {kw["min_value"]} '
                f'or avg("{column}") > {kw["max_value"]}')
    if config.type == "expect_column_values_to_be_unique":
        return (f'select * from {table} where "{column}" in (select "{column}" from {table} '
                f'group by all having count(*) > 1)')
    return None


def run_checkpoint(con: duckdb.DuckDBPyConnection, run_id: str, gx_root: Path, docs_out: Path) -> dict:
    """Validate each mart with its suite; results -> dq.dq_check_result; Data Docs -> docs_out."""
    import great_expectations as gx

    from expectations.gx_suites import suites

    started = time.perf_counter()
    gx_root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(gx_root))
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_or_update_pandas("marts")
    validations = []
    frames = {}
    previous = dict(con.execute(
        "select mart, arg_max(n_rows, run_id) from dq.mart_volume where run_id <> ? group by mart",
        [run_id]).fetchall())
    for mart, suite in suites(previous).items():
        if not table_exists(con, "marts", mart):
            record_check_result(con, run_id, f"pipeline.marts.{mart}.built", "pipeline", 1, 1,
                                status="error", detail=f"marts.{mart} was not built; its suite could not run")
            continue
        frames[mart] = con.execute(f"select * from marts.{mart}").df()
        con.execute("delete from dq.mart_volume where run_id = ? and mart = ?", [run_id, mart])
        con.execute("insert into dq.mart_volume values (?, ?, ?)", [run_id, mart, len(frames[mart])])
        asset = next((a for a in source.assets if a.name == mart), None) or source.add_dataframe_asset(mart)
        batch = next(iter(asset.batch_definitions), None) or asset.add_batch_definition_whole_dataframe("all")
        suite = context.suites.add_or_update(suite)
        validations.append((mart, batch, suite))
    summary = {"checks": 0, "failed": 0}
    for mart, batch, suite in validations:
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=mart, data=batch, suite=suite))
        checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
            name=f"marts-{mart}", validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format={"result_format": "SUMMARY"}))
        result = checkpoint.run(batch_parameters={"dataframe": frames[mart]})
        for validation in result.run_results.values():
            for item in validation.results:
                config = item.expectation_config
                check_id = (config.meta or {}).get("check_id") or f"gx.{mart}.{config.type}"
                res = item.result or {}
                tested = int(res.get("element_count") or len(frames[mart]))
                failed = int(res.get("unexpected_count") or (0 if item.success else 1))
                status = "pass" if item.success else "fail"
                record_check_result(
                    con, run_id, check_id, "gx", failed, tested, status=status,
                    drilldown_sql=drilldown_sql(mart, config), detail=f"{config.type} on marts.{mart}",
                    execution_ms=None)
                summary["checks"] += 1
                summary["failed"] += not item.success
    site = gx_root / "gx" / "uncommitted" / "data_docs" / "local_site"
    if site.is_dir():
        shutil.copytree(site, docs_out, dirs_exist_ok=True)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary
