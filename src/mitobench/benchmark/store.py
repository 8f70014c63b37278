"""The results store: one SQLite file per results directory that every job appends to.

SQLite in WAL mode with a busy timeout lets several processes (Ray workers, two shells) write
at once; each job's rows go in one transaction, so a crash never leaves half a job behind.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from mitobench.data.dataset import FACT_PREFIXES
from mitobench.errors import ConfigError, StorageError
from mitobench.metrics.binary import REGISTRY
from mitobench.paths import require_folder
from mitobench.runs.rundir import FoldDir, set_key

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job TEXT PRIMARY KEY, model TEXT, mode TEXT, preset TEXT, fold INTEGER, status TEXT,
    error TEXT, spec TEXT, environment TEXT, started REAL, finished REAL, seconds REAL,
    folds_sha256 TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    job TEXT, dataset TEXT, variant TEXT, metric TEXT, value REAL,
    PRIMARY KEY (job, dataset, variant, metric)
);
CREATE TABLE IF NOT EXISTS predictions (
    job TEXT, dataset TEXT, sample TEXT, label INTEGER, prob REAL, prob_tta REAL, grp TEXT,
    PRIMARY KEY (job, dataset, sample)
);
CREATE TABLE IF NOT EXISTS figures (
    dataset TEXT, sample TEXT, facts TEXT,
    PRIMARY KEY (dataset, sample)
);
"""

STORE_FILE = "results.sqlite"
_TRAIN_DATA = "COALESCE(json_extract(j.spec, '$.train_data'), 'amibr/train') AS train_data"
"""Which training data a job used (jobs recorded before it was a setting trained on AMi-Br)."""


WAL_WAIT_S = 60.0


