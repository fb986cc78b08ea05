"""The product commands of ``emofuse``: ``predict``, ``serve`` and ``export``.

:func:`register` adds them to the main Typer app (``emofuse.cli`` calls it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .cli_common import (QuietOpt, VerboseOpt, apply_threads, err, in_range, out,
                         set_verbosity, state, threads_option)
from .errors import EmofuseError

__all__ = ["register", "expand_inputs", "run_predict"]

ModelOpt = Annotated[list[str] | None, typer.Option(
    "--model", "-m", help="Bundled name (default, speech, face, text, fusion) or model folder; "
                          "repeat to combine.")]


def expand_inputs(paths: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to predict: files as given, folders walked recursively (media and ``.txt`` files
    only, sorted). Returns ``(files, problems)`` where a problem is ``(path, reason)``."""
    from .inference import MEDIA_EXTENSIONS

    known = frozenset().union(*MEDIA_EXTENSIONS.values())
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for p in paths:
        if p.is_dir():
            media = [f for f in p.rglob("*") if f.suffix.lower() in known
                     and not f.name.startswith(".")]
            found = sorted(f for f in media if f.is_file())
            problems += [(str(f), "broken symbolic link (its target does not exist)")
                         for f in sorted(media) if f.is_symlink() and not f.exists()]
            if not found:
                problems.append((str(p), "folder holds no audio, video, image or .txt file"))
            files += found
        elif p.exists():
            files.append(p)
        else:
            problems.append((str(p), "file does not exist"))
    return files, problems


def _fmt_probs(probs: dict[str, float], k: int = 3) -> str:
    return ", ".join(f"{lab} {100 * p:.0f}%" for lab, p in list(probs.items())[:k])


