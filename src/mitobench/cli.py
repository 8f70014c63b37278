"""The `mitobench` command line: parses arguments, calls the library, prints results."""

from __future__ import annotations

import errno
import json
import shlex
import sys
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, get_args

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mitobench import ATYPICAL, CLASS_NAMES, __version__
from mitobench.benchmark.executors import Executor
from mitobench.console import err_console, out_console, progress_for
from mitobench.data.splits import SPLITS
from mitobench.errors import ConfigError, MitobenchError, int_list
from mitobench.inference.shipped import DEFAULT_MODEL, EngineChoice
from mitobench.paths import require_folder
from mitobench.recipes.config import PRESETS, Mode

app = typer.Typer(
    help="Benchmark models on atypical vs normal mitotic figure classification.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Datasets: info, folds, verify, download.", no_args_is_help=True)
app.add_typer(data_app, name="data")
models_app = typer.Typer(help="Models: list the zoo, check one.", no_args_is_help=True)
app.add_typer(models_app, name="models")

DataRoot = Annotated[
    Path | None,
    typer.Option(
        "--data-root",
        help="Folder holding AMi-Br/, AtNorM-Br/, AtNorM-MD/ (default: $MITOBENCH_DATA, "
        "else the per-user data folder).",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ModelOption = Annotated[
    str | None,
    typer.Option(
        help=f"A shipped model's name (default: {DEFAULT_MODEL}, no training needed), a run folder, "
        "an exported bundle (.safetensors) or an ONNX model (.onnx)."
    ),
]
EngineOption = Annotated[
    EngineChoice,
    typer.Option(
        help="auto: the faster here, for a model with an ONNX form and ONNX Runtime installed: "
        "ONNX Runtime where PyTorch would compute in fp32, PyTorch on a GPU, and on a CPU with "
        "native bf16 whichever won a race timed once on this machine (kept in the cache). "
        "Else PyTorch."
    ),
]


def _choices(name: str, values: Iterable[str]) -> type[Enum]:
    """A typed choice read from a library registry, so `--help` lists exactly what it holds."""
    return Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


if TYPE_CHECKING:  # built at run time from the registries; to a type checker, plain enums
    SplitChoice: TypeAlias = Enum
    ModeChoice: TypeAlias = Enum
    PresetChoice: TypeAlias = Enum
    ExecutorChoice: TypeAlias = Enum
    FormatChoice: TypeAlias = Enum
else:
    SplitChoice = _choices("SplitChoice", SPLITS)
    ModeChoice = _choices("ModeChoice", get_args(Mode))
    PresetChoice = _choices("PresetChoice", PRESETS)
    ExecutorChoice = _choices("ExecutorChoice", [e.value for e in Executor])
    FormatChoice = _choices("FormatChoice", ("bundle", "onnx"))


def _root(data_root: Path | None, fetch: bool = False) -> Path:
    """The data root; with `fetch`, an implicit one (no --data-root) holding no dataset is
    filled first by the verified, resumable download."""
    from mitobench.paths import resolve_data_root

    root = resolve_data_root(data_root)
    if fetch and data_root is None:
        from mitobench.data.registry import present

        if not (root.is_dir() and present(root)):
            from mitobench.data.download import download

            err_console.print(
                f"no data in {root} yet: fetching and verifying it first (resumable)", markup=False
            )
            with progress_for() as progress:
                download(root, progress=progress)
    return root


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _note_missing(root: Path) -> None:
    from mitobench.data.registry import DATASETS, missing

    gone = missing(root)
    if gone:
        names = ", ".join(DATASETS[n].title for n in gone)
        err_console.print(f"[yellow]not in {escape(str(root))}:[/] {escape(names)} (mitobench data download)")


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1024,
            help="Intra-op threads (default: $MITOBENCH_THREADS, else the cores this process may use).",
        ),
    ] = None,
) -> None:
    if version:
        out_console.print(f"mitobench {__version__}")
        raise typer.Exit()
    from mitobench.allocator import configure_allocator
    from mitobench.machine import configure_threads

    configure_threads(threads)
    configure_allocator()


