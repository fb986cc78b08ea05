"""The ``emofuse`` command line (Typer + rich).

Every failure the user can cause ends in one line ``error: <file>: <problem>`` and exit code 2,
never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import EmofuseError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="emofuse: multimodal emotion recognition toolkit.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect corpora and write evaluation folds.")
config_app = typer.Typer(no_args_is_help=True, help="Check run configuration files.")
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")

out = Console()
err = Console(stderr=True)

CorpusOpt = Annotated[str, typer.Option("--corpus", "-c", help="Corpus name (see `emofuse data list`).")]
RootOpt = Annotated[Optional[Path], typer.Option("--root", "-r", help="Corpus folder (default: its folder under $EMOFUSE_DATA or ../shared/data).")]


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False):
    if version:
        out.print(f"emofuse {__version__}")
        raise typer.Exit()


@data_app.command("list")
def data_list() -> None:
    """List the corpus loaders and where each looks by default."""
    from .corpora import get_corpus, list_corpora
    from .paths import data_root

    t = Table("corpus", "modalities", "default folder", "found", "description")
    for name in list_corpora():
        c = get_corpus(name)
        folder = data_root() / c.default_subdir if c.default_subdir else None
        t.add_row(name, ",".join(c.modalities), str(folder or "– (give --root)"),
                  "yes" if folder and folder.exists() else "no", c.description)
    out.print(t)


@data_app.command("scan")
def data_scan(corpus: CorpusOpt, root: RootOpt = None,
              as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
              quick: Annotated[bool, typer.Option("--quick", help="Read headers only; do not decode every file.")] = False,
              ) -> None:
    """Count items per class, speaker and split, and list anomalies (bad or odd files)."""
    from .corpora import load_corpus

    t0 = time.perf_counter()
    with err.status(f"scanning {corpus} ...", spinner="dots") if not as_json else _null():
        scan = load_corpus(corpus, root, check_media=not quick)
    summary = scan.summary()
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
        return
    _print_summary(summary)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _print_summary(s: dict) -> None:
    out.print(f"[bold]{s['corpus']}[/bold] at {s['root']}: {s['items']} items"
              + (f", {s['speakers']} speakers" if "speakers" in s else "")
              + f", modalities {s.get('modalities', {})} ({s.get('seconds', 0)} s)")
    t = Table("class", "items")
    for c, n in s["classes"].items():
        t.add_row(c, str(n))
    out.print(t)
    if s.get("splits"):
        out.print("splits: " + ", ".join(f"{k} {v}" for k, v in s["splits"].items()))
    if s.get("per_speaker"):
        out.print("speakers: " + ", ".join(f"{k} {v}" for k, v in s["per_speaker"].items()))
    anomalies = s.get("anomalies", [])
    if anomalies:
        t = Table("file", "problem", "action", title=f"{len(anomalies)} anomalies")
        for a in anomalies[:200]:
            t.add_row(a["path"], a["reason"], "skipped" if a["skipped"] else "kept")
        out.print(t)
        if len(anomalies) > 200:
            out.print(f"... and {len(anomalies) - 200} more (use --json for all)")
    else:
        out.print("no anomalies")


@data_app.command("folds")
def data_folds(corpus: CorpusOpt, root: RootOpt = None,
               protocol: Annotated[str, typer.Option(help="emobox | speaker-kfold | loso | official | random")] = "speaker-kfold",
               k: Annotated[int, typer.Option(help="Folds for speaker-kfold.")] = 5,
               seed: Annotated[int, typer.Option(help="Seed for speaker-kfold and random.")] = 0,
               out_dir: Annotated[Path, typer.Option("--out", help="Folder for the fold file.")] = Path("folds"),
               allow_leak: Annotated[bool, typer.Option("--allow-leak", help="Write a split even if it leaks (random split).")] = False,
               ) -> None:
    """Write a fold file (CSV: fold,split,id,label) after the leakage check."""
    from . import protocols
    from .corpora import load_corpus

    scan = load_corpus(corpus, root, check_media=False)
    splits = protocols.make_splits(protocol, scan.records, corpus=scan.corpus, k=k, seed=seed,
                                   allow_leak=allow_leak)
    for s in splits:
        protocols.check_leakage(s, scan.records, allow_leak=allow_leak)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{scan.corpus}_{protocol}_folds.csv"
    protocols.write_folds(path, splits, scan.records)
    out.print(f"wrote {len(splits)} fold(s) to {path}"
              + (" [red](leaking split: for a leakage audit only)[/red]" if any(s.leaking for s in splits) else ""))


@config_app.command("validate")
def config_validate(file: Annotated[Path, typer.Argument(help="YAML run configuration.")]) -> None:
    """Check a run configuration and explain every error."""
    from .config import explain_config_errors

    problems = explain_config_errors(file)
    if problems:
        err.print(f"[red]{file}: {len(problems)} problem(s)[/red]")
        for p in problems:
            err.print(f"  - {p}")
        raise typer.Exit(2)
    out.print(f"{file}: valid")


@app.command("report")
def report(results: Annotated[Path, typer.Option(help="Folder of result JSON files.")] = Path("benchmarks/results"),
           out_file: Annotated[Path, typer.Option("--out", help="Markdown report to write.")] = Path("docs/results.md"),
           ) -> None:
    """Collect every benchmark result into one Markdown report."""
    from .evaluate.results import collect_report

    path = collect_report(results, out_file)
    out.print(f"wrote {path}")


@app.command("demo")
def demo(root: Annotated[Optional[Path], typer.Option(help="Data root (default $EMOFUSE_DATA or ../shared/data).")] = None) -> None:
    """The main job: summarise the corpora found under the data root."""
    from .corpora import get_corpus, list_corpora
    from .paths import data_root

    base = root or data_root()
    out.print(f"emofuse {__version__}: corpora under {base}")
    t = Table("corpus", "items", "speakers", "classes", "splits", "anomalies", "seconds")
    found = 0
    for name in list_corpora():
        c = get_corpus(name)
        if not c.default_subdir or not (base / c.default_subdir).exists():
            continue
        t0 = time.perf_counter()
        try:
            s = c.load(base / c.default_subdir, check_media=False).summary()
        except EmofuseError as exc:
            t.add_row(name, "–", "–", f"[red]{exc}[/red]", "", "", "")
            continue
        found += 1
        t.add_row(name, str(s["items"]), str(s.get("speakers", "–")), str(len(s["classes"])),
                  ", ".join(f"{k} {v}" for k, v in s.get("splits", {}).items()) or "–",
                  str(len(s["anomalies"])), f"{time.perf_counter() - t0:.1f}")
    out.print(t)
    if not found:
        out.print(f"no corpora found under {base}; set EMOFUSE_DATA or pass --root")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning emofuse errors into one clear line and exit code 2."""
    try:
        app(args=argv, standalone_mode=False)
    except EmofuseError as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
