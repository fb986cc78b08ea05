"""The ``emofuse`` command line (Typer + rich).

Every failure the user can cause ends in one line ``error: <file>: <problem>`` and exit code 2,
never a traceback.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import __version__
from .errors import EmofuseError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="emofuse: multimodal emotion recognition toolkit.\n\n"
                       "Exit codes: 0 everything done; 1 some inputs failed (each reported on "
                       "stderr), the others were predicted; 2 usage mistake, invalid input or "
                       "configuration, or nothing predicted; 130 interrupted.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect corpora and write evaluation folds.")
config_app = typer.Typer(no_args_is_help=True, help="Check run configuration files.")
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")

from .cli_common import QuietOpt, VerboseOpt, err, out, set_verbosity
from .cli_common import state as _state

CorpusOpt = Annotated[str, typer.Option("--corpus", "-c", help="Corpus name (see `emofuse data list`).")]
RootOpt = Annotated[Optional[Path], typer.Option("--root", "-r", help="Corpus folder (default: its folder under $EMOFUSE_DATA or ../shared/data).")]


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
          quiet: QuietOpt = False, verbose: VerboseOpt = False):
    set_verbosity(quiet=quiet, verbose=verbose, reset=True)
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
    else:
        _print_summary(summary)
    scan.require_items()  # a wrong --root is not a successful scan


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
               protocol: Annotated[str, typer.Option(help="emobox | speaker-kfold | loso | logo (leave one group out, e.g. IEMOCAP session) | official | random")] = "speaker-kfold",
               k: Annotated[int, typer.Option(help="Folds for speaker-kfold.", min=2, max=1000)] = 5,
               seed: Annotated[int, typer.Option(help="Seed for speaker-kfold and random.")] = 0,
               out_dir: Annotated[Path, typer.Option("--out", help="Folder for the fold file.")] = Path("folds"),
               allow_leak: Annotated[bool, typer.Option("--allow-leak", help="Write a split even if it leaks (random split).")] = False,
               drop_duplicates: Annotated[bool, typer.Option("--drop-duplicates", help="Drop val/test items whose content also occurs in an earlier part (FER2013).")] = False,
               ) -> None:
    """Write a fold file (CSV: fold,split,id,label) after the leakage check."""
    from . import protocols
    from .corpora import load_corpus

    scan = load_corpus(corpus, root, check_media=False).require_items()
    key = protocol.lower().replace("_", "-")
    options: dict = {}
    if key in ("speaker-kfold", "kfold"):
        options = {"k": k, "seed": seed, "allow_leak": allow_leak}
    elif key == "random":
        if not allow_leak:
            raise EmofuseError("the random split leaks speakers; pass --allow-leak to write it "
                               "for a leakage audit")
        options = {"seed": seed}
    elif key in ("emobox", "loso", "logo", "official"):
        options = {"allow_leak": allow_leak}
    if drop_duplicates and "allow_leak" in options:
        options["allow_leak"] = True
    splits = protocols.make_splits(protocol, scan.records, corpus=scan.corpus, **options)
    if drop_duplicates:
        splits = [protocols.drop_cross_duplicates(s, scan.records, allow_leak=allow_leak)
                  for s in splits]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = protocols.write_folds(splits, out_dir / f"{scan.corpus}_{key}_folds.csv",
                                 records=scan.records)
    leaking = any(s.leaking for s in splits)
    out.print(f"wrote {len(splits)} fold(s) to {path}"
              + (" [red](leaking split: for a leakage audit only)[/red]" if leaking else ""))
    for s in splits:
        out.print(f"  {s.name}: " + ", ".join(f"{p} {len(v)}" for p, v in s.parts().items()))


@config_app.command("validate")
def config_validate(file: Annotated[Path, typer.Argument(help="YAML run configuration.")]) -> None:
    """Check a run configuration and explain every error."""
    from .recipes import explain_suite_config

    problems = explain_suite_config(file)
    if problems:
        err.print(f"[red]{file}: {len(problems)} problem(s)[/red]")
        for p in problems:
            err.print(f"  - {p}")
        raise typer.Exit(2)
    out.print(f"{file}: valid")


@app.command("bench")
def bench(name: Annotated[Optional[str], typer.Argument(help="Suite name, e.g. ser-ravdess; omit to list suites (or give --config).")] = None,
          config: Annotated[Optional[Path], typer.Option(help="Run configuration (default: configs/<suite>.yaml). Alone, it runs any config: its suite field names the results; its data.corpus/data.root and protocol say what is run.")] = None,
          results: Annotated[Optional[Path], typer.Option(help="Folder for <suite>.json and .md (default: the config's output.results, else benchmarks/results).")] = None,
          quick: Annotated[bool, typer.Option("--quick", help="Smoke run: tiny subset, few epochs; results go to a 'quick' suite name.")] = False,
          ) -> None:
    """Run a benchmark suite from its committed config, or any config (--config FILE), and
    write its results JSON + Markdown.

    `emofuse bench --config FILE` runs the suite named by the config's `suite` field when one
    is registered, otherwise the generic runner of its modality (speech: any corpus and
    protocol; text: official split; face/text on folder or manifest data: speaker_kfold, loso,
    logo or random folds), on the corpus in data.corpus + data.root.
    """
    from .config import load_config
    from .evaluate.results import leaking_result, pinned_commit, results_to, write_result
    from .recipes import config_path, get_suite, list_suites, load_suite_config

    if name is None and config is None:
        t = Table("suite", "modality", "description")
        for s in list_suites():
            t.add_row(s.name, s.modality, s.description)
        out.print(t)
        return
    leaks: list[str] = []
    if name is None:
        from .recipes.own_data import run_config

        cfg = load_config(config)
        results = results or cfg.output.results or Path("benchmarks/results")
        with results_to(results, leaks), pinned_commit():
            result = run_config(cfg, quick=quick)
    else:
        s = get_suite(name)
        cfg = load_suite_config(config or config_path(name), name)
        results = results or cfg.output.results or Path("benchmarks/results")
        with results_to(results, leaks), pinned_commit():
            result = s.run(cfg, quick=quick)
    if quick:
        result["suite"] = f"{result['suite']}-quick"
    result = leaking_result(result, leaks)
    jpath, mpath = write_result(result, results)
    keys = [k for k in result["metrics"] if not k.endswith(("_s", "_ms"))][:6]
    out.print(f"[bold]{result['suite']}[/bold] ({result['protocol']}): " + "; ".join(
        f"{k} {100 * result['metrics'][k]['mean']:.2f} ± {100 * result['metrics'][k]['std']:.2f}"
        for k in keys), soft_wrap=True)
    out.print(f"wrote {jpath} and {mpath}", soft_wrap=True)


@app.command("train")
def train(config: Annotated[Optional[Path], typer.Option(help="Run configuration (YAML).")] = None,
          out_dir: Annotated[Optional[Path], typer.Option("--out", help="Model folder (default: output.dir of the config).")] = None,
          data: Annotated[Optional[Path], typer.Option(help="Your own data instead of --config: a folder with one sub-folder per class, a flat folder (with --label-regex), or a CSV/TSV manifest.")] = None,
          modality: Annotated[Optional[str], typer.Option(help="With --data: speech, face or text.")] = None,
          speaker_regex: Annotated[Optional[str], typer.Option(help="With --data FOLDER: read speakers from file paths ('prefix' = the <speaker>_ file-name prefix) for speaker-independent validation.")] = None,
          label_regex: Annotated[Optional[str], typer.Option(help="With --data FOLDER: read labels (and speakers) from file names: a regex with a named group 'label' (optionally 'speaker'), e.g. '^(?P<speaker>[A-Z]+)_(?P<label>[a-z]+)\\d+', or a preset: ravdess, cremad, savee, emodb, tess, speaker_label. Unmatched files are reported and skipped.")] = None,
          cv: Annotated[Optional[str], typer.Option("--cv", help="With --data: cross-validate the recipe before training the final model: loso, group-kfold (by speaker) or kfold (items). Writes cv.json, cv.md, cv-confusion.png into --out.")] = None,
          folds: Annotated[Optional[int], typer.Option("--folds", help="Folds K for --cv group-kfold or kfold (default 5).", min=2, max=100)] = None,
          epochs: Annotated[Optional[int], typer.Option(help="With --data: override the number of training epochs.", min=1, max=100_000)] = None,
          quick: Annotated[bool, typer.Option("--quick", help="Smoke run on a tiny subset.")] = False,
          ) -> None:
    """Train a model on a whole corpus (validation inside it) and save safetensors + card.

    Either a run configuration (--config), or your own data (--data with --modality), which
    trains the recipe of that modality's bundled model; the folder can then be used by
    `emofuse predict --model`, `emofuse serve --model` and `emofuse evaluate --model`.
    With --cv, the recipe is cross-validated first and the report goes into the model folder.
    A one-speaker corpus is trained with a within-speaker validation part and flagged
    speaker-dependent.
    """
    from rich.text import Text

    from .recipes import load_suite_config, train_model

    if (config is None) == (data is None):
        raise EmofuseError("give either --config FILE or --data DIR_OR_CSV (with --modality)")
    if data is None:
        if modality or speaker_regex or label_regex or epochs or cv or folds:
            raise EmofuseError("--modality, --speaker-regex, --label-regex, --epochs, --cv and "
                               "--folds go with --data; with --config, set them in the "
                               "configuration (or run `emofuse bench --config FILE`)")
        cfg = load_suite_config(config)
        path = train_model(cfg, out_dir=out_dir or cfg.output.dir, quick=quick)
        out.print(f"model saved to {path}", soft_wrap=True)
        return
    from .recipes.own_data import format_cv, normalise_cv, train_own_data

    if not modality or out_dir is None:
        raise EmofuseError("--data needs --modality (speech, face or text) and --out FOLDER")
    if folds is not None and cv is None:
        raise EmofuseError("--folds goes with --cv group-kfold or --cv kfold")
    if cv is not None:
        cv = normalise_cv(cv, folds)

    def line(console, style: str, head: str, text: str) -> None:
        console.print(Text.assemble((head, style), " ".join(str(text).split())),
                      soft_wrap=True, highlight=False)

    def warn(text: str) -> None:
        line(err, "yellow", "warning: ", text)

    def log(text: str) -> None:
        if not _state.quiet:
            out.print(Text(text), soft_wrap=True, highlight=False)

    def on_scan(own) -> None:
        for a in own.skipped:
            line(err, "yellow", "skipped: ", f"{a.path}: {a.reason}")
        for a in own.notes:
            if not _state.quiet:
                line(err, "cyan", "note: ", f"{a.path}: {a.reason}")
        spk = (f"{len(own.speakers)} speaker(s)" if own.speakers else "speakers unknown")
        log(f"{data}: {len(own.records)} items, {len(own.classes)} classes "
            f"({', '.join(own.classes)}), {spk}; {len(own.skipped)} file(s) skipped")

    outcome = train_own_data(data, modality, out_dir=out_dir, speaker_regex=speaker_regex,
                             label_regex=label_regex, max_epochs=epochs, cv=cv, folds=folds,
                             quick=quick, warn=warn, log=log, on_scan=on_scan)
    if outcome.cv is not None:
        for text in format_cv(outcome.cv):
            out.print(Text(text), soft_wrap=True, highlight=False)
        log("wrote " + ", ".join(str(p) for p in outcome.cv_files))
    if outcome.own.speaker_dependent:
        warn(f"the model is flagged speaker-dependent on its card (one speaker: "
             f"{', '.join(outcome.own.speakers)})")
    out.print(f"model saved to {outcome.path}", soft_wrap=True)


@app.command("evaluate")
def evaluate(model: Annotated[str, typer.Option(help="Bundled model name (speech, face, text, fusion) or a model folder.")],
             corpus: CorpusOpt, root: RootOpt = None,
             split: Annotated[Optional[str], typer.Option(help="Part of the corpus to score: its test split by default where it has one (test, PrivateTest), else all; 'all' scores everything.")] = None,
             as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
             ) -> None:
    """Measure a trained model on any corpus, in the labels both share.

    Prints the split scored, the classes scored and those dropped (with counts), and the
    chance level of what remains.
    """
    from collections import Counter

    from .corpora import load_corpus
    from .inference import model_path
    from .recipes import get_modality
    from .models.checkpoint import read_card

    model = model_path(model)
    card = read_card(model)
    modality = card.get("task") or card.get("modality")
    if not modality:
        raise EmofuseError(f"{model}: card.json does not say which modality the model is for")
    scan = load_corpus(corpus, root).require_items()
    need = {"speech": "audio", "face": "image", "text": "text"}.get(modality)
    have = {m for r in scan.records for m in r.modalities()}
    if need and have and need not in have and not (need == "image" and "video" in have):
        raise EmofuseError(f"{model} is a {modality} model but {scan.corpus} holds "
                           f"{', '.join(sorted(have))}, no {need}")
    records, split_name = _evaluation_split(scan.records, split, corpus=scan.corpus)
    labels = set(card.get("labels") or [])
    dropped = Counter(r.label for r in records if labels and r.label not in labels)
    res = get_modality(modality).evaluate(model, records, corpus=scan.corpus)
    res.setdefault("skipped", [])
    res["skipped"] = [a.to_dict() for a in scan.anomalies if a.skipped] + list(res["skipped"])
    classes = list(res.get("classes") or [])
    res["split"] = split_name
    res["dropped_classes"] = dict(sorted(dropped.items()))
    res["chance_ua"] = round(1.0 / len(classes), 6) if classes else None
    trained_on = (card.get("data") or {}).get("corpus")
    if trained_on and scan.corpus in str(trained_on).split("+") and split_name == "all":
        res["warning"] = (f"the model was trained on {trained_on}: scoring all of it includes "
                          "its training data")
    if as_json:
        print(json.dumps(res, ensure_ascii=False))
        return
    out.print(f"{model} on {scan.corpus} ({split_name}): {res['items']} items, "
              f"{len(res['skipped'])} skipped")
    out.print(f"classes scored: {', '.join(classes)}; chance UA "
              f"{100 * (res['chance_ua'] or 0):.1f} %")
    if dropped:
        out.print("dropped (not in the model): "
                  + ", ".join(f"{c} {n}" for c, n in sorted(dropped.items())))
    if res.get("warning"):
        err.print(f"[yellow]warning:[/yellow] {res['warning']}")
    for k, m in res["metrics"].items():
        out.print(f"  {k}: {100 * m['mean']:.2f}")


def _evaluation_split(records: list, split: str | None, *, corpus: str) -> tuple[list, str]:
    """The records to score: ``split`` by name (case-insensitive), ``all``, or by default the
    corpus' test split (``test``, else ``PrivateTest``), else all."""
    present = {}
    for r in records:
        if r.split:
            present.setdefault(r.split.lower(), r.split)
    if split is None:
        key = next((k for k in ("test", "privatetest") if k in present), None)
        if key is None:
            return list(records), "all"
        split = present[key]
    if split.lower() == "all":
        return list(records), "all"
    if split.lower() not in present:
        raise EmofuseError(f"{corpus} has no split {split!r}; its splits: "
                           + (", ".join(sorted(present.values())) or "none (use --split all)"))
    name = present[split.lower()]
    return [r for r in records if r.split == name], name