@app.command("doctor")
def doctor_cmd(data_root: DataRoot = None, as_json: JsonFlag = False) -> None:
    """This machine: processor and bf16, GPUs, versions, threads, and what the recipes become here.

    Each packaged recipe's precision and batch here, and where data, cache and weights live."""
    from mitobench.train.doctor import report

    facts = report(data_root)
    if as_json:
        _print_json(facts)
        return
    m = facts["machine"]
    out_console.print(f"[bold]processor[/]: {escape(facts['label'])}")
    out_console.print(f"  {escape(m['cpu']['bf16_via'])}; {m['threads']} intra-op threads")
    out_console.print(f"  malloc: {escape(m['malloc'])}")
    for g in m["gpus"]:
        out_console.print(
            f"[bold]GPU[/]: {escape(g['name'])}, compute capability "
            f"{g['capability'][0]}.{g['capability'][1]}, {g['memory_gib']} GiB, "
            f"native bf16 {'yes' if g['bf16_native'] else 'no'}"
        )
    if not m["gpus"]:
        out_console.print("[bold]GPU[/]: none (CUDA not available to torch)")
    out_console.print(
        f"[bold]versions[/]: mitobench {m['mitobench']}, torch {m['torch']} (CUDA {m['cuda'] or 'none'}), "
        f"timm {m['timm']}, Python {m['python']}; device {facts['device']}"
    )
    table = Table(title="packaged recipes on this machine")
    for col in ("preset", "mode", "precision", "train", "inference", "batch", "inference chunk", "why"):
        table.add_column(col)
    for r in facts["recipes"]:
        table.add_row(
            r["preset"],
            r["mode"],
            r["precision"],
            r["train"],
            r["inference"],
            str(r["batch"]),
            f"{r['inference_chunk']} at {r['input_size']} px",
            escape(r["why"]),
        )
    out_console.print(table)
    for place in facts["places"]:
        size = "absent" if place["bytes"] is None else f"{place['bytes'] / 2**20:,.0f} MiB"
        out_console.print(f"[bold]{place['what']}[/]: {escape(place['path'])} ({size})")


@data_app.command("info")
def data_info(data_root: DataRoot = None, as_json: JsonFlag = False) -> None:
    """Counts per class, slides and image size of every dataset split present."""
    from mitobench.data.info import describe
    from mitobench.data.registry import check_root

    root = _root(data_root)
    check_root(root)
    info = describe(root)
    _note_missing(root)
    if as_json:
        _print_json(info)
        return
    table = Table(title=Text(f"datasets in {root}"))
    for col in ("dataset/split", "n", "atypical", "normal", "slides", "image size"):
        table.add_column(col, justify="left" if col in ("dataset/split", "image size") else "right")
    for key, row in info.items():
        table.add_row(
            Text(key),
            str(row["n"]),
            str(row["n_atypical"]),
            str(row["n_normal"]),
            str(row["n_slides"] if row["n_slides"] is not None else "-"),
            ", ".join(row["image_size"]),  # type: ignore[arg-type]
        )
    out_console.print(table)


@data_app.command("folds")
def data_folds(
    data_root: DataRoot = None,
    as_json: JsonFlag = False,
    split: Annotated[
        SplitChoice,
        typer.Option(
            help="paper: the reference's folds (scikit-learn ≤ 1.7's splitter) on any scikit-learn; "
            "sklearn: what the installed scikit-learn's StratifiedGroupKFold returns."
        ),
    ] = SplitChoice("paper"),
) -> None:
    """The 5 slide-grouped folds of the AMi-Br training split (0-based; fold k is the scripts' fold_{k+1})."""
    from mitobench.data.registry import load
    from mitobench.data.splits import assign_folds, fold_counts

    train = load("amibr/train", _root(data_root))
    folds = assign_folds(train, split=split.value)
    rows = [{"image": i, "fold": int(f)} for i, f in zip(train.ids, folds, strict=True)]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        out_console.print(f"{row['image']}\t{row['fold']}", markup=False)
    err_console.print(_fold_summary(fold_counts(train, folds)), markup=False)


def _fold_summary(rows: list[dict[str, int]]) -> str:
    return "\n".join(
        f"fold {r['fold']}: {r['figures']} figures ({r['atypical']} atypical), {r['slides']} slides"
        for r in rows
    )


@data_app.command("verify")
def data_verify(data_root: DataRoot = None, as_json: JsonFlag = False) -> None:
    """Check every file against the packaged sha256 manifest (AtNorM-Br: counts and decoding)."""
    from mitobench.data.manifest import verify_dataset
    from mitobench.data.registry import check_root, present

    root = _root(data_root)
    check_root(root)
    with progress_for() as progress:
        results = [verify_dataset(root, name, progress) for name in present(root)]
    _note_missing(root)
    if as_json:
        _print_json([{**r.__dict__, "ok": r.ok} for r in results])
    else:
        for r in results:
            status = "[green]ok[/]" if r.ok else f"[red]{len(r.problems)} problem(s)[/]"
            out_console.print(f"{r.name}: {r.checked} files checked ({r.method}): {status}", markup=False)
            for problem in r.problems[:20]:
                out_console.print(f"  {problem}", markup=False)
            if len(r.problems) > 20:
                out_console.print(f"  … and {len(r.problems) - 20} more", markup=False)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@data_app.command("download")
