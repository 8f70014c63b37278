"""`mitobench slide`: one slide, or a CSV of (slide, detections) pairs, classified and written;
a slide whose summary shows the same model and data is not redone."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mitobench.data.geometry import PAPER_PATCH, PatchGeometry
from mitobench.data.upstream import read_csv
from mitobench.errors import ConfigError, DataError, MitobenchError
from mitobench.inference.bundle import Engine, load_model, model_fingerprint
from mitobench.paths import TMP_NAME_EXTRA, require_short_enough
from mitobench.progress import NullProgress, Progress
from mitobench.slides.classify import classify_detections
from mitobench.slides.detections import read_detections
from mitobench.slides.outputs import summary, write_outputs
from mitobench.slides.reader import MPP_TOLERANCE, SlideReader

MPP_RANGE = (0.01, 50.0)
"""Plausible microns per pixel: from beyond any scanner's 100x to a thumbnail."""
MAX_SCALE = 64
"""A patch may cover at most 64x its side in level-0 pixels (resampled down); more is a wrong --mpp."""


@dataclass(frozen=True)
class SlideOptions:
    """How patches are cut and called."""

    mpp: float | None = None
    """Level-0 microns per pixel, for slides without resolution metadata."""
    patch_mpp: float | None = None
    """Microns per pixel of the training patches; None: the model's (recorded when trained)."""
    tolerance: float = MPP_TOLERANCE
    threshold: float | None = None
    """None: the model's own threshold (the mean of its folds')."""
    workers: int = 2
    overwrite: bool = False
    """Replace outputs in `--out` made from another slide, detections file or model."""
    skip_unsupported: bool = False
    """Leave out (and count) GeoJSON features that are not points or shapes, instead of refusing."""
    force_mpp: bool = False
    """Use `mpp` even where it contradicts the slide's own resolution metadata."""

    def for_model(self, patch: PatchGeometry) -> SlideOptions:
        """These options with `patch_mpp` resolved: --patch-mpp if given, else the model's own
        (recorded when it was trained), range-checked again."""
        return self if self.patch_mpp is not None else replace(self, patch_mpp=patch.mpp)

    def __post_init__(self) -> None:
        """Every number in range before any slide is opened (NaN and infinity refused)."""
        for name, value in (("--mpp", self.mpp), ("--patch-mpp", self.patch_mpp)):
            if value is not None and not (math.isfinite(value) and MPP_RANGE[0] <= value <= MPP_RANGE[1]):
                raise ConfigError(
                    f"{name} {value}: not a resolution in microns per pixel",
                    f"give {name} between {MPP_RANGE[0]} and {MPP_RANGE[1]} (0.25 is 40x)",
                )
        if not (math.isfinite(self.tolerance) and 0 <= self.tolerance < 1):
            raise ConfigError(
                f"--tolerance {self.tolerance}: not a relative difference",
                "give --tolerance from 0 to below 1",
            )
        if self.threshold is not None and not (math.isfinite(self.threshold) and 0 < self.threshold < 1):
            raise ConfigError(
                f"--threshold {self.threshold}: not a probability strictly between 0 and 1",
                "give --threshold between 0 and 1, or leave it out to use the model's",
            )
        patch_mpp = self.patch_mpp or PAPER_PATCH.mpp
        if self.mpp is not None and patch_mpp / self.mpp > MAX_SCALE:
            raise ConfigError(
                f"--mpp {self.mpp}: a {patch_mpp} µm/px patch would cover "
                f"{round(PAPER_PATCH.size * patch_mpp / self.mpp)} level-0 pixels a side",
                "check --mpp (level-0 microns per pixel, e.g. 0.25 at 40x)",
            )


def file_fingerprint(path: Path) -> str:
    """sha256 of a detections file, or of a slide's size and its first and last MiB (slides are
    gigabytes: this tells copies and edits apart without reading them whole)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        if size <= 4 << 20:
            h.update(fh.read())
        else:
            h.update(fh.read(1 << 20))
            fh.seek(-(1 << 20), 2)
            h.update(fh.read())
    return h.hexdigest()


@dataclass
class SlideJob:
    slide: Path
    detections: Path
    stem: str

    def fingerprints(self) -> dict[str, str]:
        """What the job's results depend on besides the model: the slide and the detections."""
        return {"slide": file_fingerprint(self.slide), "detections": file_fingerprint(self.detections)}


