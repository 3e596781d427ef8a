"""The ``idds`` command line (see docs: the analyst interface)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from idds.settings import ConfigError, Settings, private_dir, quiet_third_party_defaults

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SERVER_DID_NOT_START = "Timed out while attempting to connect to ephemeral Prefect API server"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idds", description="IDDS cancer-pain registry pipeline")
    sub = parser.add_subparsers(dest="command", required=True)

    def paths(p: argparse.ArgumentParser) -> None:
        p.add_argument("--landing", help="delivery folders (IDDS_LANDING, default data/landing)")
        p.add_argument("--warehouse", help="working DuckDB file (IDDS_WAREHOUSE, default data/warehouse.duckdb)")
        p.add_argument("--publish", help="analyst DuckDB file (IDDS_PUBLISH, default data/analyst.duckdb)")
        p.add_argument("--reports", help="reports folder (IDDS_REPORTS, default data/reports)")

    paths(sub.add_parser("demo", help="synthetic deliveries -> pipeline -> reports"))
    run = sub.add_parser("run", help="one pipeline run over the landing folder")
    paths(run)
    run.add_argument("--wait", action="store_true", help="wait for a run in progress instead of exiting 1")
    run.add_argument("--force", action="store_true",
                     help="build, validate and publish even when no new delivery arrived")
    synth = sub.add_parser("synth", help="write synthetic deliveries and their truth")
    synth.add_argument("--out", required=True, help="writes OUT/landing/<delivery_id>/ and OUT/truth/")
    synth.add_argument("--seed", type=int, default=11)
    synth.add_argument("--profile", choices=["paper", "hospital"], default="paper")
    synth.add_argument("--patients", type=int)
    synth.add_argument("--deliveries", type=int, default=1)
    synth.add_argument("--dirty", action="store_true")
    synth.add_argument("--quirks", action="store_true",
                       help="paper profile: also ordinary clinical recording errors on cohort patients, one "
                            "in-cohort violation per reachable blocking check, logged in OUT/truth/quirks.csv")
    serve = sub.add_parser("serve", help="serve the pipeline on a schedule (Prefect deployment)")
    serve.add_argument("--cron", default="0 2 * * *",
                       help="when to run, a cron expression in Asia/Shanghai time (default: nightly at 02:00)")
    paths(serve)
    status = sub.add_parser("status", help="recent runs, what they loaded, verdicts, report paths")
    status.add_argument("--warehouse", help="working DuckDB file (IDDS_WAREHOUSE, default data/warehouse.duckdb)")
    status.add_argument("--publish", help="analyst DuckDB file (IDDS_PUBLISH, default data/analyst.duckdb)")
    status.add_argument("--limit", type=int, default=10, help="how many runs (default 10)")
    quarantine = sub.add_parser("quarantine", help="the steward's local view of quarantined rows")
    quarantine.add_argument("--warehouse", help="working DuckDB file (IDDS_WAREHOUSE, default data/warehouse.duckdb)")
    quarantine.add_argument("--run", help="run id (default: the latest run that quarantined rows)")
    quarantine.add_argument("--unmasked", action="store_true",
                            help="show identifiers (terminal only, from the protected warehouse)")
    quarantine.add_argument("--limit", type=int, default=50)
    export = sub.add_parser("export", help="aggregate outcome marts as CSV with small cells suppressed")
    export.add_argument("--aggregate", required=True, help="folder for the CSVs and their README.txt")
    export.add_argument("--publish", help="analyst DuckDB file (IDDS_PUBLISH, default data/analyst.duckdb)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings().with_overrides(
        landing=getattr(args, "landing", None),
        warehouse=getattr(args, "warehouse", None),
        publish=getattr(args, "publish", None),
        reports=getattr(args, "reports", None),
    )


def _run_pipeline(settings: Settings, wait: bool = False, force: bool = False) -> int:
    """One run under the run lock: a second run exits 1 with one sentence (or waits)."""
    from idds.pseudonym import load_key
    from idds.runlock import RunInProgress, run_lock

    load_key(settings)  # fail early, with one sentence, when no key is configured
    try:
        with run_lock(settings.warehouse, wait=wait,
                      on_wait=lambda msg: print(f"waiting: {msg.split(';')[0]} ...", file=sys.stderr)):
            return _run_locked(settings, force)
    except RunInProgress as exc:
        print(f"error: {exc}.", file=sys.stderr)
        return EXIT_FAILED


def _run_locked(settings: Settings, force: bool) -> int:
    from idds import __version__
    from idds.status import is_transient, new_run_id, plan_run

    # decided before Prefect starts: a run with nothing to do costs about a second
    run_id = new_run_id()
    for delay in (2, 5, 10, None):  # the warehouse may be open elsewhere for a moment
        try:
            plan = plan_run(settings, force=force, noop_run_id=run_id, code_version=__version__)
            break
        except Exception as exc:
            if not is_transient(exc):
                raise
            if delay is None:
                print(f"error: {str(exc).splitlines()[0]}; try again later.", file=sys.stderr)
                return EXIT_FAILED
            time.sleep(delay)
    if plan.noop:
        print(f"run {run_id}: {plan.reason}; nothing to do (no data work, the analyst file is unchanged).")
        return EXIT_OK
    if plan.resume:
        print(f"resuming run {plan.resume}, which stopped at stage {plan.resume_stage or '?'}, "
              f"from {plan.restart}", file=sys.stderr)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # the work folder holds the decoded copies of the deliveries while they load (and
    # those a killed run left): owner-only, like the warehouse
    private_dir(settings.work)
    from flows.registry import registry_pipeline

    for attempt in (1, 2):
        try:
            result = registry_pipeline(
                landing=str(settings.landing), warehouse=str(settings.warehouse),
                publish_path=str(settings.publish), reports=str(settings.reports),
                run_id=run_id, force=force,
            )
            break
        except Exception as exc:  # the flow already logged the details
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if SERVER_DID_NOT_START in first:
                _stop_temporary_servers()  # the process that did not answer in time must not linger
                if attempt == 1:
                    print("the temporary Prefect server did not start in time; trying once more ...",
                          file=sys.stderr)
                    continue
                print(f"error: the temporary Prefect server did not start within "
                      f"{os.environ.get('PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS', '?')} s twice (a busy "
                      "machine?). Run again later, raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or "
                      "start a Prefect server and set PREFECT_API_URL (README: Running on a schedule).",
                      file=sys.stderr)
                return EXIT_FAILED
            print(f"error: the run failed: {first}", file=sys.stderr)
            return EXIT_FAILED
    if result["status"] == "no_new_data":
        print(f"run {result['run_id']}: {result['reason']}; nothing to do.")
        return EXIT_OK
    allowed = result["verdict"] == "allowed"
    if allowed:
        print(f"study report: {result['study_report']}")
        print(f"analyst file: {result['analyst_file']}")
    # the last lines: the verdict in one sentence, the values set aside, the report
    print(f"run {result['run_id']}: verdict {'published' if allowed else 'blocked'}. {result.get('message') or ''}".rstrip())
    n = result.get("values_set_aside") or 0
    print(f"values set aside: {n}" + (" (listed in the report's Set aside section and marts.cohort_set_aside)"
                                      if n else ""))
    print(f"validation report: {result['report']}")
    return EXIT_OK if allowed else EXIT_FAILED


def _stop_temporary_servers() -> None:
    """Stop every temporary Prefect server this process started (one that did not answer in
    time is otherwise left running when a second start replaces it)."""
    from prefect.server.api.server import SubprocessASGIServer

    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()


def _synth(args: argparse.Namespace) -> int:
    from synth import generate

    if args.quirks and (args.dirty or args.profile != "paper"):
        print("error: --quirks applies to the paper profile without --dirty.", file=sys.stderr)
        return EXIT_USAGE
    summary = generate(
        Path(args.out), seed=args.seed, profile=args.profile, patients=args.patients,
        deliveries=args.deliveries, dirty=args.dirty, quirks=args.quirks,
        progress=lambda msg: print(msg, file=sys.stderr),
    )
    print(f"wrote synthetic deliveries to {Path(args.out) / 'landing'} and truth to {Path(args.out) / 'truth'}")
    return EXIT_OK if summary is not None else EXIT_FAILED


def _demo(args: argparse.Namespace) -> int:
    from idds.pseudonym import ensure_demo_key
    from synth import generate

    settings = _settings(args)
    ensure_demo_key(settings)
    landing = settings.landing
    if not landing.is_dir() or not any(landing.iterdir()):
        out = landing.parent
        print(f"writing the calibrated synthetic deliveries into {landing} ...", file=sys.stderr)
        generate(out, seed=11, profile="paper", deliveries=1,
                 progress=lambda msg: print(msg, file=sys.stderr))
    code = _run_pipeline(settings)
    if code == EXIT_OK:
        print(f"reports: {settings.reports / 'latest' / 'validation.html'}")
    return code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_third_party_defaults()
    try:
        if args.command == "run":
            return _run_pipeline(_settings(args), wait=args.wait, force=args.force)
        if args.command == "status":
            from idds.status import print_status

            settings = _settings(args)
            return print_status(settings.warehouse, settings.publish, args.limit)
        if args.command == "serve":
            from idds.serve import serve

            try:
                return serve(_settings(args), args.cron)
            except KeyboardInterrupt:
                return EXIT_OK
        if args.command == "demo":
            return _demo(args)
        if args.command == "synth":
            return _synth(args)
        if args.command == "quarantine":
            from idds.pseudonym import load_key
            from idds.report.quarantine import print_quarantine

            settings = _settings(args)
            return print_quarantine(settings.warehouse, load_key(settings), args.run, args.unmasked, args.limit)
        if args.command == "export":
            from idds.export import ExportError, export_aggregate

            try:
                summary = export_aggregate(_settings(args).publish, Path(args.aggregate))
            except ExportError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_FAILED
            print(f"wrote {len(summary['files'])} aggregate tables ({sum(summary['suppressed'].values())} "
                  f"cells suppressed) and README.txt to {summary['out_dir']}")
            return EXIT_OK
        print(f"idds {args.command}: not built yet.", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