def data_download(
    data_root: DataRoot = None,
    url: Annotated[
        str | None, typer.Option(help="Archive URL (http(s):// or file://); default: upstream.")
    ] = None,
    sha256: Annotated[str | None, typer.Option(help="Expected sha256 of the archive.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace datasets already present.")] = False,
) -> None:
    """Fetch the upstream datasets into the data root, then verify them."""
    from mitobench.data.download import download
    from mitobench.data.manifest import verify_dataset

    root = _root(data_root)
    with progress_for() as progress:
        names = download(root, url=url, sha256=sha256, overwrite=overwrite, progress=progress)
        results = [verify_dataset(root, n, progress) for n in names]
    for r in results:
        status = "ok" if r.ok else f"{len(r.problems)} problem(s), run `mitobench data verify`"
        out_console.print(f"{r.name}: installed in {root} ({status})", markup=False)
    _note_missing(root)


@models_app.command("list")
def models_list(as_json: JsonFlag = False) -> None:
    """Every registered model: family, embedding size, gated, usable offline here."""
    from mitobench.models.doctor import offline_available
    from mitobench.models.registry import all_specs

    rows = [
        {
            "name": s.name,
            "title": s.title,
            "family": s.family.value,
            "embed_dim": s.embed_dim,
            "gated": s.gated,
            "offline": offline_available(s),
            "source": s.hub_id or s.source.value,
            "licence": s.licence,
        }
        for s in all_specs()
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table(title="mitobench model zoo")
    for col in ("name", "family", "embed dim", "gated", "offline here", "source", "licence"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["name"]),
            str(r["family"]),
            str(r["embed_dim"]),
            "yes" if r["gated"] else "no",
            "yes" if r["offline"] else "no",
            str(r["source"]),
            str(r["licence"]),
        )
    out_console.print(table)