@app.command("report")
def report(results: Annotated[Path, typer.Option(help="Folder of result JSON files.")] = Path("benchmarks/results"),
           out_file: Annotated[Path, typer.Option("--out", help="Markdown report to write.")] = Path("docs/results.md"),
           ) -> None:
    """Collect every benchmark result into one Markdown report."""
    from .evaluate.results import collect_report

    path = collect_report(results, out_file)
    out.print(f"wrote {path}")


@app.command("demo")
def demo(examples: Annotated[Optional[Path], typer.Option(help="Folder of example files (default: the repository's examples/).")] = None,
         corpora: Annotated[bool, typer.Option(help="Also summarise the corpora under the data root.")] = False,
         root: Annotated[Optional[Path], typer.Option(help="Data root for --corpora (default $EMOFUSE_DATA or ../shared/data).")] = None) -> None:
    """The main job: predict emotions on the example files (speech, video, face image,
    sentence) with the bundled models."""
    from .inference import resolve_models

    from .paths import examples_dir

    ex = examples or examples_dir()
    if ex is None or not ex.is_dir():
        raise EmofuseError("no examples folder found: run from the repository root or pass "
                           "--examples DIR")
    models = resolve_models("default")
    out.print(f"emofuse {__version__}: bundled models "
              + ", ".join(f"{m.name} ({m.modality})" for m in models)
              + f"; examples in {ex}")
    media = sorted(p for p in ex.iterdir() if p.is_file() and p.suffix.lower() in
                   (".wav", ".flac", ".mp3", ".ogg", ".mp4", ".avi", ".webm", ".flv",
                    ".jpg", ".jpeg", ".png"))
    texts = sorted(ex.glob("*.txt"))
    from .cli_product import run_predict

    run_predict(files=media, text_file=texts[0] if texts else None)
    if corpora:
        _corpora_summary(root)


