"""Hospital-scale pipeline benchmark, measured against DuckDB's own CSV load.

One command: for each size (millions of medication orders) it generates the hospital
profile (~50 orders per patient), then runs, each stage in its own child process so
that its wall time and peak RSS are its own:

  transcode   GB18030 files -> UTF-8 copies (DuckDB cannot read GB18030; yardstick only)
  duckdb_text plain ``read_csv(all_varchar=true)`` of every file into a table
  duckdb_typed plain ``read_csv`` (auto-detected types, ignore_errors) into a table
  ingest      the pipeline's ingest + contract validation of the delivery (load_delivery)
  build_rest  ``idds run --force``: dbt build, validation, analysis, reports, publish
              (split per stage from dq.dq_run_stage: build, validate, verdict, analyse,
              report, publish; each with the process's peak RSS so far)
  rerun       ``idds run`` again with no new data (must be a no-op)
  one_day     a one-day delivery (about 1/1800 of the bulk orders, measurements and
              diagnoses, new record keys) dropped into the landing folder, then ``idds run``:
              the incremental cost after a full load (also split per stage)

and prints one table per size: wall time, peak RSS, rows per second, and the ratios of
ingest and of the whole run (ingest + build_rest) to the DuckDB loads. Results go to
benchmarks/results.json and into the results section of benchmarks/README.md.

    /work/main/.venv/bin/python benchmarks/run_benchmarks.py [--sizes 1,3,10]
        [--ingest-only 10] [--work /tmp/idds-bench] [--keep] [--no-profile]

``--ingest-only`` lists sizes for which the build/rerun stages are skipped (time budget).
The warehouse memory limit (idds.warehouse.memory_limit(): IDDS_MEMORY_LIMIT, default
2500MB) applies to the DuckDB yardstick loads too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from idds.warehouse import memory_limit  # noqa: E402

PY = sys.executable
KEY = "benchmark-key-not-for-production"
PATIENTS_PER_MILLION = 20_000  # the hospital profile writes ~50 orders per patient
MARK_BEGIN = "<!-- results:begin -->"
MARK_END = "<!-- results:end -->"

CHILD_GENERATE = """
import sys
from pathlib import Path
from synth.deliveries import generate
generate(Path(sys.argv[1]), seed=11, profile="hospital", patients=int(sys.argv[2]))
"""

CHILD_TRANSCODE = """
import gzip, json, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
out = {}
for p in sorted(src.iterdir()):
    if p.name == "manifest.json" or not p.is_file():
        continue
    opener = gzip.open if p.name.lower().endswith(".gz") else open
    with opener(p, "rb") as fh:
        data = fh.read()
    try:
        data.decode("utf-8")
        out[p.name] = str(p)  # DuckDB reads UTF-8 (with BOM) and gzip itself
    except UnicodeDecodeError:
        target = dst / (p.name[:-3] if p.name.lower().endswith(".gz") else p.name)
        target.write_text(data.decode("gb18030"), encoding="utf-8")
        out[p.name] = str(target)
print(json.dumps(out))
"""

CHILD_DUCKDB = """
import json, os, sys, duckdb
from idds.warehouse import bound_memory
files, typed, db = json.loads(sys.argv[1]), sys.argv[2] == "typed", sys.argv[3]
con = duckdb.connect(db)
bound_memory(con)  # the warehouse's own memory_limit and insertion-order setting
rows = 0
for i, path in enumerate(files.values()):
    opts = "ignore_errors=true" if typed else "all_varchar=true"
    con.execute(f"create table t{i} as select * from read_csv('{path}', {opts})")
    rows += con.execute(f"select count(*) from t{i}").fetchone()[0]
print(json.dumps({"rows": rows}))
"""

CHILD_INGEST = """
import json, sys
from idds.dq import ensure_dq_schema
from idds.ingest.files import discover
from idds.ingest.load import ensure_raw_tables, load_delivery
from idds.mapping import load_mapping
from idds.pseudonym import load_key
from idds.settings import Settings
from idds.warehouse import connect
settings = Settings()
mapping = load_mapping()
out = {"rows_read": 0, "rows_loaded": 0, "rows_quarantined": 0, "rows_duplicate": 0, "orders": 0}
with connect(settings.warehouse, load_key(settings)) as con:
    ensure_dq_schema(con)
    ensure_raw_tables(con, mapping)
    for d in discover(settings.landing, mapping):
        for fc in load_delivery(con, "bench-ingest", d, mapping, settings.work / "ingest"):
            for k in ("rows_read", "rows_loaded", "rows_quarantined", "rows_duplicate"):
                out[k] += getattr(fc, k)
            if fc.file_stem == "medication_orders":
                out["orders"] += fc.rows_read