@models_app.command("info")
def models_info(
    target: Annotated[
        str,
        typer.Argument(
            help="A registered model's name, a shipped model's (amibr-lite0), "
            "or a run, bundle or .onnx model."
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """What a model is: a registered model's spec, or a trained model's record and test figures.

    A shipped model, run, bundle or ONNX model: its training, fingerprint, threshold and geometry."""
    from mitobench.inference.shipped import describe_target

    info = describe_target(target)
    if as_json:
        _print_json(info)
        return
    figures = info.pop("figures", None) or {}
    made = info.pop("made", None)
    for key, value in info.items():
        out_console.print(f"{key}: {value}", markup=False)
    if made is not None:  # a shipped model's record: the headline here, everything under --json
        stages = made.get("stages") or [{}]
        data = made.get("data") or {}
        for key, value in {
            "recipe": made.get("recipe"),
            "recipe wall clock": made.get("wall_clock"),
            "made on": f"{made.get('made_on')}, {stages[-1].get('machine')}",
            "training data": f"{data.get('dataset')}, {data.get('files')} files, sha256 {data.get('sha256')}",
            "licence": made.get("licence"),
        }.items():
            out_console.print(f"{key}: {value}", markup=False)
        if val := made.get("validation"):
            out_console.print(_validation_line(val), markup=False)
        out_console.print("(how it was made, in full: --json)", markup=False)
    for dataset, f in figures.items():
        ens = f["ensemble"] or f["fold_mean"]
        which = "ensemble" if f["ensemble"] else "fold mean"
        folds = f"{f['folds']} fold{'s' if f['folds'] != 1 else ''}"
        out_console.print(
            f"{dataset} ({f['n']} figures, {folds}, {which}): "
            f"bal. acc {ens['balanced_accuracy']:.4f}, AUROC {ens['auroc']:.4f}, ECE {ens['ece']:.4f}",
            markup=False,
        )


@models_app.command("check")
def models_check(
    name: Annotated[str, typer.Argument(help="A registered model or any timm model name.")],
    weights: Annotated[
        Path | None, typer.Option(help="Local weight file or folder (hub layout) to load.")
    ] = None,
    random_init: Annotated[
        bool, typer.Option("--random-init", help="Check the architecture only, random weights.")
    ] = False,
) -> None:
    """Doctor: token, network, weight source; builds the model and runs one forward pass."""
    from mitobench.models.doctor import diagnose

    diag = diagnose(name, weights=weights, random_init=random_init)
    out_console.print(
        f"[bold]{escape(diag.spec.title)}[/] ({escape(diag.spec.name)}, {diag.spec.family.value})"
    )
    for c in diag.checks:
        mark = "[green]ok[/]  " if c.ok else "[red]FAIL[/]"
        out_console.print(f"  {mark} {c.name:8s} {escape(str(c.detail))}", highlight=False)
    if diag.embedding_shape:
        out_console.print(f"  embedding shape {diag.embedding_shape}", markup=False)
    out_console.print(f"  dtype: {diag.advice}", markup=False)
    if not diag.ok:
        raise typer.Exit(1)


def _check_out_file(out: Path, overwrite: bool, example: str) -> None:
    """Before any work: --out must be a file the system can write, and a result already there is
    never replaced silently."""
    from mitobench.paths import TMP_NAME_EXTRA, require_short_enough

    fix = f"pass a shorter path: --out {example}"
    require_short_enough(out, "--out", fix, extra=TMP_NAME_EXTRA)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder", f"pass the file to write, e.g. --out {example}")
    require_folder(out.parent, "the folder of --out", f"pass a path in a writable folder: --out {example}")
    if out.is_file() and not overwrite:
        raise ConfigError(f"--out {out} exists", "pass --overwrite to replace it, or choose another --out")


def _validation_line(val: dict[str, Any]) -> str:
    """A shipped model's validation: each fold student's AUROC and the threshold they chose."""
    folds = val.get("folds", [val.get("fold")])
    aurocs = val["auroc"] if isinstance(val["auroc"], list) else [val["auroc"]]
    each = ", ".join(f"{a:.4f}" for a in aurocs)
    mean = f" (mean {sum(aurocs) / len(aurocs):.4f})" if len(aurocs) > 1 else ""
    return (
        f"validation: fold{'s' if len(folds) > 1 else ''} {', '.join(map(str, folds))} AUROC {each}{mean}, "
        f"threshold {val['threshold']:.3f} ({val['what']})"
    )


def _parse_folds(text: str) -> list[int]:
    """`--folds 0,1,2` -> [0, 1, 2]."""
    return int_list(text, "--folds")


def _parse_sets(values: list[str] | None) -> dict[str, object]:
    """`--set lr=1e-4 --set input.crop_pct=0.875` -> nested dict (values parsed as YAML)."""
    import yaml

    out: dict[str, object] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r} is not KEY=VALUE", "write e.g. --set max_epochs=3")
        node = out
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(
                f"--set {item!r}: the value is not valid YAML ({problem})",
                "close every bracket and brace, and quote the whole option: --set 'augment=[{op: hflip}]'",
            ) from None
    return out


def _print_summary(summary: dict[str, object], title: str) -> None:
    from mitobench.report.summary import summary_headers, summary_rows

    rows = summary_rows(summary)
    table = Table(title=Text(title))
    headers = summary_headers()
    for col in headers.values():
        table.add_column(col)
    for row in rows:
        table.add_row(*(Text(str(row[k])) for k in headers))
    out_console.print(table)


@app.command("train")
def train_cmd(
    model: Annotated[
        str | None, typer.Option(help="Model name (mitobench models list) or any timm model.")
    ] = None,
    mode: Annotated[ModeChoice | None, typer.Option(help="Training mode (default e2e).")] = None,
    preset: Annotated[PresetChoice | None, typer.Option(help="Recipe (default paper).")] = None,
    train_data: Annotated[
        str | None,
        typer.Option(
            help="Training data: a named split (default amibr/train), or a labelled folder or CSV "
            "(path, label[, group for slide-grouped folds][, fold for your own split])."
        ),
    ] = None,
    eval_: Annotated[
        list[str] | None,
        typer.Option(
            "--eval",
            help="Evaluation set, repeatable: a name or a labelled folder/CSV "
            "(default: amibr/test, atnorm-br/test, atnorm-md/test).",
        ),
    ] = None,
    split: Annotated[
        SplitChoice | None, typer.Option(help="How folds are made when the data has no fold column.")
    ] = None,
    folds: Annotated[str | None, typer.Option(help="Comma-separated folds (default 0,1,2,3,4).")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/MODEL-MODE-PRESET).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with the run settings.")] = None,
    weights: Annotated[str | None, typer.Option(help="Local weight file or folder for the model.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a training setting: KEY=VALUE (also lora.r=16, probe.c_grid=[0.1, 1])."
        ),
    ] = None,
    allow_overlap: Annotated[
        bool,
        typer.Option(
            help="Evaluate on a set that shares images with the training data (recorded in run.json)."
        ),
    ] = False,
    data_root: DataRoot = None,
) -> None:
    """Train a model on each fold of its training data and evaluate it (resumes if interrupted)."""
    from mitobench.models.registry import require_known
    from mitobench.runs.rundir import run_name
    from mitobench.runs.spec import assemble_spec
    from mitobench.train.run import train_run

    values: dict[str, object] = {}
    if config is not None:
        from mitobench.config_file import read_yaml

        values = read_yaml(config)
    if weights and "=" in weights and not Path(weights).exists():
        weights = weights.split("=", 1)[1]  # NAME=PATH, as the doctor suggests
    options = {
        "model": model,
        "mode": mode.value if mode else None,
        "preset": preset.value if preset else None,
        "split": split.value if split else None,
        "train_data": train_data,
        "eval_sets": eval_ or None,
        "weights": weights,
        "allow_overlap": allow_overlap or None,
        "folds": _parse_folds(folds) if folds is not None else None,
    }
    spec = assemble_spec(values, options, _parse_sets(set_))
    run_dir = out or Path("runs") / run_name(spec.model, spec.mode, spec.preset, spec.train_data)
    require_folder(run_dir, "the run folder (--out)", "pass a folder to hold the run: --out DIR")
    require_known([spec.model])
    root = _root(data_root, fetch=spec.uses_released_data)  # your own data only: nothing to download
    with progress_for() as progress:
        result = train_run(spec, run_dir, root, progress)
    if result.skipped_sets:
        err_console.print(
            f"[yellow]not evaluated (not in {escape(str(root))}):[/] {escape(', '.join(result.skipped_sets))}"
        )
    _print_summary(result.summary, f"{spec.model} · {spec.mode} · {spec.preset} → {run_dir}")


@app.command("evaluate")
def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="A run directory made by `mitobench train`.")],
    dataset: Annotated[
        list[str] | None,
        typer.Option(help="Dataset to add: a name, a labelled folder or CSV, or NAME=PATH to name one."),
    ] = None,
    tta: Annotated[
        bool, typer.Option(help="Also score the 8 dihedral transforms (reported separately).")
    ] = False,
    data_root: DataRoot = None,
) -> None:
    """Show a run's metrics; with --dataset, score its fold models on more labelled data first."""
    from mitobench.evaluate.evaluate_run import evaluate_run
    from mitobench.runs.rundir import RunDir
    from mitobench.runs.spec import load_run_spec

    load_run_spec(RunDir(run))
    if dataset:
        with progress_for() as progress:
            summary = evaluate_run(run, dataset, _root(data_root), tta=tta, progress=progress)
    else:
        summary = RunDir(run).write_summary()
    _print_summary(summary, f"{run}")