def classify_slide(
    job: SlideJob,
    predictor: Engine,
    model: dict[str, str],
    out: Path,
    options: SlideOptions,
    progress: Progress | None = None,
    data: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Classify one slide's detections and write its GeoJSON, CSV and summary; returns the summary.
    `data`: the job's fingerprints, where the caller has them already."""
    options = options.for_model(predictor.patch)
    patch_mpp = options.patch_mpp
    assert patch_mpp is not None  # for_model resolved it
    reader = SlideReader(
        job.slide,
        options.mpp,
        patch_size=predictor.patch.size,
        patch_mpp=patch_mpp,
        tolerance=options.tolerance,
        force_mpp=options.force_mpp,
    )
    read = read_detections(job.detections, reader.mpp, options.skip_unsupported)
    threshold = predictor.threshold if options.threshold is None else options.threshold
    calls = classify_detections(reader, read.table, predictor, threshold, options.workers, progress)
    meta = {
        "slide": str(job.slide.resolve()),
        "detections_file": str(job.detections.resolve()),
        "mpp": reader.mpp,
        "mpp_source": reader.mpp_source,
        "patch_mpp": patch_mpp if reader.resampled else reader.mpp,
        "patch_size": predictor.patch.size,
        "resampled": reader.resampled,
        "model": model,
        "data": data or job.fingerprints(),
        "detections_read": {**read.counts(), "classified": len(calls)},
    }
    result = summary(calls, threshold, meta)
    write_outputs(calls, result, out, job.stem)
    return result


def _is_done(path: Path, data: dict[str, str], model: dict[str, str]) -> bool:
    if not path.is_file():
        return False
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return old.get("data") == data and old.get("model") == model


def jobs_from(slide_or_csv: Path, detections: Path | None) -> list[SlideJob]:
    """One job for a slide and its detections, or one per row of a (slide, detections) CSV."""
    if slide_or_csv.suffix.lower() == ".csv":
        table = read_csv(slide_or_csv, ("slide", "detections"), fix="give the CSV columns slide, detections")
        base = slide_or_csv.parent
        jobs = []
        for row in table.itertuples(index=False):
            slide, dets = (
                p if p.is_absolute() else base / p for p in (Path(row.slide), Path(row.detections))
            )
            jobs.append(SlideJob(slide, dets, slide.stem))
        if not jobs:
            raise DataError(
                f"{slide_or_csv}: holds no slides (only a header?)", "add one row per slide: slide,detections"
            )
        stems = [j.stem for j in jobs]
        if len(set(stems)) < len(stems):
            raise DataError(f"{slide_or_csv}: two slides share a file name", "give every slide its own name")
        return jobs
    if detections is None:
        raise DataError(
            f"{slide_or_csv}: no detections given", "pass --detections FILE (CSV, GeoJSON or MIDOG JSON)"
        )
    return [SlideJob(slide_or_csv, detections, slide_or_csv.stem)]


def _require_inputs(jobs: list[SlideJob], model_path: Path) -> None:
    """Every slide, detections file and the model exist, before any is read."""
    if not model_path.exists():
        raise DataError(
            f"{model_path}: no such model", "pass a run directory or an exported bundle: --model PATH"
        )
    for job in jobs:
        for what, path, fix in (
            ("slide", job.slide, "check the path (a slides.csv's paths are relative to the CSV)"),
            ("detections file", job.detections, "pass the detector's output: --detections FILE"),
        ):
            if not path.is_file():
                raise DataError(f"{path}: no such {what}", fix)


def _refuse_replacing(job: SlideJob, out: Path, data: dict[str, str], model: dict[str, str]) -> None:
    """Outputs under `out` for this stem that another slide, detections file or model made are
    never replaced silently; the message names both."""
    path = out / f"{job.stem}.summary.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
        old_data, old_model = old.get("data", {}), old.get("model", {})
    except (OSError, ValueError, AttributeError):
        raise DataError(
            f"{path} exists but cannot be read, and {job.slide.name} would replace it",
            "pass --overwrite to replace it, or choose another --out",
        ) from None
    fix = "pass --overwrite to replace them, or choose another --out"
    outputs = f"{out / job.stem}.{{csv,geojson,summary.json}}"
    if old_data.get("slide") != data["slide"]:
        raise DataError(
            f"{outputs} hold the results of slide {old.get('slide', '?')}; {job.slide} would replace them",
            fix,
        )
    if old_model.get("sha256") != model["sha256"]:
        raise DataError(
            f"{outputs} of {job.slide.name} were made with model {old_model.get('path', '?')};"
            f" {model['path']} would replace them",
            fix,
        )
    if old_data.get("detections") != data["detections"]:
        raise DataError(
            f"{outputs} of {job.slide.name} were made from detections {old.get('detections_file', '?')};"
            f" {job.detections} would replace them",
            fix,
        )


def run_slides(
    jobs: list[SlideJob],
    model_path: Path,
    out: Path,
    options: SlideOptions,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], list[str], dict[str, str]]:
    """(summaries of the slides classified now, stems of those already done with this model, and
    the slides that failed with their reasons — a batch goes on past a bad slide)."""
    progress = progress or NullProgress()
    _require_inputs(jobs, model_path)
    for job in jobs:  # the longest of the three outputs must fit the file system, before any work
        require_short_enough(
            out / f"{job.stem}.summary.json",
            f"the output of {job.slide.name}:",
            "use a shorter --out folder, or rename the slide",
            extra=TMP_NAME_EXTRA,
        )
    model = {"path": str(model_path.resolve()), "sha256": model_fingerprint(model_path)}
    data = {j.stem: j.fingerprints() for j in jobs}  # stems are unique (jobs_from)
    todo = [j for j in jobs if not _is_done(out / f"{j.stem}.summary.json", data[j.stem], model)]
    done = [j.stem for j in jobs if j not in todo]
    if not options.overwrite:
        for job in todo:  # before any work: a refusal must not come after hours of others
            _refuse_replacing(job, out, data[job.stem], model)
    if not todo:
        return [], done, {}
    predictor = load_model(model_path)
    options = options.for_model(predictor.patch)  # checked before the first slide is read
    summaries, failed = [], {}
    for job in todo:  # one bad slide must not cost the others: its reason is kept for the end
        try:
            summaries.append(classify_slide(job, predictor, model, out, options, progress, data[job.stem]))
        except MitobenchError as exc:
            if len(jobs) == 1:
                raise
            failed[job.stem] = f"{exc.message} (fix: {exc.fix})" if exc.fix else exc.message
    return summaries, done, failed
