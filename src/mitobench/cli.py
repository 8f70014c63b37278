"""The `mitobench` command line: parses arguments, calls the library, prints results."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mitobench import __version__
from mitobench.console import RichProgress, err_console, out_console
from mitobench.errors import MitobenchError

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


def _root(data_root: Path | None) -> Path:
    from mitobench.paths import resolve_data_root

    return resolve_data_root(data_root)


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _note_missing(root: Path) -> None:
    from mitobench.data.registry import DATASETS, missing

    gone = missing(root)
    if gone:
        names = ", ".join(DATASETS[n].title for n in gone)
        err_console.print(f"[yellow]not in {root}:[/] {names} (mitobench data download)")


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        out_console.print(f"mitobench {__version__}")
        raise typer.Exit()


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
    table = Table(title=f"datasets in {root}")
    for col in ("dataset/split", "n", "atypical", "normal", "slides", "image size"):
        table.add_column(col, justify="left" if col in ("dataset/split", "image size") else "right")
    for key, row in info.items():
        table.add_row(
            key, str(row["n"]), str(row["n_atypical"]), str(row["n_normal"]),
            str(row["n_slides"] if row["n_slides"] is not None else "-"),
            ", ".join(row["image_size"]),  # type: ignore[arg-type]
        )  # fmt: skip
    out_console.print(table)


@data_app.command("folds")
def data_folds(data_root: DataRoot = None, as_json: JsonFlag = False) -> None:
    """The 5 slide-grouped folds of the AMi-Br training split (0-based), as the paper made them."""
    from mitobench.data.registry import load
    from mitobench.data.splits import assign_folds

    train = load("amibr/train", _root(data_root))
    folds = assign_folds(train)
    rows = [{"image": i, "fold": int(f)} for i, f in zip(train.ids, folds, strict=True)]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        out_console.print(f"{row['image']}\t{row['fold']}")
    err_console.print(_fold_summary(train, folds))


def _fold_summary(train: object, folds: object) -> str:
    import numpy as np

    labels = train.labels  # type: ignore[attr-defined]
    groups = train.groups  # type: ignore[attr-defined]
    parts = []
    for k in np.unique(folds):  # type: ignore[call-overload]
        m = folds == k
        parts.append(
            f"fold {k}: {m.sum()} figures ({labels[m].sum()} atypical), {len(set(groups[m]))} slides"
        )
    return "\n".join(parts)


@data_app.command("verify")
def data_verify(data_root: DataRoot = None, as_json: JsonFlag = False) -> None:
    """Check every file against the packaged sha256 manifest (AtNorM-Br: counts and decoding)."""
    from mitobench.data.manifest import verify_dataset
    from mitobench.data.registry import check_root, present

    root = _root(data_root)
    check_root(root)
    with RichProgress() as progress:
        results = [verify_dataset(root, name, progress) for name in present(root)]
    _note_missing(root)
    if as_json:
        _print_json([{**r.__dict__, "ok": r.ok} for r in results])
    else:
        for r in results:
            status = "[green]ok[/]" if r.ok else f"[red]{len(r.problems)} problem(s)[/]"
            out_console.print(f"{r.name}: {r.checked} files checked ({r.method}): {status}")
            for problem in r.problems[:20]:
                out_console.print(f"  {problem}")
            if len(r.problems) > 20:
                out_console.print(f"  … and {len(r.problems) - 20} more")
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
    with RichProgress() as progress:
        names = download(root, url=url, sha256=sha256, overwrite=overwrite, progress=progress)
        results = [verify_dataset(root, n, progress) for n in names]
    for r in results:
        status = "ok" if r.ok else f"{len(r.problems)} problem(s), run `mitobench data verify`"
        out_console.print(f"{r.name}: installed in {root} ({status})")
    _note_missing(root)


@models_app.command("list")
def models_list(as_json: JsonFlag = False) -> None:
    """Every registered model: family, embedding size, gated, usable offline here."""
    from mitobench.models.doctor import offline_available
    from mitobench.models.registry import all_specs

    rows = [
        {
            "name": s.name, "title": s.title, "family": s.family.value, "embed_dim": s.embed_dim,
            "gated": s.gated, "offline": offline_available(s), "source": s.hub_id or s.source.value,
            "licence": s.licence,
        }
        for s in all_specs()
    ]  # fmt: skip
    if as_json:
        _print_json(rows)
        return
    table = Table(title="mitobench model zoo")
    for col in ("name", "family", "embed dim", "gated", "offline here", "source", "licence"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"], r["family"], str(r["embed_dim"]), "yes" if r["gated"] else "no",
            "yes" if r["offline"] else "no", r["source"], r["licence"],
        )  # fmt: skip
    out_console.print(table)


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
    out_console.print(f"[bold]{diag.spec.title}[/] ({diag.spec.name}, {diag.spec.family.value})")
    for c in diag.checks:
        mark = "[green]ok[/]  " if c.ok else "[red]FAIL[/]"
        out_console.print(f"  {mark} {c.name:8s} {c.detail}", highlight=False)
    if diag.embedding_shape:
        out_console.print(f"  embedding shape {diag.embedding_shape}")
    out_console.print(f"  dtype: {diag.advice}")
    if not diag.ok:
        raise typer.Exit(1)


def main() -> None:
    """Console entry point: user errors become one message and a non-zero exit."""
    try:
        app()
    except MitobenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        if exc.fix:
            err_console.print(f"  [bold]fix:[/] {exc.fix}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted; rerun the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
