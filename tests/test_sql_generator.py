"""The random query generator (tests/sql_corpus/generate.py) with a fixed seed: its queries run
on the runner and on DuckDB, and no answer may be silently wrong unless
tests/sql_corpus/generator_known.toml lists it (each listed one is also a minimized case of
cases/regressions.sql). A listed query that is no longer wrong fails too, so the list shrinks
with every fix (`SQL_CORPUS_UPDATE=1` rewrites it). The longer run is the CLI:
`python tests/sql_corpus/generate.py --seed S --count N --report out.json`."""

from __future__ import annotations

import os

import pytest
from sql_corpus import corpus, generate

SEED = 20240229
COUNT = 100
UPDATE = os.environ.get("SQL_CORPUS_UPDATE") == "1"


@pytest.fixture(scope="module")
def generated() -> generate.Run:
    if not corpus.RUNNER.exists():
        pytest.fail(f"no runner binary at {corpus.RUNNER}: build it first (`cargo build`)")
    run = generate.run(SEED, COUNT)
    if UPDATE:
        wrong = {q: r for q, r in run.results.items() if r.verdict.status in corpus.WRONG_STATUSES}
        generate.write_known(wrong, seed=SEED, count=COUNT)
    return run


def test_generator_is_deterministic(tmp_path_factory: pytest.TempPathFactory) -> None:
    from sql_corpus.tables import build

    tables = tmp_path_factory.mktemp("gen_tables")
    build(tables)
    con = corpus.duckdb_connection(tables)
    a, _ = generate.generate_cases(SEED, 30, con)
    b, _ = generate.generate_cases(SEED, 30, con)
    assert [c.sql for c in a] == [c.sql for c in b]
    assert len(a) == 30


def test_generated_queries_are_right_or_refused(generated: generate.Run) -> None:
    assert len(generated.results) == COUNT
    known = generate.read_known()
    wrong = {q: r for q, r in generated.results.items() if r.verdict.status in corpus.WRONG_STATUSES}
    broken = [q for q, r in generated.results.items() if r.verdict.status == "broken_case"]
    assert not broken, f"the generator kept queries DuckDB rejects: {broken}"
    new = {q: r for q, r in wrong.items() if known.get(q, {}).get("status") != r.verdict.status}
    assert not new, "silently wrong answers not in generator_known.toml:\n" + "\n".join(
        f"{q}: {r.verdict.status}: {corpus._one_line(r.verdict.detail, 300)}\n  {r.case.sql}" for q, r in new.items()
    )
    fixed = sorted(
        q
        for q, v in known.items()
        if v.get("status") in corpus.WRONG_STATUSES
        and q in generated.results
        and generated.results[q].verdict.status not in corpus.WRONG_STATUSES
    )
    assert not fixed, f"listed as wrong in generator_known.toml but no longer wrong (update the file): {fixed}"
    counts: dict[str, int] = {}
    for r in generated.results.values():
        counts[r.verdict.status] = counts.get(r.verdict.status, 0) + 1
    if wrong:
        pytest.xfail(
            f"{len(wrong)} SILENTLY WRONG ANSWERS (known) of {COUNT} generated queries "
            f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}): {', '.join(sorted(wrong))}"
        )