def _use_wal(con: sqlite3.Connection) -> None:
    """Switch the store to WAL (kept in the file, so once is enough). Switching needs the file to
    itself and SQLite answers "locked" at once, without its busy wait, while another process opens
    a new store at the same moment: wait and retry as the busy timeout would."""
    deadline = time.monotonic() + WAL_WAIT_S
    while True:
        try:
            if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class ResultsStore:
    """Append-only store of jobs, their metrics and their per-sample probabilities."""

    def __init__(self, results_dir: Path) -> None:
        require_folder(results_dir, "the results folder", "pass a folder: --results DIR")
        results_dir.mkdir(parents=True, exist_ok=True)
        self.path = results_dir / STORE_FILE
        with self._connect() as con:
            con.executescript(SCHEMA)
            columns = {row[1] for row in con.execute("PRAGMA table_info(jobs)")}
            if "folds_sha256" not in columns:  # a store made before folds were recorded
                con.execute("ALTER TABLE jobs ADD COLUMN folds_sha256 TEXT")
            if "grp" not in {row[1] for row in con.execute("PRAGMA table_info(predictions)")}:
                con.execute("ALTER TABLE predictions ADD COLUMN grp TEXT")  # before slides were kept

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(self.path, timeout=60.0)
        except sqlite3.Error as exc:
            raise self._unreadable(exc) from None
        try:
            con.execute("PRAGMA busy_timeout=60000")
            _use_wal(con)
            with con:  # one transaction
                yield con
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc).replace(
                "read-only", "readonly"
            ):
                raise StorageError(  # an intact store on a read-only disk: nothing to rebuild
                    f"{self.path}: cannot be written here ({exc})",
                    "run where the results folder is writable, or copy the folder to a writable place",
                ) from None
            raise self._unreadable(exc) from None
        finally:
            con.close()

    def _unreadable(self, exc: Exception) -> ConfigError:
        folder = self.path.parent
        return ConfigError(
            f"{self.path}: not a readable results store ({exc})",
            f"move it aside (mv {self.path} {self.path}.broken) and rerun `mitobench run CONFIG --results "
            f"{folder}`: it records the finished folds again from {folder / 'runs'} without retraining",
        )

    def status(self, job: str) -> str | None:
        with self._connect() as con:
            row = con.execute("SELECT status FROM jobs WHERE job = ?", (job,)).fetchone()
        return row[0] if row else None

    def start(self, job: str, info: dict[str, Any]) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO jobs (job, model, mode, preset, fold, status, error, spec,"
                " environment, started) VALUES (?, ?, ?, ?, ?, 'running', NULL, ?, ?, ?)",
                (
                    job,
                    info["model"],
                    info["mode"],
                    info["preset"],
                    info["fold"],
                    json.dumps(info["spec"]),
                    json.dumps(info["environment"]),
                    time.time(),
                ),
            )

    def fail(self, job: str, error: str) -> None:
        with self._connect() as con:
            con.execute(
                "UPDATE jobs SET status = 'failed', error = ?, finished = ? WHERE job = ?",
                (error, time.time(), job),
            )

    def finish(self, job: str, fold: FoldDir, seconds: float) -> None:
        """Record a finished fold: its metrics and every prediction file, in one transaction."""
        done = fold.read_done()
        scores = fold.scores()  # the fold's metrics, as the run summary has them
        rows_m = [
            (job, dataset, variant, metric, float(value))
            for dataset, variants in scores.items()
            for variant, values in variants.items()
            for metric, value in values.items()
        ]
        rows_p, rows_f = [], []
        for csv in fold.prediction_files():
            dataset = set_key(csv)
            frame = pd.read_csv(csv, dtype={"group": str})
            facts = [c for c in frame.columns if c.startswith(FACT_PREFIXES)]
            if facts:
                rows_f += [
                    (
                        dataset,
                        str(i),
                        json.dumps({c: v for c, v in zip(facts, row, strict=True) if pd.notna(v)}),
                    )
                    for i, row in zip(frame["id"], frame[facts].itertuples(index=False), strict=True)
                ]
            tta = frame["prob_tta"] if "prob_tta" in frame else [None] * len(frame)
            grp = frame["group"].astype(str) if "group" in frame else [None] * len(frame)
            rows_p += [
                (job, dataset, str(i), int(lab), float(p), None if t is None else float(t), g)
                for i, lab, p, t, g in zip(frame["id"], frame["label"], frame["prob"], tta, grp, strict=True)
            ]
        with self._connect() as con:
            con.execute("DELETE FROM metrics WHERE job = ?", (job,))
            con.execute("DELETE FROM predictions WHERE job = ?", (job,))
            con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", rows_m)
            con.executemany(
                "INSERT INTO predictions (job, dataset, sample, label, prob, prob_tta, grp)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows_p,
            )
            con.executemany("INSERT OR REPLACE INTO figures VALUES (?, ?, ?)", rows_f)
            con.execute(
                "UPDATE jobs SET status = 'done', error = NULL, finished = ?, seconds = ?, folds_sha256 = ?"
                " WHERE job = ?",
                (time.time(), seconds, done.get("folds_sha256"), job),
            )

    def jobs(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM jobs ORDER BY model, mode, fold")

    def fold_fingerprints(self) -> pd.DataFrame:
        """(model, mode, preset, train_data, fold, folds_sha256) of every finished job."""
        return self._done("j.folds_sha256 FROM jobs j")

    def job_specs(self) -> pd.DataFrame:
        """(run keys, fold, spec JSON, folds_sha256) of every finished job: what each followed."""
        return self._done("j.spec, j.folds_sha256 FROM jobs j")

    def machines(self) -> dict[str, int]:
        """How many finished jobs ran on each machine (its label: processor or GPU, bf16, cores)."""
        env = self._done("j.environment FROM jobs j")["environment"]
        labels = [json.loads(e or "{}").get("machine", "an unrecorded machine") for e in env]
        return dict(pd.Series(labels, dtype=object).value_counts()) if labels else {}

    def metrics(self) -> pd.DataFrame:
        """Every finished job's metrics per dataset and variant, as each fold scored them. A metric
        registered after a job ran is scored here from the stored predictions (not kept)."""
        stored = self._done("m.dataset, m.variant, m.metric, m.value FROM metrics m JOIN jobs j USING (job)")
        have = set(stored["metric"])
        missing = [name for name in REGISTRY if name not in have]
        if not missing or stored.empty:
            return stored
        return pd.concat([stored, self._score_later(stored, missing)], ignore_index=True)

    def _score_later(self, stored: pd.DataFrame, names: list[str]) -> pd.DataFrame:
        keys = ["model", "mode", "preset", "train_data", "fold", "dataset"]
        thresholds = stored[stored["metric"] == "threshold"].set_index([*keys, "variant"])["value"]
        rows = []
        for key, part in self.predictions().groupby(keys):
            labels = part["label"].to_numpy().astype(int)
            for variant, column in (("fold", "prob"), ("tta", "prob_tta")):
                where = tuple([*key, variant])
                if where not in thresholds.index or part[column].isna().any():
                    continue
                probs = part[column].to_numpy(dtype=float)
                calls = (probs >= thresholds[where]).astype(int)
                rows += [
                    {**dict(zip(keys, key, strict=True)), "variant": variant, "metric": n,
                     "value": REGISTRY[n].fn(labels, probs, calls)}
                    for n in names
                ]  # fmt: skip
        return pd.DataFrame(rows, columns=stored.columns)

    def predictions(self) -> pd.DataFrame:
        return self._done(
            "p.dataset, p.sample, p.label, p.prob, p.prob_tta, p.grp AS grp"
            " FROM predictions p JOIN jobs j USING (job)",
            order="p.rowid",  # the order the figures were scored in (bootstrap resamples follow it)
        )

    def figure_facts(self, dataset: str) -> pd.DataFrame:
        """(sample, vote_*, subtype_*) of `dataset`'s figures as the prediction files carried them
        (empty when they carried none: a set without votes, or a store from an older version)."""
        with self._connect() as con:
            rows = con.execute("SELECT sample, facts FROM figures WHERE dataset = ?", (dataset,)).fetchall()
        return pd.DataFrame([{"sample": sample, **json.loads(facts)} for sample, facts in rows])

    def _done(self, columns_from: str, order: str = "") -> pd.DataFrame:
        """Rows of finished jobs, each with its run's keys and fold first."""
        run = f"j.model, j.mode, j.preset, {_TRAIN_DATA}, j.fold"
        return self._frame(
            f"SELECT {run}, {columns_from} WHERE j.status = 'done'" + (f" ORDER BY {order}" if order else "")
        )

    def _frame(self, sql: str) -> pd.DataFrame:
        with self._connect() as con:
            try:
                return pd.read_sql_query(sql, con)
            except pd.errors.DatabaseError as exc:  # pandas wraps sqlite's "no such column/table"
                raise ConfigError(
                    f"{self.path}: written by another mitobench version, whose tables differ ({exc})",
                    "report it with the mitobench version that made it, or move it aside and rerun "
                    f"`mitobench run CONFIG --results {self.path.parent}` to record the finished folds again",
                ) from None

    def finished_jobs(self) -> int:
        """How many jobs finished (0: nothing to report)."""
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM jobs WHERE status = 'done'").fetchone()[0])