@app.command("predict")
def predict_cmd(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="A folder of patches (and/or multi-page TIFF stacks), a stack, or a CSV with `path`. "
            "(`predict MODEL INPUTS` also works.)",
            show_default=False,
        ),
    ],
    model: ModelOption = None,
    engine: EngineOption = EngineChoice.auto,
    out: Annotated[
        Path, typer.Option(help="CSV to write: id, probability, label (a fold ensemble: prob_fold_K too).")
    ] = Path("predictions.csv"),
    tta: Annotated[bool, typer.Option(help="Average over the 8 dihedral transforms.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Classify new patches with the shipped model, or a run's fold ensemble (mean probability)."""
    from mitobench.data.stacks import patches_to_predict
    from mitobench.inference.bundle import load_model
    from mitobench.inference.shipped import resolve_model
    from mitobench.paths import atomic_path

    if len(inputs) > 2 or (len(inputs) == 2 and model is not None):
        raise ConfigError(
            f"predict takes one input (a folder, stack or CSV); got {len(inputs)} paths"
            + (" and --model" if model is not None else ""),
            "mitobench predict INPUTS [--model MODEL]",
        )
    if len(inputs) == 2:
        model, inputs = str(inputs[0]), inputs[1:]
    _check_out_file(out, overwrite, "predictions.csv")
    predictor = load_model(resolve_model(model, engine))
    # the models saw patches of this side (AMi-Br: 128): others are resized to it (stack pages must fit)
    side = predictor.patch.size
    dataset, images = patches_to_predict(inputs[0], (side, side))
    with progress_for() as progress:
        frame = predictor.predict(dataset, images, tta=tta, progress=progress)
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    n_atyp = int((frame["label"] == CLASS_NAMES[ATYPICAL]).sum())
    out_console.print(
        f"{len(frame)} patch{'' if len(frame) == 1 else 'es'} → {out} "
        f"({n_atyp} atypical at threshold {predictor.threshold:.3f})",
        markup=False,
    )


@app.command("slide")
def slide_cmd(
    slide: Annotated[
        Path,
        typer.Argument(
            help="A whole-slide image (SVS, NDPI, MRXS, tiled TIFF, ...), or a CSV of slide,detections."
        ),
    ],
    model: ModelOption = None,
    engine: EngineOption = EngineChoice.auto,
    detections: Annotated[
        Path | None,
        typer.Option(help="The detector's output: CSV (x,y level-0 px), QuPath GeoJSON or MIDOG JSON."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for <slide>.geojson, .csv and .summary.json.")] = Path(
        "slides"
    ),
    mpp: Annotated[
        float | None, typer.Option(help="Level-0 microns per pixel, if the slide does not say.")
    ] = None,
    patch_mpp: Annotated[
        float | None,
        typer.Option(
            help="Microns per pixel of the training patches (default: the model's, 0.25 for AMi-Br)."
        ),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="Relative resolution difference read without resampling.")
    ] = 0.1,
    threshold: Annotated[
        float | None, typer.Option(help="Decision threshold (default: the model's).")
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace outputs in --out made from another slide, detections file or model."),
    ] = False,
    force_mpp: Annotated[
        bool, typer.Option(help="Use --mpp even where it contradicts the slide's own resolution metadata.")
    ] = False,
    skip_unsupported: Annotated[
        bool,
        typer.Option(
            help="Leave out GeoJSON features that are not points or shapes (counted in the summary)."
        ),
    ] = False,
) -> None:
    """Classify a detector's mitotic figures on slides: QuPath GeoJSON, CSV and a per-slide summary."""
    from mitobench.inference.shipped import resolve_model
    from mitobench.slides.slide import SlideOptions, jobs_from, run_slides

    options = SlideOptions(
        mpp,
        patch_mpp,
        tolerance,
        threshold,
        overwrite=overwrite,
        skip_unsupported=skip_unsupported,
        force_mpp=force_mpp,
    )
    require_folder(out, "the output folder (--out)", "pass a folder: --out DIR")
    jobs = jobs_from(slide, detections)
    with progress_for() as progress:
        done, kept, failed = run_slides(jobs, resolve_model(model, engine), out, options, progress)
    for s in done:
        ratio = s["atypical_fraction"]
        shown = "-" if ratio is None else f"{ratio:.3f}"
        lo, hi = s["atypical_fraction_ci95"]
        ci = "" if lo is None else f" [{lo:.3f}, {hi:.3f}]"
        out_console.print(
            f"{Path(s['slide']).name}: {s['detections']} detections, {s['atypical']} atypical "
            f"(fraction {shown}{ci}), {s['padded']} at the edge → {out}",
            markup=False,
        )
    if kept:
        out_console.print(f"already done with this model: {', '.join(kept)}", markup=False)
    for stem, reason in failed.items():
        err_console.print(f"failed: {stem}: {reason}", markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command("midog")
def midog_cmd(
    input_dir: Annotated[Path, typer.Option("--input", help="The container's input folder.")] = Path(
        "/input"
    ),
    output_dir: Annotated[Path, typer.Option("--output", help="The container's output folder.")] = Path(
        "/output"
    ),
    model: Annotated[
        str | None,
        typer.Option(
            help="A bundle, a folder holding one, or a shipped model's name (default: amibr-lite0)."
        ),
    ] = None,
) -> None:
    """MIDOG 2025 Track 2: classify every page of every TIFF stack; write the challenge's JSON."""
    from mitobench.inference.midog import classify_stacks

    target = classify_stacks(input_dir, output_dir, model)
    out_console.print(f"wrote {target}", markup=False)


@app.command("export")
def export_cmd(
    run: Annotated[
        Path,
        typer.Argument(
            help="A run folder (`mitobench train`), or a results folder of `mitobench run` "
            "holding one run (else pass results/NAME/runs/RUN)."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="File to write (default: model.safetensors, or model.onnx with --format onnx)."),
    ] = None,
    folds: Annotated[
        str | None,
        typer.Option(
            help="Export only these finished folds, e.g. 0,1 (default: all; unfinished ones refuse)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
    format_: Annotated[
        FormatChoice,
        typer.Option(
            "--format",
            help="bundle: one safetensors file for PyTorch; onnx: the fold ensemble as one ONNX graph "
            "with a .onnx.json sidecar of its settings, for ONNX Runtime (pip install 'mitobench[onnx]').",
        ),
    ] = FormatChoice("bundle"),
) -> None:
    """Export a run's fold models with their model spec, normalisation, patch geometry and threshold."""
    from mitobench.inference.bundle import export_run
    from mitobench.runs.rundir import find_run

    onnx = format_.value == "onnx"
    out = out or Path("model.onnx" if onnx else "model.safetensors")
    _check_out_file(out, overwrite, out.name)
    run = find_run(run)
    predictor = export_run(run, out, _parse_folds(folds) if folds else None, onnx)
    out_console.print(
        f"{out}: {len(predictor.fold_states)} fold model(s), threshold {predictor.threshold:.3f} "
        f"({out.stat().st_size / 1e6:.1f} MB)",
        markup=False,
    )


@app.command("run")
def run_cmd(
    config: Annotated[
        str,
        typer.Argument(help="A grid YAML file or a packaged config: paper, cpu, cpu-best, cpu-lite0, quick."),
    ],
    results: Annotated[Path | None, typer.Option(help="Results directory (default results/NAME).")] = None,
    executor: Annotated[ExecutorChoice, typer.Option(help="Where the jobs run.")] = ExecutorChoice(
        "inprocess"
    ),
    address: Annotated[str | None, typer.Option(help="Address of an existing Ray cluster.")] = None,
    report: Annotated[bool, typer.Option(help="Write the report when the grid is done.")] = True,
    data_root: DataRoot = None,
) -> None:
    """Run a benchmark grid (model × mode × fold); finished jobs are skipped, failed ones recorded."""
    from mitobench.benchmark.grid import load_grid
    from mitobench.benchmark.runner import plan, run_grid
    from mitobench.models.registry import require_known

    grid = load_grid(config)
    results_dir = results or Path("results") / grid.name
    require_folder(results_dir, "the results folder (--results)", "pass a writable folder: --results DIR")
    require_known(spec.model for spec in grid.run_specs())
    root = _root(data_root, fetch=True)
    err_console.print(
        f"{grid.name}: {len(plan(grid, results_dir))} jobs → {results_dir} "
        f"(run folders in {results_dir / 'runs'})",
        highlight=False,
        markup=False,
    )
    with progress_for() as progress:
        outcome = run_grid(grid, results_dir, root, executor.value, address, progress)
    out_console.print(
        f"{len(outcome.done)} done, {len(outcome.skipped)} already finished, "
        f"{len(outcome.busy)} running in another process, {len(outcome.failed)} failed"
    )
    for job, error in outcome.failed.items():
        err_console.print(
            f"[red]failed:[/] {escape(str(job))}: {escape(error.splitlines()[0])}", highlight=False
        )
    if report:
        from mitobench.report.build import build_report

        paths = build_report(results_dir, root)
        out_console.print((results_dir / "report" / "tables.md").read_text(), markup=False)
        out_console.print(f"report: {paths['html']}", markup=False)
    if outcome.failed:
        raise typer.Exit(1)


@app.command("distil")
def distil_cmd(
    teachers: Annotated[
        str, typer.Option(help="The teachers: a grid YAML or packaged config with one run (model, mode).")
    ] = "cpu-best",
    student_model: Annotated[
        str | None, typer.Option(help="The student's model (default: the teachers').")
    ] = None,
    teacher_weight: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Target = w x teacher probability + (1 - w) x usual target."),
    ] = 0.5,
    folds: Annotated[
        str,
        typer.Option(help="The paper folds a student validates on, one per fold, e.g. 0 or 0,1,2,3,4."),
    ] = "0",
    all_figures: Annotated[
        bool,
        typer.Option(
            help="Then train the same student on every training figure, at the threshold that is "
            "best on the fold students' validation predictions pooled (the model to ship)."
        ),
    ] = False,
    student_preset: Annotated[
        str | None, typer.Option(help="The student's preset (default: the teachers').")
    ] = None,
    results: Annotated[
        Path | None, typer.Option(help="Results directory (default results/distil-NAME).")
    ] = None,
    data_root: DataRoot = None,
) -> None:
    """Train the teachers (a grid, resumable) and one student towards their out-of-fold probabilities."""
    from mitobench.benchmark.distil import distil, plan_distil
    from mitobench.benchmark.grid import load_grid
    from mitobench.models.registry import require_known

    grid = load_grid(teachers)
    results_dir = results or Path("results") / f"distil-{grid.name}"
    require_folder(results_dir, "the results folder (--results)", "pass a writable folder: --results DIR")
    plan = plan_distil(
        grid, results_dir, student_model, teacher_weight, tuple(_parse_folds(folds)),
        student_preset=student_preset, all_figures=all_figures,
    )  # fmt: skip
    require_known([plan.student.model, *(spec.model for spec in grid.run_specs())])
    root = _root(data_root, fetch=True)
    with progress_for() as progress:
        _, student, final = distil(plan, results_dir, root, progress)
    out_console.print(f"teachers: {plan.teacher_run}", markup=False)
    _print_summary(student.summary, "student (distilled)")
    shipped = plan.student_run
    if final is not None and plan.final_run is not None:
        _print_summary(final.summary, "final student (all training figures)")
        shipped = plan.final_run
    out_console.print(
        f"student: {shipped} (export it: mitobench export {shipped} --out student.safetensors)",
        markup=False,
    )


@app.command("report")
def report_cmd(
    results: Annotated[Path, typer.Argument(help="A results directory made by `mitobench run`.")],
    bootstrap: Annotated[
        int, typer.Option(min=0, max=1_000_000, help="Bootstrap resamples for the 95% CIs (0: none).")
    ] = 1000,
    data_root: DataRoot = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Also temperature-scale each fold model on its own validation fold: ECE before and after.",
        ),
    ] = False,
) -> None:
    """Tables (Markdown, CSV, LaTeX), plots and one self-contained HTML report."""
    from mitobench.report.build import build_report

    paths = build_report(results, _root(data_root), n_boot=bootstrap, calibrate=calibrate)
    out_console.print((results / "report" / "tables.md").read_text(), markup=False)
    if "calibration" in paths:
        out_console.print(
            f"calibration (temperature scaling on validation folds): {paths['calibration']}", markup=False
        )
    out_console.print(f"report: {paths['html']}", markup=False)


@app.command("raters")
def raters_cmd(
    data_root: DataRoot = None,
    as_json: JsonFlag = False,
    results_dir: Annotated[
        Path | None,
        typer.Option(
            "--results", help="A results folder: score its models beside the experts, by agreement."
        ),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option(min=0, max=1_000_000, help="Bootstrap resamples for the 95% CIs (0: none).")
    ] = 1000,
) -> None:
    """Agreement among the experts (Cohen's and Fleiss' κ, leave-one-out) on AMi-Br and AtNorM-MD.

    With --results, each model by expert agreement and beside the experts."""
    from mitobench.data.registry import check_root
    from mitobench.evaluate.raters import agreement_in

    root = _root(data_root)
    check_root(root)
    if results_dir is not None:
        from mitobench.report.build import raters_for_results

        results = raters_for_results(results_dir, root, bootstrap)
    else:
        results = agreement_in(root)
    if as_json:
        _print_json(results)
        return
    for r in results:
        out_console.print(
            f"[bold]{escape(r['dataset'])}[/]: {len(r['experts'])} experts, {r['n']} figures, "
            f"Fleiss' κ = {r['fleiss_kappa']:.3f}, unanimous {r['unanimous_fraction']:.1%}"
        )
        pairs = ", ".join(f"{k}: {v:.3f}" for k, v in r["pairwise_kappa"].items())
        out_console.print(f"  pairwise Cohen's κ: {pairs}", markup=False)
        for ref, scores in r["leave_one_out"].items():
            for who, sc in scores.items():
                out_console.print(
                    f"  {who} {ref}: bal. acc {sc['balanced_accuracy']:.3f}, κ {sc['kappa']:.3f} "
                    f"(n={sc['n']})",
                    markup=False,
                )
        if r.get("label_noise", {}).get("models"):
            from mitobench.report.html import noise_table

            table = Table(title=f"{r['dataset']}: by expert agreement (bootstrap 95% CIs)")
            frame = noise_table(r["label_noise"])
            for col in frame.columns:
                table.add_column(col)
            for row in frame.itertuples(index=False):
                table.add_row(*(Text(str(v)) for v in row))
            out_console.print(table)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Library warnings as one line each (no source line), user text escaped."""
    err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False)


def main() -> None:
    """Console entry point: user errors become one message and a non-zero exit."""
    import warnings

    warnings.showwarning = _show_warning
    try:
        app()
    except MitobenchError as exc:
        err_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
        if exc.fix:
            err_console.print(f"  [bold]fix:[/] {escape(exc.fix)}", highlight=False)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a path too long for the system, met before a command could check it
        if exc.errno != errno.ENAMETOOLONG:
            raise
        name = escape(str(exc.filename or "a path"))
        err_console.print(
            f"[bold red]error:[/] {name}: the path is too long for this system", highlight=False
        )
        err_console.print("  [bold]fix:[/] use a shorter file or folder name", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:  # outside a command
        _say_interrupted()
        sys.exit(130)
    except SystemExit as exc:  # typer turns Ctrl-C in a command into exit 130
        if exc.code == 130 and _caused_by_ctrl_c(exc):
            _say_interrupted()
        raise


def _caused_by_ctrl_c(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _say_interrupted() -> None:
    err_console.print(
        "interrupted: every file written is complete, finished folds and each fold's last epoch "
        f"are kept; resume with: mitobench {shlex.join(sys.argv[1:])}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


if __name__ == "__main__":
    main()