def _corpora_summary(root: Path | None) -> None:
    """Print the corpora found under the data root."""
    from .corpora import get_corpus, list_corpora
    from .paths import data_root

    base = root or data_root()
    out.print(f"corpora under {base}")
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


def _register_extensions() -> None:
    """Commands defined in other modules (``predict``, ``serve``, ``export``, ``augment``)."""

    from ._plugins import import_present

    for mod in ("cli_product", "cli_augment", "cli_live"):
        import_present(__package__, [mod])
        m = sys.modules.get(f"{__package__}.{mod}")
        if m is not None:
            m.register(app)


_register_extensions()


def _one_line_summaries(typer_app: typer.Typer) -> None:
    """Each command's entry in the command lists: the first paragraph of its docstring as one
    line (Typer's rich help keeps the docstring's line breaks there)."""
    for info in typer_app.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if info.short_help is None and doc:
            info.short_help = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _one_line_summaries(group.typer_instance)


_one_line_summaries(app)


#: Exit codes of every ``emofuse`` command (documented in the README).
EXIT_OK = 0        #: everything asked for was done
EXIT_PARTIAL = 1   #: some inputs failed (reported one per line), the others were predicted
EXIT_ERROR = 2     #: usage mistake, invalid input or configuration, or nothing was predicted
EXIT_INTERRUPTED = 130