print(json.dumps(out))
"""


CHILD_ONE_DAY = """
import csv, gzip, io, sys
from pathlib import Path
from expectations.contracts import key_column
from idds.mapping import fold, load_mapping
src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True)
mapping = load_mapping()
# one day of a five-year extract: every 1800th record of the three big files, new keys
for path in sorted(src.iterdir()):
    stem = mapping.file_for(path.name)
    if stem not in ("medication_orders", "measurements", "diagnoses"):
        continue
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    data = raw.read(); raw.close()
    for enc in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(enc); break
        except UnicodeDecodeError:
            continue
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    aliases = mapping.header_map(stem)
    k = next(i for i, h in enumerate(header) if aliases.get(fold(h)) == key_column(stem))
    with open(out / (stem + ".csv"), "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\\n")
        w.writerow(header)
        for i, r in enumerate(body[::1800]):
            r[k] = f"NEW{i:08d}-{r[k]}"
            w.writerow(r)
"""


def stage_split(warehouse: Path) -> dict:
    """Per stage of the latest finished run: wall seconds and peak RSS so far (dq_run_stage)."""
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            """
            select stage, epoch(lead(entered_at) over (order by entered_at) - entered_at),
                   lead(peak_rss_mb) over (order by entered_at)
            from dq.dq_run_stage
            where run_id = (select run_id from dq.dq_run where status in ('succeeded', 'blocked')
                            order by started_at desc limit 1)
            order by entered_at
            """).fetchall()
    finally:
        con.close()
    return {name: {"wall_s": round(wall, 2), "peak_rss_mb_so_far": round(peak)}
            for name, wall, peak in rows if wall is not None}


def dbt_top(base: Path, n: int = 8) -> dict:
    """The slowest dbt nodes of the last build (run_results.json), and dbt's own elapsed."""
    path = base / "work" / "dbt-target" / "run_results.json"
    if not path.exists():
        return {}
    results = json.loads(path.read_text(encoding="utf-8"))
    nodes = sorted(((r["execution_time"], r["unique_id"].split(".")[0] + " " + r["unique_id"].split(".")[2])
                    for r in results["results"]), reverse=True)
    return {"elapsed_s": round(results.get("elapsed_time") or 0, 2),
            "slowest": [[name, round(t, 2)] for t, name in nodes[:n]]}


def _sql_of(frame: str) -> str:
    """'load_file (idds/ingest/load.py:307)' -> the function and the statement's first SQL words."""
    m = re.match(r"(.*) \((.*):(\d+)\)$", frame)
    if not m:
        return frame
    func, file, line = m.group(1), Path(m.group(2)), int(m.group(3))
    try:
        lines = (file if file.is_absolute() else ROOT / file).read_text(encoding="utf-8").splitlines()
    except OSError:
        return frame
    text = " ".join(x.strip() for x in lines[line - 1:line + 4])
    sql = re.search(r"\b(create (?:or replace )?(?:temp )?table \w+|insert into [\w.{}()_]+|delete from \w+|"
                    r"select [^\"]{0,40})", text, re.I)
    what = sql.group(1) if sql else lines[line - 1].strip()[:60]
    return f"{func} ({file.name}:{line}) {what}"


def profile_ingest(base: Path, env: dict, rate: int = 20) -> list | None:
    """py-spy over a second ingest of the same delivery (into a scratch warehouse): samples
    of the main thread, idle included (DuckDB runs with the GIL released), attributed to
    the innermost frame in idds/ingest/; seconds = samples / rate."""
    pyspy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(pyspy).exists():
        return None
    from collections import Counter

    raw = base / "ingest.pyspy.txt"
    scratch = dict(env, IDDS_WAREHOUSE=str(base / "profile.duckdb"), IDDS_WORK=str(base / "profile-work"))
    subprocess.run([pyspy, "record", "--idle", "--rate", str(rate), "--format", "raw", "-o", str(raw), "--",
                    PY, "-c", CHILD_INGEST], cwd=ROOT, env=scratch, capture_output=True, check=False)
    if not raw.exists():
        return None
    spent: Counter = Counter()
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        ours = [f for f in stack.split(";") if "idds/ingest/" in f]
        spent[_sql_of(ours[-1]) if ours else "(outside idds/ingest)"] += int(count)
    return [[what, round(n / rate, 1)] for what, n in spent.most_common(12)]


