"""``emofuse live``: emotion from the microphone and the webcam, or from a file replayed at
real-time speed, as it happens.

:func:`register` adds the command to the main Typer app (``emofuse.cli`` calls it). The
microphone is read with ``sounddevice`` (PortAudio; the optional ``live`` extra), the webcam
with OpenCV; a machine without them gets one line and exit code 2.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_common import (QuietOpt, VerboseOpt, apply_threads, err, in_range, out,
                         set_verbosity, state, threads_option)
from .errors import EmofuseError
from .media.limits import SPEECH_SR

__all__ = ["register", "find_devices", "Devices", "NoDeviceError"]


class NoDeviceError(EmofuseError):
    """No microphone or camera to read from."""


class Devices:
    """What this machine offers: a default microphone (and its rate) and a camera."""

    def __init__(self) -> None:
        self.mic_rate: int | None = None
        self.mic_problem: str | None = None
        self.camera: Any = None
        self.camera_problem: str | None = None


def _microphone(device: str | None) -> tuple[int | None, str | None]:
    """(default input rate, None) or (None, why there is no microphone)."""
    try:
        import sounddevice as sd
    except ImportError:
        return None, "the sounddevice package is not installed (pip install 'emofuse[live]')"
    except OSError as exc:  # the package is there, PortAudio is not
        return None, f"PortAudio is not available ({exc}; apt-get install libportaudio2)"
    try:
        info = sd.query_devices(device=_device(device), kind="input")
    except Exception as exc:  # noqa: BLE001 - PortAudio reports "no device" in many ways
        return None, f"no microphone ({exc})"
    rate = int(info.get("default_samplerate") or SPEECH_SR)
    if int(info.get("max_input_channels") or 0) < 1:
        return None, f"device {info.get('name')!r} has no input channel"
    return rate, None


def _device(device: str | None) -> Any:
    if device is None:
        return None
    return int(device) if device.isdigit() else device


def _camera(index: int) -> tuple[Any, str | None]:
    """(an opened cv2.VideoCapture, None) or (None, why there is no camera)."""
    import os

    if not Path(f"/dev/video{index}").exists() and sys.platform.startswith("linux"):
        return None, f"no camera (/dev/video{index} does not exist)"
    import cv2

    prev = os.environ.get("OPENCV_LOG_LEVEL")
    os.environ["OPENCV_LOG_LEVEL"] = "ERROR"
    try:
        cap = cv2.VideoCapture(index)
    finally:
        if prev is None:
            os.environ.pop("OPENCV_LOG_LEVEL", None)
    if not cap.isOpened():
        cap.release()
        return None, f"camera {index} cannot be opened"
    ok, _ = cap.read()
    if not ok:
        cap.release()
        return None, f"camera {index} gives no picture"
    return cap, None


def find_devices(*, audio: bool = True, video: bool = True, mic: str | None = None,
                 camera: int = 0) -> Devices:
    """Look for the microphone and the camera asked for (nothing is recorded yet)."""
    d = Devices()
    if audio:
        d.mic_rate, d.mic_problem = _microphone(mic)
    if video:
        d.camera, d.camera_problem = _camera(camera)
    return d


def _bar(p: float, n: int = 10) -> str:
    k = max(0, min(n, int(round(p * n))))
    return "█" * k + "·" * (n - k)


def _line(u: Any) -> Any:
    """The one-line live view of an update (rich Text)."""
    from rich.text import Text

    from .palette import color

    t = Text()
    t.append(f"{u.time:7.1f} s  ", style="dim")
    if u.label is None:
        t.append("listening…".ljust(22), style="dim")
    else:
        t.append(f"{u.label:<10}", style=f"bold {color(u.label)}")
        t.append(f" {_bar(u.confidence)} {100 * u.confidence:3.0f}%  ")
    for m in ("speech", "face"):
        p = u.modalities.get(m)
        if p:
            lab = next(iter(p))
            t.append(f"{m} ", style="dim")
            t.append(f"{lab} {100 * p[lab]:.0f}%  ", style=color(lab))
    t.append(f"voice {_bar(u.voice, 5)} ", style="dim")
    c = u.counters
    if c.get("frames_received"):
        t.append(f"frames {int(c['frames_processed'])}/{int(c['frames_received'])} "
                 f"({int(c['frames_dropped'])} dropped) ", style="dim")
    if u.lag_ms is not None:
        t.append(f"lag {u.lag_ms:.0f} ms", style="dim")
    return t


def _summary(updates: list, *, started: float, stream: Any, compare: dict | None) -> dict:
    labels = Counter(u.label or "no signal" for u in updates)
    lags = sorted(u.lag_ms for u in updates if u.lag_ms is not None)
    n = len(updates)
    s: dict[str, Any] = {
        "type": "summary", "stream_s": round(updates[-1].time, 3) if updates else 0.0,
        "wall_s": round(time.perf_counter() - started, 3), "updates": n,
        "modalities": list(stream.modalities),
        "labels": {k: round(v / n, 4) for k, v in labels.most_common()} if n else {},
        "counters": dict(updates[-1].counters) if updates else dict(stream.counters),
    }
    if lags:
        s["lag_ms_p50"] = lags[len(lags) // 2]
        s["lag_ms_p95"] = lags[min(len(lags) - 1, int(0.95 * len(lags)))]
    if compare is not None:
        s["offline_agreement"] = compare
    return s


def _print_summary(s: dict, console: Any) -> None:
    from rich.table import Table

    c = s["counters"]
    console.print(f"[bold]live summary[/bold]: {s['stream_s']:.1f} s of stream in "
                  f"{s['wall_s']:.1f} s, {s['updates']} updates "
                  f"({', '.join(s['modalities'])})", soft_wrap=True)
    t = Table("emotion", "share of updates")
    for k, v in s["labels"].items():
        t.add_row(k, f"{100 * v:.0f}%")
    console.print(t)
    parts = [f"audio {c.get('audio_s', 0):.1f} s",
             f"frames {int(c.get('frames_processed', 0))} processed of "
             f"{int(c.get('frames_received', 0))} ({int(c.get('frames_dropped', 0))} dropped, "
             f"{int(c.get('frames_without_face', 0))} without a face)",
             f"hops merged {int(c.get('hops_merged', 0))}",
             f"speech model runs {int(c.get('speech_runs', 0))}"]
    if "lag_ms_p95" in s:
        parts.append(f"lag p50 {s['lag_ms_p50']:.0f} ms, p95 {s['lag_ms_p95']:.0f} ms")
    console.print("; ".join(parts), soft_wrap=True, highlight=False)
    if s.get("offline_agreement"):
        a = s["offline_agreement"]
        console.print(f"same label as the offline replay on {100 * a['agreement']:.1f} % of "
                      f"{a['hops']} hops", soft_wrap=True)


def run_live(*, source: Path | None = None, speed: float = 1.0, duration: float | None = None,
             as_jsonl: bool = False, audio: bool = True, video: bool = True,
             mic: str | None = None, camera: int = 0, model: list[str] | None = None,
             hop: float = 0.5, window: float = 3.0, frame_rate: float = 10.0,
             offline: bool = False, compare: bool = False, threads: int | None = None) -> dict:
    """The ``emofuse live`` command; returns its summary."""
    from .inference import (Recognizer, Stream, StreamOptions, agreement, media_events, play,
                            replay)

    if not (audio or video):
        raise EmofuseError("--no-audio and --no-video leave nothing to listen to or watch")
    if source is None and (offline or compare):
        raise EmofuseError("--offline and --compare replay a file: give --source FILE")
    if source is not None and not source.exists():
        raise EmofuseError(f"{source}: file does not exist")
    apply_threads(threads)
    devices = None
    if source is None:  # look for devices before loading any model
        devices = find_devices(audio=audio, video=video, mic=mic, camera=camera)
        if devices.mic_rate is None and devices.camera is None:
            why = "; ".join(p for p in (devices.mic_problem, devices.camera_problem) if p)
            raise NoDeviceError(f"no microphone or camera to read from ({why}); replay a "
                                "file instead: emofuse live --source FILE")
        if not state.quiet:
            for p in (devices.mic_problem, devices.camera_problem):
                if p:
                    err.print(f"[yellow]note:[/yellow] {p}", soft_wrap=True)
    modalities = [m for m, on in (("speech", audio), ("face", video)) if on]
    if source is not None:
        from .inference import KIND_MODALITIES, detect_kind

        kind, _ = detect_kind(source)
        if kind not in ("audio", "video"):
            raise EmofuseError(f"{source}: a live source must be audio or video, not {kind}")
        modalities = [m for m in modalities if m in KIND_MODALITIES[kind]]
        if not modalities:
            raise EmofuseError(f"{source}: {kind} gives nothing to "
                               + ("listen to with --no-audio" if kind == "audio" else
                                  "use with --no-audio --no-video"))
    if devices is not None:
        modalities = [m for m in modalities if (m == "speech" and devices.mic_rate)
                      or (m == "face" and devices.camera is not None)]
    opts = StreamOptions(hop=hop, window=window, frame_rate=frame_rate)
    rec = Recognizer.load(*(model or ["default"]))
    updates: list = []
    view = None
    show = not state.quiet and (err.is_terminal if as_jsonl else out.is_terminal)
    console = err if as_jsonl else out
    lock = threading.Lock()

    def emit(u: Any) -> None:
        with lock:
            updates.append(u)
            if as_jsonl:
                print(json.dumps(u.model_dump(mode="json"), ensure_ascii=False), flush=True)
            if view is not None:
                view.update(_line(u))
            elif not as_jsonl and not state.quiet:
                console.print(_line(u), soft_wrap=True, highlight=False)

    if offline:
        stream = Stream(rec, opts, modalities=modalities)
        started = time.perf_counter()
        events = media_events(source, frame_rate=frame_rate, modalities=stream.modalities)
        if duration is not None:
            events = (e for e in events if e[0] <= duration + 1e-9)
        for u in replay(rec, events, options=opts, modalities=stream.modalities):
            emit(u)
        return _summary(updates, started=started, stream=stream, compare=None)

    stream = Stream(rec, opts, modalities=modalities)  # loads and warms the models
    started = time.perf_counter()
    from rich.live import Live

    live_ctx = Live(console=console, refresh_per_second=8, transient=False) if show else None
    stop = threading.Event()
    interrupted = False
    try:
        if live_ctx is not None:
            view = live_ctx.__enter__()
        stream.start(emit, on_error=lambda m: err.print(f"[yellow]warning:[/yellow] {m}",
                                                        soft_wrap=True, highlight=False))
        try:
            if source is not None:
                events = media_events(source, frame_rate=frame_rate,
                                      modalities=stream.modalities)
                if duration is not None:
                    events = (e for e in events if e[0] <= duration + 1e-9)
                play(stream, events, speed=speed, stop=stop)
            else:
                _capture(stream, devices, mic=mic, duration=duration, stop=stop)
        except KeyboardInterrupt:  # Ctrl-C ends a live run: the summary still comes
            interrupted = True
    finally:
        stop.set()
        stream.stop()
        if devices is not None and devices.camera is not None:
            devices.camera.release()
        if live_ctx is not None:
            live_ctx.__exit__(None, None, None)
    result = None
    if compare and not interrupted:
        events = media_events(source, frame_rate=frame_rate, modalities=stream.modalities)
        if duration is not None:
            events = (e for e in events if e[0] <= duration + 1e-9)
        result = agreement(updates, replay(rec, events, options=opts,
                                           modalities=stream.modalities))
    summary = _summary(updates, started=started, stream=stream, compare=result)
    summary["interrupted"] = interrupted
    return summary


def _capture(stream: Any, devices: Any, *, mic: str | None, duration: float | None,
             stop: threading.Event) -> None:
    """Read the microphone (a PortAudio callback) and the camera (a thread) into ``stream``
    until ``duration`` seconds have passed, or Ctrl-C."""
    t0 = time.perf_counter()
    threads = []
    mic_stream = None
    if devices.mic_rate and "speech" in stream.modalities:
        import sounddevice as sd

        rate = devices.mic_rate

        def callback(indata, frames, when, status) -> None:  # noqa: ARG001 - PortAudio's API
            stream.push_audio(indata[:, 0].copy(), rate)

        mic_stream = sd.InputStream(samplerate=rate, channels=1, dtype="float32",
                                    blocksize=max(1, rate // 20), device=_device(mic),
                                    callback=callback)
        mic_stream.start()
    if devices.camera is not None and "face" in stream.modalities:
        import cv2

        cap = devices.camera

        def grab() -> None:
            while not stop.is_set():
                ok, bgr = cap.read()
                if not ok:
                    err.print("[yellow]warning:[/yellow] the camera stopped giving pictures")
                    return
                stream.push_frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                                  time.perf_counter() - t0)

        th = threading.Thread(target=grab, name="emofuse-camera", daemon=True)
        th.start()
        threads.append(th)
    try:
        while not stop.is_set():
            if duration is not None and time.perf_counter() - t0 >= duration:
                break
            stop.wait(0.1)
    finally:
        stop.set()
        if mic_stream is not None:
            mic_stream.stop()
            mic_stream.close()
        for th in threads:
            th.join(timeout=5)


def register(app: typer.Typer) -> None:
    """Add ``live`` to ``app``."""

    @app.command("live")
    def live(
        source: Annotated[Path | None, typer.Option(
            "--source", "-s", help="Replay an audio or video file at real-time speed instead "
                                   "of the microphone and camera.")] = None,
        speed: Annotated[float, typer.Option(
            help="With --source: replay this many times faster than real time (0.1 to 100).",
            callback=in_range(0.1, 100.0))] = 1.0,
        duration: Annotated[float | None, typer.Option(
            help="Stop after this many seconds of stream.",
            callback=in_range(0.0, 86_400.0, lo_open=True, unit=" s"))] = None,
        as_jsonl: Annotated[bool, typer.Option(
            "--jsonl", help="Print one JSON object per update (the summary goes to stderr).")] = False,
        audio: Annotated[bool, typer.Option(
            "--audio/--no-audio", help="Use the microphone (the file's sound).")] = True,
        video: Annotated[bool, typer.Option(
            "--video/--no-video", help="Use the camera (the file's frames).")] = True,
        mic: Annotated[str | None, typer.Option(
            help="Microphone: a PortAudio device index or name (default: the system's).")] = None,
        camera: Annotated[int, typer.Option(help="Camera index.", min=0, max=63)] = 0,
        model: Annotated[list[str] | None, typer.Option(
            "--model", "-m", help="Bundled name (default, speech, face, fusion) or model folder; "
                                  "repeat to combine.")] = None,
        hop: Annotated[float, typer.Option(
            help="Seconds between updates (0.1 to 10).", callback=in_range(0.1, 10.0))] = 0.5,
        window: Annotated[float, typer.Option(
            help="Seconds of audio classified for speech (0.5 to 30).",
            callback=in_range(0.5, 30.0))] = 3.0,
        frame_rate: Annotated[float, typer.Option(
            help="With --source: video frames per second fed (0.1 to 60).",
            callback=in_range(0.1, 60.0))] = 10.0,
        offline: Annotated[bool, typer.Option(
            "--offline", help="With --source: as fast as possible, every frame processed (the "
                              "offline timeline that a live run should match).")] = False,
        compare: Annotated[bool, typer.Option(
            "--compare", help="With --source: also replay offline and report how often the "
                              "live label was the same.")] = False,
        threads: Annotated[int | None, typer.Option(
            help="CPU threads (1 to the machine's cores).", callback=threads_option)] = None,
        quiet: QuietOpt = False,
        verbose: VerboseOpt = False,
    ) -> None:
        """Live emotion from the microphone and webcam (or a file replayed in real time): a
        one-line view updated every hop, and a summary at the end (Ctrl-C ends a run).

        Exit code 0 at the end of --duration or of the file, 130 after Ctrl-C (the summary is
        printed), 2 when there is no microphone or camera (or no file).
        """
        set_verbosity(quiet=quiet, verbose=verbose)
        s = run_live(source=source, speed=speed, duration=duration, as_jsonl=as_jsonl,
                     audio=audio, video=video, mic=mic, camera=camera, model=model, hop=hop,
                     window=window, frame_rate=frame_rate, offline=offline, compare=compare,
                     threads=threads)
        if not state.quiet:
            _print_summary(s, err if as_jsonl else out)
        if s.get("interrupted"):
            raise typer.Exit(130)  # Ctrl-C: summary printed, exit code of an interruption