def _quote(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return f'"{text if len(text) <= n else text[: n - 1] + "…"}"'


def _print_table(results: list, *, latency: dict[str, float]) -> None:
    from .inference import Prediction

    t = Table("input", "emotion", "top probabilities", "modalities (weight: emotion)", "notes")
    t.columns[0].max_width = 46            # long sentences wrap; file names stay whole
    if latency:
        t.add_column("latency", no_wrap=True)
    for r in results:
        if not isinstance(r, Prediction):
            continue
        per = "\n".join(f"{m} {r.weights.get(m, 0):.2f}: {next(iter(p))}"
                        for m, p in r.modalities.items())
        notes = list(r.warnings)
        if r.faces and r.kind == "image":
            notes.insert(0, f"{len(r.faces)} face(s)")
        name = r.source if r.kind == "text" and not Path(r.source).is_file() \
            else Path(r.source).name
        verdict = f"[bold]{r.label}[/bold] {100 * r.confidence:.0f}%" + (
            "" if r.reliable else "\n[yellow]unreliable[/yellow]")
        row = [f"{name}\n[dim]{r.kind}[/dim]", verdict,
               _fmt_probs(r.probabilities), per, "\n".join(notes)]
        if latency:
            row.append(f"{latency.get(r.source, float('nan')):.1f} ms")
        t.add_row(*row)
    out.print(t)


def _print_timeline(r) -> None:
    if not r.timeline:
        return
    t = Table("start", "end", "modality", "emotion", "top probabilities",
              title=f"timeline of {Path(r.source).name}")
    for s in r.timeline:
        t.add_row(f"{s.start:.2f}", f"{s.end:.2f}", s.modality, s.label,
                  _fmt_probs(dict(sorted(s.probabilities.items(), key=lambda kv: -kv[1]))))
    out.print(t)


def run_predict(files: list[Path] | None = None, text: list[str] | None = None,
                text_file: Path | None = None, model: list[str] | None = None,
                as_json: bool = False, as_jsonl: bool = False, timeline: bool = False,
                plot: Path | None = None, segmentation: str = "vad", window: float = 3.0,
                frame_rate: float = 2.0, repeat: int = 0, threads: int | None = None,
                detect: str = "auto", jobs: int = 1, enrol: list[Path] | None = None,
                adapt: str = "none") -> None:
    """Predict emotions from files, folders or text; one bad file is reported and skipped.

    ``jobs`` > 1 predicts in that many worker processes (one thread each), in input order.
    ``enrol`` (recordings of the speaker) or ``adapt="folder"`` (the audio/video inputs
    themselves) give unlabelled statistics that the speech model standardises with."""
    from .inference import PredictionFailure, PredictOptions, Recognizer, resolve_models

    if as_json and as_jsonl:
        raise EmofuseError("choose one of --json and --jsonl")
    if plot is not None and not timeline:
        raise EmofuseError("--plot needs --timeline")
    if segmentation not in ("vad", "windows", "stream"):
        raise EmofuseError(f"--segmentation must be vad, windows or stream, not {segmentation!r}")
    apply_threads(threads)
    files = list(files or [])
    stdin_lines: list[str] = []
    if any(str(f) == "-" for f in files):
        files = [f for f in files if str(f) != "-"]
        stdin_lines = _stdin_lines()
    paths, problems = expand_inputs(files)
    items: list[tuple[object, str | None]] = [(p, None) for p in paths]
    items += [(t, "text") for t in text or []]
    if text_file is not None:
        from .media import read_lines

        if str(text_file) == "-":
            stdin_lines = stdin_lines or _stdin_lines()
        else:
            items += [(line, "text") for line in read_lines(text_file)]
    items += [(line, "text") for line in stdin_lines]
    if not items and not problems:
        raise EmofuseError("nothing to predict: give files, folders, --text or --text-file")
    if detect not in ("auto", "always", "never"):
        raise EmofuseError(f"--detect must be auto, always or never, not {detect!r}")
    for m in model or ["default"]:
        resolve_models(m)  # a wrong model name fails here, once, before any worker starts
    if enrol and adapt != "none":
        raise EmofuseError("choose one of --enrol and --adapt folder")
    speech_stats = _speech_stats(model or ["default"], paths, enrol=enrol, adapt=adapt)
    opts = PredictOptions(timeline=timeline, segmentation=segmentation,  # type: ignore[arg-type]
                          window=window, frame_rate=frame_rate, detect=detect)  # type: ignore[arg-type]
    results: list = [PredictionFailure(source=s, error=f"{s}: {why}", error_type="MediaError")
                     for s, why in problems]
    for r in results:
        _skipped_line(r.error)
        if as_jsonl:
            print(json.dumps(r.model_dump(mode="json"), ensure_ascii=False), flush=True)
    latency: dict[str, float] = {}

    def run_all() -> Iterator:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeRemainingColumn)

        show = len(items) > 1 and err.is_terminal and not state.quiet
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=err, transient=True,
                      disable=not show) as bar:
            task = bar.add_task("predicting", total=len(items))
            if jobs > 1 and len(items) > 1:
                results_iter = _pool_results(items, models=model or ["default"], opts=opts,
                                             repeat=repeat, jobs=jobs, stats=speech_stats)
            else:
                rec = Recognizer.load(*(model or ["default"]), options=opts)
                if speech_stats is not None:
                    rec.adapt_speech(speech_stats)
                results_iter = (_predict_item(rec, x, kind, repeat) for x, kind in items)
            for r, ms in results_iter:
                bar.update(task, description=f"predicting {Path(r.source).name[:40]}")
                if ms is not None:
                    latency[r.source] = ms
                bar.advance(task)
                yield r

    for r in run_all():
        results.append(r)
        if isinstance(r, PredictionFailure):
            _skipped_line(r.error)
        if as_jsonl:
            d = r.model_dump(mode="json")
            if r.source in latency:
                d["latency_ms"] = round(latency[r.source], 3)
            print(json.dumps(d, ensure_ascii=False), flush=True)
    good = [r for r in results if not isinstance(r, PredictionFailure)]
    if as_json:
        docs = []
        for r in results:
            d = r.model_dump(mode="json")
            if r.source in latency:
                d["latency_ms"] = round(latency[r.source], 3)
            docs.append(d)
        print(json.dumps(docs, ensure_ascii=False, indent=2))
    elif not as_jsonl and good:
        _print_table(results, latency=latency)
        if timeline:
            for r in good:
                _print_timeline(r)
    if plot is not None and timeline:
        from .inference.timeline import plot_timeline

        with_tl = [r for r in good if r.timeline]
        for r in with_tl:
            target = plot if len(with_tl) == 1 and plot.suffix.lower() == ".png" else \
                plot / f"{Path(r.source).stem}_timeline.png"
            written = plot_timeline(r, target)
            if not state.quiet:
                err.print(f"timeline plot: {written}")
    n_bad = len(results) - len(good)
    if n_bad and not (as_json or as_jsonl or state.quiet):
        err.print(f"{len(good)} predicted, {n_bad} skipped")
    if not good:
        raise typer.Exit(2)
    if n_bad:
        raise typer.Exit(1)