def stage(args: list[str], env: dict | None = None) -> dict:
    """A child wrapped so that its own peak RSS is reported (os.wait4 on the child pid)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # read pipes fully before reaping, then wait4 for the child's own rusage
    stdout = proc.stdout.read()
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    result = {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024), "rc": proc.returncode,
              "out": lines[-1] if lines else ""}
    if proc.returncode != 0:
        result["stderr_tail"] = "\n".join(stderr.splitlines()[-8:])
    return result


def machine() -> dict:
    cpu = "unknown"
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    ram_gb = None
    try:
        m = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        ram_gb = round(int(m.group(1)) / 1024 / 1024, 1) if m else None
    except OSError:
        pass
    import duckdb

    return {"cores": os.cpu_count(), "ram_gb": ram_gb, "cpu": cpu, "python": platform.python_version(),
            "duckdb": duckdb.__version__, "memory_limit": memory_limit()}


def bench_size(millions: float, work: Path, full: bool, keep: bool, profile: bool = False) -> dict:
    base = work / f"orders-{millions:g}M"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    env = dict(os.environ, IDDS_LANDING=str(base / "landing"), IDDS_WAREHOUSE=str(base / "warehouse.duckdb"),
               IDDS_PUBLISH=str(base / "analyst.duckdb"), IDDS_REPORTS=str(base / "reports"),
               IDDS_WORK=str(base / "work"), IDDS_PSEUDONYM_KEY=KEY, PYTHONPATH=str(ROOT),
               PREFECT_LOGGING_LEVEL="WARNING")
    res: dict = {"size_millions": millions, "stages": {}}
    st = res["stages"]
    say = lambda msg: print(f"[{millions:g}M] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    say("generating the hospital profile")
    st["generate"] = stage([PY, "-c", CHILD_GENERATE, str(base), str(int(millions * PATIENTS_PER_MILLION))], env)
    delivery = next(p for p in (base / "landing").iterdir() if p.is_dir())
    say("transcoding GB18030 files for the DuckDB yardstick")
    st["transcode"] = stage([PY, "-c", CHILD_TRANSCODE, str(delivery), str(base / "utf8")], env)
    files = st["transcode"].pop("out")
    st["transcode"]["files_transcoded"] = sum(str(base / "utf8") in v for v in json.loads(files).values())
    for kind in ("text", "typed"):
        say(f"DuckDB plain read_csv ({kind})")
        db = base / f"plain-{kind}.duckdb"
        st[f"duckdb_{kind}"] = stage([PY, "-c", CHILD_DUCKDB, files, kind, str(db)], env)
        db.unlink(missing_ok=True)
    say("pipeline ingest + contract validation")
    st["ingest"] = stage([PY, "-c", CHILD_INGEST], env)
    counts = json.loads(st["ingest"]["out"]) if st["ingest"]["rc"] == 0 else {}
    res["counts"] = counts
    if full:
        say("idds run --force (build, validate, analyse, report, publish)")
        st["build_rest"] = stage([PY, "-m", "idds.cli", "run", "--force"], env)
        st["build_rest"]["stages"] = stage_split(base / "warehouse.duckdb")
        res["dbt_full_build"] = dbt_top(base)
        say("idds run (no new data)")
        st["rerun"] = stage([PY, "-m", "idds.cli", "run"], env)
        say("a one-day delivery, then idds run (incremental)")
        made = stage([PY, "-c", CHILD_ONE_DAY, str(delivery), str(base / "landing" / "9999-one-day")], env)
        if made["rc"] != 0:
            st["one_day"] = made
        else:
            st["one_day"] = stage([PY, "-m", "idds.cli", "run"], env)
            st["one_day"]["stages"] = stage_split(base / "warehouse.duckdb")
            res["dbt_one_day_build"] = dbt_top(base)
    text, typed, ingest = (st["duckdb_text"]["wall_s"], st["duckdb_typed"]["wall_s"], st["ingest"]["wall_s"])
    ratios = {"ingest_vs_text": ingest / text, "ingest_vs_typed": ingest / typed}
    if full:
        whole = ingest + st["build_rest"]["wall_s"]
        res["whole_run_s"] = round(whole, 2)
        ratios |= {"whole_vs_text": whole / text, "whole_vs_typed": whole / typed,
                   "one_day_vs_whole": st["one_day"]["wall_s"] / whole}
    res["ratios"] = {k: round(v, 2) for k, v in ratios.items()}
    rows = counts.get("rows_read") or 0
    for name, s in st.items():
        if name not in ("generate", "transcode", "rerun", "one_day") and rows:
            s["rows_per_s"] = round(rows / s["wall_s"])
    if profile:
        say("profiling a second ingest with py-spy")
        res["ingest_profile"] = profile_ingest(base, env)
    if not keep:
        shutil.rmtree(base, ignore_errors=True)
    return res


def markdown(results: list[dict], mach: dict) -> str:
    lines = [
        f"Machine: {mach['cores']} cores, {mach['ram_gb']} GB RAM, {mach['cpu']}; Python {mach['python']}, "
        f"DuckDB {mach['duckdb']}; warehouse memory_limit {mach['memory_limit']}. "
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "| orders (M) | records (all files) | stage | wall s | peak RSS MB | rows/s |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for r in results:
        rows = r.get("counts", {}).get("rows_read", "")
        for name, s in r["stages"].items():
            flag = "" if s["rc"] == 0 else f" (exit {s['rc']})"
            lines.append(f"| {r['size_millions']:g} | {rows} | {name}{flag} | {s['wall_s']} | "
                         f"{s['peak_rss_mb']} | {s.get('rows_per_s', '')} |")
            for part, p in s.get("stages", {}).items():
                lines.append(f"| | | &nbsp;&nbsp;{name}: {part} | {p['wall_s']} | "
                             f"≤ {p['peak_rss_mb_so_far']} (so far) | |")
    lines += ["", "| orders (M) | ingest+contract / DuckDB text | / typed | whole run / text | / typed | "
              "whole run s | no-new-data rerun s | one-day delivery s (/ whole run) |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        q = r["ratios"]
        rerun = r["stages"].get("rerun", {}).get("wall_s", "not run")
        one_day = r["stages"].get("one_day", {}).get("wall_s")
        one_day = f"{one_day} ({q['one_day_vs_whole']})" if one_day is not None else "not run"
        lines.append(f"| {r['size_millions']:g} | {q['ingest_vs_text']} | {q['ingest_vs_typed']} | "
                     f"{q.get('whole_vs_text', 'not run')} | {q.get('whole_vs_typed', 'not run')} | "
                     f"{r.get('whole_run_s', 'not run')} | {rerun} | {one_day} |")
    for r in results:
        for label, key in (("full build", "dbt_full_build"), ("one-day incremental build", "dbt_one_day_build")):
            top = r.get(key)
            if top:
                lines += ["", f"dbt {label} at {r['size_millions']:g} M orders: {top['elapsed_s']} s elapsed "
                          "(2 threads); slowest nodes (s): "
                          + ", ".join(f"{name} {t}" for name, t in top["slowest"])]
        if r.get("ingest_profile"):
            lines += ["", f"Where the ingest of {r['size_millions']:g} M orders spends its time (py-spy, "
                      "a second ingest of the same delivery, main thread incl. time inside DuckDB):", "",
                      "| statement (innermost frame in idds/ingest/) | s |", "|---|---:|"]
            lines += [f"| {what} | {sec} |" for what, sec in r["ingest_profile"]]
    return "\n".join(lines)


def write_readme(table: str) -> None:
    readme = ROOT / "benchmarks" / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    block = f"{MARK_BEGIN}\n{table}\n{MARK_END}"
    if MARK_BEGIN in text and MARK_END in text:
        text = text[:text.index(MARK_BEGIN)] + block + text[text.index(MARK_END) + len(MARK_END):]
    else:
        text = text.rstrip() + "\n\n## Latest results\n\n" + block + "\n"
    readme.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,3,10", help="millions of medication orders, comma-separated")
    parser.add_argument("--ingest-only", default="", help="sizes for which build and rerun are skipped")
    parser.add_argument("--work", default="/tmp/idds-bench", help="scratch folder (deleted per size)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and warehouses")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results.json"))
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the py-spy profile of a second ingest at the largest size")
    args = parser.parse_args(argv)
    sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    ingest_only = {float(s) for s in args.ingest_only.split(",") if s.strip()}
    mach = machine()
    results = []
    for size in sizes:
        profile = not args.no_profile and size == max(sizes)
        results.append(bench_size(size, Path(args.work), size not in ingest_only, args.keep, profile))
        Path(args.json).write_text(json.dumps({"machine": mach, "results": results}, indent=2), encoding="utf-8")
    table = markdown(results, mach)
    print(table)
    if not args.no_readme:
        write_readme(table)
    return 0 if all(s["rc"] == 0 for r in results for s in r["stages"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