def _error_line(message: str) -> None:
    """Print ``error: <message>`` as one line on stderr (no rich markup read from the text)."""
    from rich.text import Text

    msg = " ".join(str(message).split()) or "unknown error"
    err.print(Text.assemble(("error: ", "red"), msg), soft_wrap=True, highlight=False)


def _usage_error(exc: BaseException) -> int:
    """One line for a Click/Typer usage error (bad option, missing argument, unknown command)."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        out.print(ctx.get_help(), markup=False, highlight=False)
        return EXIT_ERROR
    try:
        msg = exc.format_message()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a message is all we need
        msg = str(exc)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else " (see 'emofuse --help')"
    _error_line(msg.rstrip(".") + hint)
    code = getattr(exc, "exit_code", EXIT_ERROR)
    return code if isinstance(code, int) and code != 0 else EXIT_ERROR


def _is_click_exception(exc: BaseException) -> bool:
    """Click's exceptions, whether from ``click`` itself or the copy that Typer bundles."""
    if isinstance(exc, typer.TyperException) and hasattr(exc, "format_message"):
        return True
    try:
        import click

        return isinstance(exc, click.ClickException)
    except ImportError:  # pragma: no cover - Typer without click
        return False


def run(argv: list[str] | None = None) -> int:
    """Run one ``emofuse`` command and return its exit code (see :data:`EXIT_OK` ...).

    Every failure ends in one line ``error: ...`` on stderr: emofuse errors name the file and
    the problem, usage mistakes name the option and the help command, and an unexpected error
    is reported as such (its traceback with ``-v``).
    """
    try:
        rv = app(args=argv, prog_name="emofuse", standalone_mode=False)
    except EmofuseError as exc:
        _error_line(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        err.print("interrupted")
        return EXIT_INTERRUPTED
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        return code if isinstance(code, int) else EXIT_ERROR
    except typer.Abort:
        err.print("aborted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place that turns everything into a line
        if _is_click_exception(exc):
            return _usage_error(exc)
        if isinstance(exc, OSError):  # a file the user named could not be read or written
            _error_line(f"{exc.filename + ': ' if getattr(exc, 'filename', None) else ''}"
                        f"{exc.strerror or exc}")
            return EXIT_ERROR
        if _state.verbose:
            import traceback

            traceback.print_exc()
        _error_line(f"internal error ({type(exc).__name__}: {exc}); please report it, "
                    "with the traceback that -v prints")
        return EXIT_ERROR
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else EXIT_OK


def main(argv: list[str] | None = None) -> None:
    """Console entry point: :func:`run` and exit with its code."""
    sys.stdout.flush()
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