def _predict_item(rec, x, kind, repeat: int = 0) -> tuple[object, float | None]:
    """One input: its :class:`Prediction` or :class:`PredictionFailure`, and with ``repeat``
    the median latency (ms) of that many warm runs."""
    from .inference import PredictionFailure

    src = str(x) if kind != "text" else _quote(str(x))
    try:
        r = rec.predict(x, kind=kind, source=src if kind == "text" else None)
        if repeat > 0:
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                rec.predict(x, kind=kind)
                times.append(1000 * (time.perf_counter() - t0))
            return r, float(sorted(times)[len(times) // 2])
        return r, None
    except (EmofuseError, OSError) as exc:
        msg = str(exc) if Path(src).name in str(exc) else f"{src}: {exc}"
        return PredictionFailure(source=src, error=msg, error_type=type(exc).__name__), None
    except Exception as exc:  # noqa: BLE001 - one bad input never stops a batch
        if state.verbose:
            import traceback

            traceback.print_exc()
        return PredictionFailure(source=src, error=f"{src}: internal error "
                                 f"({type(exc).__name__}: {exc}); please report it",
                                 error_type="InternalError"), None


_WORKER: dict[str, object] = {}


def _worker_init(models: list[str], opts, verbose: bool, stats=None) -> None:
    """Load the models once per worker process (one CPU thread each)."""
    import signal

    from .inference import Recognizer

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    state.verbose = verbose
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - inference-only installs
        pass
    _WORKER["rec"] = Recognizer.load(*models, options=opts)
    if stats is not None:
        _WORKER["rec"].adapt_speech(stats)


def _worker_predict(item: tuple[object, str | None], repeat: int = 0):
    return _predict_item(_WORKER["rec"], item[0], item[1], repeat)


def _pool_results(items: list, *, models: list[str], opts, repeat: int, jobs: int,
                  stats=None) -> Iterator:
    """Results of ``items`` from ``jobs`` worker processes, in input order."""
    import functools
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the workers before they import torch
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                             initializer=_worker_init,
                             initargs=(models, opts, state.verbose, stats)) as pool:
        yield from pool.map(functools.partial(_worker_predict, repeat=repeat), items,
                            chunksize=1)


def _speech_stats(models: list[str], paths: list[Path], *, enrol: list[Path] | None,
                  adapt: str):
    """The speaker (``--enrol``) or source (``--adapt folder``) statistics of the speech
    model, computed once here (workers get them ready); ``None`` when not asked for."""
    if not enrol and adapt == "none":
        return None
    from .inference import Recognizer, detect_kind

    rec = Recognizer.load(*models)
    if "speech" not in rec.modalities:
        raise EmofuseError("--enrol and --adapt need a speech model")
    sp = rec.predictor("speech")
    if not getattr(sp, "adapts", False):
        raise EmofuseError("the speech model does not adapt to a speaker or source (its card "
                           "has no per-speaker normalisation); drop --enrol/--adapt")
    if enrol:
        audio, problems = expand_inputs(list(enrol))
        for src, why in problems:
            _skipped_line(f"{src}: {why}")
        mode = "enrol"
    else:
        audio, mode = paths, "folder"
    audio = [p for p in audio if _is_av(p, detect_kind)]
    if not audio and mode == "folder":
        return None       # no speech among the inputs: nothing to standardise
    if not audio:
        raise EmofuseError(f"--{'enrol' if enrol else 'adapt folder'}: no audio or video "
                           "recordings to take statistics from")
    stats = sp.speaker_stats(audio, mode=mode)
    if not state.quiet:
        err.print(f"speech standardised with the statistics of {stats.utterances} "
                  f"recording(s) ({'the speaker' if mode == 'enrol' else 'the inputs'})")
    return stats


def _is_av(path: Path, detect_kind) -> bool:
    try:
        return detect_kind(path)[0] in ("audio", "video")
    except EmofuseError:
        return False


def _choice(*allowed: str):
    """Typer callback: one of ``allowed``."""

    def check(value: str) -> str:
        if value not in allowed:
            raise typer.BadParameter(f"must be one of {', '.join(allowed)}, not {value!r}")
        return value

    return check


def _skipped_line(message: str) -> None:
    from rich.text import Text

    err.print(Text.assemble(("skipped ", "red"), " ".join(message.split())), soft_wrap=True,
              highlight=False)


#: The most text read from standard input (the same limit as a text file).
_MAX_STDIN_BYTES = 10_000_000


def _stdin_lines() -> list[str]:
    """Non-empty lines of standard input (``-`` as a file or ``--text-file -``)."""
    from .errors import MediaError
    from .media.text import decode_text

    if sys.stdin is None or sys.stdin.isatty():
        raise EmofuseError("'-' reads text from standard input, but nothing is piped in")
    data = sys.stdin.buffer.read(_MAX_STDIN_BYTES + 1)
    if len(data) > _MAX_STDIN_BYTES:
        raise MediaError("<stdin>", f"more than {_MAX_STDIN_BYTES} bytes of text")
    text = decode_text(data, "<stdin>")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise MediaError("<stdin>", "standard input holds no text")
    return lines


def register(app: typer.Typer) -> None:
    """Add ``predict``, ``serve`` and ``export`` to ``app``."""

    @app.command("predict")
    def predict(
        files: Annotated[list[Path] | None, typer.Argument(
            help="Audio, image, video or text files, or folders (walked recursively).")] = None,
        text: Annotated[list[str] | None, typer.Option(
            "--text", "-t", help="Text to classify (repeatable).")] = None,
        text_file: Annotated[Path | None, typer.Option(
            "--text-file", help="Classify each non-empty line of this file.")] = None,
        model: ModelOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
        as_jsonl: Annotated[bool, typer.Option("--jsonl", help="Print one JSON object per line.")] = False,
        timeline: Annotated[bool, typer.Option(
            "--timeline", help="Per-segment speech and per-frame face predictions.")] = False,
        plot: Annotated[Path | None, typer.Option(
            help="With --timeline: PNG to write (a folder when several inputs).")] = None,
        segmentation: Annotated[str, typer.Option(
            help="Speech segments for the timeline: vad (silero-vad) or windows; stream: the "
                 "timeline of `emofuse live` (an update every 0.5 s: speech, face, fused).",
            callback=_choice("vad", "windows", "stream"))] = "vad",
        window: Annotated[float, typer.Option(
            help="Window length in seconds (windows), 0.5 to 60.",
            callback=in_range(0.5, 60.0, unit=" s"))] = 3.0,
        frame_rate: Annotated[float, typer.Option(
            help="Video frames per second for faces, up to 30.",
            callback=in_range(0.0, 30.0, lo_open=True))] = 2.0,
        repeat: Annotated[int, typer.Option(
            help="Time N warm predictions per input and report the median latency.",
            min=0, max=1000)] = 0,
        threads: Annotated[int | None, typer.Option(
            help="CPU threads (1 to the machine's cores).", callback=threads_option)] = None,
        detect: Annotated[str, typer.Option(
            help="Face detection: auto (images of at most 96 px are taken as face crops, as "
                 "FER2013 is; larger ones are searched for faces), always, never (the whole "
                 "image is the face).", callback=_choice("auto", "always", "never"))] = "auto",
        jobs: Annotated[int, typer.Option(
            "--jobs", "-j", help="Worker processes (1 to the machine's cores), one thread each.",
            callback=threads_option)] = 1,
        enrol: Annotated[list[Path] | None, typer.Option(
            "--enrol", help="Other recordings (files or a folder) of the speaker being "
                            "predicted, unlabelled: speech is standardised with that speaker's "
                            "statistics (models that adapt, like the bundled one).")] = None,
        adapt: Annotated[str, typer.Option(
            help="none, or folder: standardise speech with the statistics of all the audio and "
                 "video inputs of this run (one source, e.g. one corpus or call centre).",
            callback=_choice("none", "folder"))] = "none",
        quiet: QuietOpt = False,
        verbose: VerboseOpt = False,
    ) -> None:
        """Predict emotions from files, folders or text; one bad file is reported and skipped.

        `-` reads text lines from standard input. Exit code 0 when every input was predicted,
        1 when some failed (each reported on stderr), 2 when none was.
        """
        set_verbosity(quiet=quiet, verbose=verbose)
        run_predict(files=files, text=text, text_file=text_file, model=model, as_json=as_json,
                    as_jsonl=as_jsonl, timeline=timeline, plot=plot, segmentation=segmentation,
                    window=window, frame_rate=frame_rate, repeat=repeat, threads=threads,
                    detect=detect, jobs=jobs, enrol=enrol, adapt=adapt)

    @app.command("serve")
    def serve(
        model: ModelOpt = None,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port.", min=0, max=65535)] = 8000,
        max_upload_mb: Annotated[float, typer.Option(
            help="Largest upload accepted (MB).", callback=in_range(0.0, 2048.0, lo_open=True))] = 50.0,
        timeout: Annotated[float, typer.Option(
            help="Longest a request waits for its prediction, queueing included (s); a "
                 "prediction over it is stopped (504).",
            callback=in_range(0.0, 3600.0, lo_open=True))] = 60.0,
        workers: Annotated[int | None, typer.Option(
            help="Worker processes predicting files at once, each with its own models.",
            show_default="min(2, cores)", min=1, max=64)] = None,
        queue: Annotated[int, typer.Option(
            help="Requests that may wait for a busy worker; more get 503 with Retry-After.",
            min=0, max=10_000)] = 64,
        read_timeout: Annotated[float, typer.Option(
            help="Longest wait for a request's headers, and for each piece of its body (s; "
                 "408 after).", callback=in_range(0.0, 600.0, lo_open=True))] = 10.0,
        docs: Annotated[bool, typer.Option(
            "--docs/--no-docs", help="Serve /docs (offline) and /openapi.json.")] = True,
        threads: Annotated[int | None, typer.Option(
            help="CPU threads per worker (1 to the machine's cores).",
            show_default="the cores shared out among the workers",
            callback=threads_option)] = None,
    ) -> None:
        """Serve the models over HTTP (POST /predict, GET /health, GET /models) with a web page."""
        from .serve import create_app
        from .serve.server import run as run_server

        apply_threads(threads)
        t0 = time.perf_counter()
        app_ = create_app(model or ["default"], max_upload_mb=max_upload_mb, timeout_s=timeout,
                          workers=workers, queue=queue, read_timeout_s=read_timeout, docs=docs,
                          threads=threads)
        n = app_.state.limits["workers"]
        err.print(f"models loaded in {time.perf_counter() - t0:.1f} s by {n} worker "
                  f"process{'es' if n != 1 else ''}; page at http://{host}:{port}/")
        run_server(app_, host=host, port=port, log_level="info")

    @app.command("export")
    def export(
        model: Annotated[str, typer.Option(
            "--model", "-m", help="Bundled name (default, speech, face, text) or model folder.")] = "default",
        fmt: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
        out_dir: Annotated[Path, typer.Option("--out", help="Folder for the exported files.")] = Path("exported"),
        opset: Annotated[int, typer.Option(help="ONNX opset.", min=7, max=23)] = 17,
        check: Annotated[bool, typer.Option(help="Compare onnxruntime with PyTorch (1e-4).")] = True,
        as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
    ) -> None:
        """Export models to ONNX and check that onnxruntime gives PyTorch's probabilities."""
        from .export import export_models

        if fmt.lower() != "onnx":
            raise EmofuseError(f"unknown export format {fmt!r}; supported: onnx")
        reports = export_models(model, out_dir, opset=opset, check=check)
        if as_json:
            print(json.dumps([r.to_dict() for r in reports], indent=2))
        else:
            t = Table("modality", "model", "file", "max |Δp| vs PyTorch", "status")
            for r in reports:
                t.add_row(r.modality, r.name, str(r.path or "–"),
                          "–" if r.max_abs_diff is None else f"{r.max_abs_diff:.2e}",
                          r.skipped or ("ok" if r.ok else "unchecked"))
            out.print(t)
        if not any(r.path for r in reports):
            raise typer.Exit(2)

