"""Reads a Delta table the way its users would, with readers independent of the runner: DuckDB's
`delta_scan` (the PyPI extension, which matches DuckDB 1.5.5 exactly), Python `deltalake`, Polars'
`scan_delta`, and pyarrow for Parquet footers. It runs in its own venv (`make` makes
`.venv/delta-readers`), as the tests' DuckDB is a newer release the extension does not load into.

    python delta_readers.py COMMAND JSON_ARGS   → prints JSON

Commands:
    counts {"uri", "by"}       rows per value of column `by`, from each reader
    values {"uri", "column"}   the distinct values of a column, nulls first, from each reader
    files {"uri"}              the table's version, schema, partition columns and current files
    history {"uri"}            each version's operation, adds and removes (paths decoded), read from the log
    footer {"path"}            a Parquet file's rows and per-column min, max and null count
S3 locations read moto's endpoint and credentials from the standard AWS variables. Where Polars
fails, its result is `{"error": message}`, for the test to judge.
"""

import json
import os
import sys
import urllib.parse
from pathlib import Path
from typing import Any


def storage_options() -> dict[str, str]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return {}
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    }


def duck(uri: str):  # type: ignore[no-untyped-def]
    import duckdb
    import duckdb_extension_delta
    import duckdb_extension_httpfs

    con = duckdb.connect()
    for package, name in ((duckdb_extension_delta, "delta"), (duckdb_extension_httpfs, "httpfs")):
        (path,) = Path(package.__file__).parent.rglob(f"{name}.duckdb_extension")
        con.execute(f"LOAD '{path}'")
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if uri.startswith("s3://") and endpoint:
        host = endpoint.split("://", 1)[1]
        con.execute(
            f"""CREATE SECRET moto (TYPE s3, KEY_ID 'testing', SECRET 'testing', REGION 'us-east-1',
                ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)"""
        )
    return con


def counts(uri: str, by: str) -> dict[str, dict[str, int]]:
    import deltalake
    import polars as pl

    con = duck(uri)
    rows = con.execute(f"SELECT CAST({by} AS VARCHAR), COUNT(*) FROM delta_scan('{uri}') GROUP BY 1").fetchall()
    table = deltalake.DeltaTable(uri, storage_options=storage_options()).to_pyarrow_table()
    dl: dict[str, int] = {}
    for v in table.column(by).to_pylist():
        dl[str(v)] = dl.get(str(v), 0) + 1
    try:
        frame = (
            pl.scan_delta(uri, storage_options=storage_options() or None)
            .group_by(pl.col(by).cast(pl.String))
            .agg(pl.len())
            .collect()
        )
        by_polars: Any = {str(k): n for k, n in frame.iter_rows()}
    except Exception as e:
        by_polars = {"error": str(e)}
    return {"duckdb": {str(k): n for k, n in rows}, "deltalake": dl, "polars": by_polars}


def values(uri: str, column: str) -> dict[str, list[Any]]:
    import deltalake
    import polars as pl

    con = duck(uri)
    query = f"SELECT DISTINCT {column} FROM delta_scan('{uri}') ORDER BY 1 NULLS FIRST"
    dd = [r[0] for r in con.execute(query).fetchall()]
    table = deltalake.DeltaTable(uri, storage_options=storage_options()).to_pyarrow_table()
    dl = sorted(set(table.column(column).to_pylist()), key=lambda v: (v is not None, v))
    try:
        pv: Any = (
            pl.scan_delta(uri, storage_options=storage_options() or None)
            .select(pl.col(column).unique().sort(nulls_last=False))
            .collect()
            .to_series()
            .to_list()
        )
    except Exception as e:
        pv = {"error": str(e)}
    return {"duckdb": dd, "deltalake": dl, "polars": pv}


def log_actions(uri: str) -> list[tuple[int, list[dict[str, Any]]]]:
    """Every commit file of the log, in order, as its actions (read as JSON, not by a library)."""
    out = []
    if uri.startswith("s3://"):
        import boto3

        bucket, _, prefix = uri[len("s3://") :].partition("/")
        s3 = boto3.client("s3")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix.rstrip('/')}/_delta_log/")
        keys = sorted(o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith(".json"))
        for key in keys:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            out.append((int(key.rsplit("/", 1)[1].split(".")[0]), [json.loads(line) for line in body.splitlines()]))
    else:
        for path in sorted((Path(uri) / "_delta_log").glob("*.json")):
            out.append((int(path.stem), [json.loads(line) for line in path.read_text().splitlines()]))
    return out


def decoded(action: dict[str, Any]) -> dict[str, Any]:
    """An add or remove with its path decoded, as the protocol says a reader must (a path is a URI)."""
    return action | {"path": urllib.parse.unquote(action["path"])}


def history(uri: str) -> list[dict[str, Any]]:
    out = []
    for version, actions in log_actions(uri):
        info = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        out.append(
            {
                "version": version,
                "operation": info.get("operation"),
                "parameters": info.get("operationParameters", {}),
                "info": info,
                "adds": [decoded(a["add"]) for a in actions if "add" in a],
                "removes": [decoded(a["remove"]) for a in actions if "remove" in a],
                "txns": [a["txn"] for a in actions if "txn" in a],
                "metadata": [a["metaData"] for a in actions if "metaData" in a],
                "protocol": [a["protocol"] for a in actions if "protocol" in a],
            }
        )
    return out


def files(uri: str) -> dict[str, Any]:
    import deltalake
    import pyarrow as pa

    table = deltalake.DeltaTable(uri, storage_options=storage_options())
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    return {
        "version": table.version(),
        "schema": json.loads(table.schema().to_json()),
        "partition_columns": table.metadata().partition_columns,
        "files": [{"path": a["path"], "size": a["size_bytes"], "rows": a.get("num_records")} for a in actions],
    }


def footer(path: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    cols: dict[str, dict[str, Any]] = {}
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        for c in range(group.num_columns):
            chunk = group.column(c)
            name = chunk.path_in_schema
            s = chunk.statistics
            entry = cols.setdefault(name, {"min": None, "max": None, "nulls": 0, "type": str(chunk.physical_type)})
            if s is None:
                entry["nulls"] = None
                continue
            if entry["nulls"] is not None and s.has_null_count:
                entry["nulls"] += s.null_count
            if s.has_min_max:
                lo, hi = s.min, s.max
                entry["min"] = lo if entry["min"] is None else min(entry["min"], lo)
                entry["max"] = hi if entry["max"] is None else max(entry["max"], hi)
    for entry in cols.values():
        for k in ("min", "max"):
            v = entry[k]
            entry[k] = v.isoformat() if hasattr(v, "isoformat") else v
    return {"rows": meta.num_rows, "columns": cols}


COMMANDS = {"counts": counts, "values": values, "files": files, "history": history, "footer": footer}

if __name__ == "__main__":
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    print(json.dumps(COMMANDS[sys.argv[1]](**args), default=str))
