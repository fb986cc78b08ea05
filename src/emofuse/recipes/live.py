"""The ``live-latency`` suite: how a live stream (:mod:`emofuse.inference.stream`) keeps up
on a CPU.

The source is ``examples/video.mp4`` (3.3 s: a face throughout, silence then a sentence) looped
back to back: 16 kHz audio in 50 ms chunks, as a microphone delivers them, and frames at 10
per second, each pushed when the wall clock reaches its time
(:func:`emofuse.inference.stream_files.play`).

* one stream at real-time speed (``single_s`` seconds): the wall time between updates, the
  audio lag (receiving the chunk that completes a hop -> the update that includes it; and for
  every chunk, receiving it -> the first update that includes it, which adds the wait for the
  end of its hop), face frames processed and dropped per second, and the agreement of the live
  labels with the offline timeline (the same stream code on every frame, as fast as it goes);
* a long stream (``long_s`` seconds of stream, replayed ``long_speed`` times faster than real
  time): resident memory growth after the first minute, and the largest gap between two
  updates (stream time and wall time x speed);
* ``concurrent`` streams at once at real-time speed (``concurrent_s`` seconds each), sharing
  the models as the service's streams do: the largest gap between two updates of any stream;
  one more stream is refused by the same :class:`~emofuse.inference.stream_parts.StreamSlots`
  that the
  ``/stream`` WebSocket uses.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from ..config import Params
from ..errors import DataError
from ._suite import Suite

__all__ = ["LiveLatency", "LiveParams", "live_latency"]


class LiveParams(Params):
    """``model.params`` of ``live-latency`` (a quick run shortens the three streams)."""

    #: seconds of the one real-time stream
    single_s: float = Field(default=60.0, gt=0)
    #: seconds of the long stream
    long_s: float = Field(default=600.0, gt=0)
    #: replay speed of the long stream (x real time)
    long_speed: float = Field(default=1.0, gt=0)
    #: streams run at once (one more is refused)
    concurrent: int = Field(default=4, ge=1)
    #: seconds of each concurrent stream
    concurrent_s: float = Field(default=30.0, gt=0)
    #: stream hop, speech window (s) and face frames per second
    hop: float = Field(default=0.5, gt=0)
    window: float = Field(default=3.0, gt=0)
    frame_rate: float = Field(default=10.0, gt=0)
    #: other speech waits (s) the one-stream run is repeated with
    speech_waits_extra: list[float] = Field(default_factory=list)


def _stats(values: list[float]) -> dict[str, Any]:
    vals = [float(v) for v in values] or [float("nan")]
    return {"mean": float(statistics.median(vals)),
            "std": float(statistics.pstdev(vals)) if len(vals) > 1 else 0.0,
            "per_fold": [round(v, 4) for v in vals[:200]]}


def _one(v: float) -> dict[str, Any]:
    return {"mean": float(v), "std": 0.0, "per_fold": [round(float(v), 4)]}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return float(s[min(len(s) - 1, int(q * len(s)))])


def _rss_mb() -> float:
    """Resident memory of this process (Linux /proc; NaN elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _looped(base: list[tuple[float, str, Any]], period: float, total_s: float):
    """``base`` events repeated every ``period`` seconds up to ``total_s``."""
    k = 0
    while True:
        off = k * period
        for t, kind, payload in base:
            if off + t > total_s + 1e-9:
                return
            yield round(off + t, 6), kind, payload
        k += 1


class _Recorder:
    """Updates of a live stream with their wall times, and the audio chunks pushed."""

    def __init__(self) -> None:
        self.updates: list[Any] = []
        self.walls: list[float] = []
        self.chunks: list[tuple[float, float]] = []
        self.lock = threading.Lock()
        self.stopped = float("inf")  # wall time the input ended (stop() makes the last ones)

    def on_update(self, u: Any) -> None:
        with self.lock:
            self.updates.append(u)
            self.walls.append(time.perf_counter())

    def on_push(self, t: float, kind: str, wall: float) -> None:
        if kind == "audio":
            self.chunks.append((t, wall))

    def intervals(self) -> list[float]:
        """Wall time between updates while the input ran (not the last one, made by stop())."""
        walls = [w for w in self.walls if w <= self.stopped]
        return [b - a for a, b in zip(walls, walls[1:])] or [float("nan")]

    def stream_gaps(self) -> list[float]:
        ups = [u for u, w in zip(self.updates, self.walls) if w <= self.stopped]
        return [b.time - a.time for a, b in zip(ups, ups[1:])] or [float("nan")]

    def chunk_lags_ms(self) -> list[float]:
        """For every chunk: receiving it -> the first update that includes it (its hop, and
        for speech an answer computed on a window that reaches it)."""
        covered = [u.time if not u.speech_active else (u.speech_time or -1.0)
                   for u in self.updates]
        out, j = [], 0
        for t, wall in self.chunks:
            while j < len(self.updates) and (self.updates[j].time < t - 1e-6
                                             or covered[j] < t - 1e-6):
                j += 1
            if j < len(self.updates):
                out.append(1000 * (self.walls[j] - wall))
        return out

    def late_share(self) -> float:
        """Updates that showed an older speech answer than their hop's."""
        active = [u for u in self.updates if u.speech_active]
        late = [u for u in active if (u.speech_time or -1.0) < u.time - 1e-6]
        return len(late) / len(self.updates) if self.updates else 0.0


def _run_live(rec: Any, opts: Any, events: Any, *, speed: float = 1.0,
              sample_rss: list | None = None) -> tuple[_Recorder, Any, float]:
    from ..inference.stream import Stream
    from ..inference.stream_files import play

    r = _Recorder()
    stream = Stream(rec, opts).start(r.on_update)
    stop = threading.Event()
    sampler = None
    if sample_rss is not None:
        def sample() -> None:
            t0 = time.perf_counter()
            while not stop.wait(5.0):
                sample_rss.append((time.perf_counter() - t0, _rss_mb()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    t0 = time.perf_counter()
    play(stream, events, speed=speed, on_push=r.on_push)
    r.stopped = time.perf_counter()
    stream.stop()
    wall = time.perf_counter() - t0
    stop.set()
    if sampler is not None:
        sampler.join()
    return r, stream, wall


class LiveLatency(Suite, name="live-latency", modality="fusion", params={"model": LiveParams}):
    """Live streams on CPU: update cadence, audio lag, face frames per second, live vs offline
    labels, a long stream, concurrent streams"""

    def body(self) -> dict[str, Any]:
        from ..evaluate.results import build_result
        from ..inference import Recognizer
        from ..paths import examples_dir
        from ..inference.stream_files import agreement, media_events, replay
        from ..inference.stream_parts import StreamOptions, StreamSlots, TooManyStreams

        cfg, p = self.cfg, self.p
        single_s = 8.0 if self.quick else p.single_s
        long_s = 20.0 if self.quick else p.long_s
        long_speed = p.long_speed
        n_conc = p.concurrent
        conc_s = 5.0 if self.quick else p.concurrent_s
        opts = StreamOptions(hop=p.hop, window=p.window, frame_rate=p.frame_rate)
        ex = Path(cfg.data.root) if cfg.data.root else examples_dir()
        if ex is None or not (ex / "video.mp4").is_file():
            raise DataError(ex, "the examples folder (video.mp4) was not found")
        rec = Recognizer.load("default")
        base = list(media_events(ex / "video.mp4", frame_rate=opts.frame_rate, chunk_s=0.05))
        period = max(t for t, k, _ in base if k == "audio")
        metrics: dict[str, Any] = {}
        extra: dict[str, Any] = {}

        # 1. one stream at real-time speed
        r, stream, wall = _run_live(rec, opts, _looped(base, period, single_s))
        c = r.updates[-1].counters
        iv = r.intervals()
        lags = [u.lag_ms for u in r.updates if u.lag_ms is not None]
        chunk_lags = r.chunk_lags_ms()
        metrics["update_interval_s"] = _stats(iv)
        metrics["update_interval_p95_s"] = _one(_pct(iv, 0.95))
        metrics["update_interval_max_s"] = _one(max(iv))
        metrics["hop_updates_share"] = _one(len(r.updates) / max(1.0, single_s / opts.hop))
        metrics["audio_lag_ms"] = _stats(lags)
        metrics["audio_lag_p95_ms"] = _one(_pct(lags, 0.95))
        metrics["audio_lag_every_chunk_p95_ms"] = _one(_pct(chunk_lags, 0.95))
        metrics["speech_answer_late_share"] = _one(r.late_share())
        metrics["face_frames_processed_per_s"] = _one(c["frames_processed"] / single_s)
        metrics["face_frames_dropped_per_s"] = _one(c["frames_dropped"] / single_s)
        extra["single"] = {"stream_s": single_s, "wall_s": round(wall, 2),
                           "updates": len(r.updates), "counters": c}
        t0 = time.perf_counter()
        offline = replay(rec, _looped(base, period, single_s), options=opts)
        extra["single"]["offline_replay_s"] = round(time.perf_counter() - t0, 2)
        a = agreement(r.updates, offline)
        metrics["live_offline_agreement"] = _one(a["agreement"])
        extra["single"]["agreement"] = a
        extra["single"]["labels_live"] = [u.label for u in r.updates]
        extra["single"]["labels_offline"] = [u.label for u in offline]

        # 1b. the same stream with other speech waits: the lag / agreement trade-off
        for w in ([] if self.quick else p.speech_waits_extra):
            ow = StreamOptions(**{**opts.__dict__, "speech_wait": w})
            rw, _, _ = _run_live(rec, ow, _looped(base, period, single_s))
            key = f"wait{int(round(1000 * float(w)))}ms"
            lw = [u.lag_ms for u in rw.updates if u.lag_ms is not None]
            metrics[f"live_offline_agreement_{key}"] = _one(
                agreement(rw.updates, offline)["agreement"])
            metrics[f"audio_lag_p95_{key}_ms"] = _one(_pct(lw, 0.95))
            metrics[f"audio_lag_every_chunk_p95_{key}_ms"] = _one(_pct(rw.chunk_lags_ms(), 0.95))
            metrics[f"speech_answer_late_share_{key}"] = _one(rw.late_share())

        # 2. a long stream, faster than real time
        rss: list[tuple[float, float]] = []
        rl, stream, wall = _run_live(rec, opts, _looped(base, period, long_s), speed=long_speed,
                                     sample_rss=rss)
        gaps = rl.stream_gaps()
        after_minute = [m for t, m in rss if t * long_speed >= 60] or [m for _, m in rss]
        growth = (after_minute[-1] - after_minute[0]) / after_minute[0] if after_minute else \
            float("nan")
        metrics["long_memory_growth"] = _one(growth)
        metrics["long_update_gap_max_s"] = _one(max(gaps))
        metrics["long_update_gap_wall_x_speed_max_s"] = _one(max(rl.intervals()) * long_speed)
        extra["long"] = {"stream_s": long_s, "speed": long_speed, "wall_s": round(wall, 2),
                         "updates": len(rl.updates), "counters": rl.updates[-1].counters,
                         "rss_mb": [[round(t, 1), round(m, 1)] for t, m in rss]}

        # 3. concurrent streams at real-time speed; one more is refused
        slots = StreamSlots(n_conc)
        recorders, threads, refused = [], [], False
        for i in range(n_conc):
            slots.acquire()
            rc = _Recorder()
            recorders.append(rc)

            def go(rc: _Recorder = rc, i: int = i) -> None:
                from ..inference.stream import Stream
                from ..inference.stream_files import play

                events = _looped(base, period, conc_s + 0.37 * i)  # not all in step
                s = Stream(rec, opts).start(rc.on_update)
                try:
                    play(s, events, on_push=rc.on_push)
                finally:
                    rc.stopped = time.perf_counter()
                    s.stop()
                    slots.release()

            threads.append(threading.Thread(target=go, daemon=True))
        try:
            slots.acquire()
        except TooManyStreams as exc:
            refused = True
            extra["refused_message"] = str(exc)
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        conc_wall = time.perf_counter() - t0
        per_stream = []
        for rc in recorders:
            iv = rc.intervals()
            per_stream.append({"updates": len(rc.updates), "gap_max_s": round(max(iv), 3),
                               "interval_p95_s": round(_pct(iv, 0.95), 3),
                               "lag_p95_ms": _pct([u.lag_ms for u in rc.updates
                                                   if u.lag_ms is not None], 0.95),
                               "counters": rc.updates[-1].counters})
        metrics["concurrent_update_gap_max_s"] = _one(max(s["gap_max_s"] for s in per_stream))
        metrics["concurrent_update_interval_p95_s"] = _one(
            max(s["interval_p95_s"] for s in per_stream))
        metrics["concurrent_audio_lag_p95_ms"] = _one(max(s["lag_p95_ms"] for s in per_stream))
        metrics["concurrent_speech_answer_late_share"] = _one(
            statistics.mean(rc.late_share() for rc in recorders))
        metrics["concurrent_face_frames_processed_per_s"] = _one(
            statistics.mean(s["counters"]["frames_processed"] / conc_s for s in per_stream))
        metrics["fifth_stream_refused"] = _one(1.0 if refused else 0.0)
        extra["concurrent"] = {"streams": n_conc, "stream_s": conc_s,
                               "wall_s": round(conc_wall, 2), "per_stream": per_stream}
        return build_result(
            suite=cfg.suite, corpus="examples/video.mp4 looped", protocol="live stream latency",
            classes=[], metrics=metrics, per_class={}, confusion=[], seeds=[0],
            started=self.timer.started, duration_s=self.timer.seconds,
            targets=_targets(metrics, n_conc, refused), details=extra,
            options=dict(opts.__dict__),
            machine_note="2 CPU cores shared with other benchmark runs: every wall-time figure "
                         "includes that contention and is noisy",
            notes=_notes(opts, single_s=single_s, long_s=long_s, long_speed=long_speed,
                         n_conc=n_conc, conc_s=conc_s))


live_latency = LiveLatency.run


def _targets(metrics: dict[str, Any], n_conc: int, refused: bool) -> dict[str, bool]:
    """Each target of the issue, met or not."""
    return {
        "an update every <= 0.5 s (median wall interval)":
            metrics["update_interval_s"]["mean"] <= 0.5 + 0.02,
        "audio lag p95 <= 300 ms": metrics["audio_lag_p95_ms"]["mean"] <= 300,
        "face frames processed >= 10/s": metrics["face_frames_processed_per_s"]["mean"] >= 10,
        "live vs offline >= 95 % same label": metrics["live_offline_agreement"]["mean"] >= 0.95,
        "long stream memory growth <= 5 %": metrics["long_memory_growth"]["mean"] <= 0.05,
        "long stream: no update gap over 1 s": metrics["long_update_gap_max_s"]["mean"] <= 1.0,
        f"{n_conc} streams: an update at least every 1 s":
            metrics["concurrent_update_gap_max_s"]["mean"] <= 1.0,
        f"stream {n_conc + 1} refused": refused,
    }


def _notes(opts: Any, *, single_s: float, long_s: float, long_speed: float, n_conc: int,
           conc_s: float) -> str:
    return (
        f"Source: examples/video.mp4 (3.3 s) looped, audio in 50 ms chunks, frames at "
        f"{opts.frame_rate:g}/s, pushed in real time (play). Stream: hop {opts.hop:g} s, "
        f"speech window {opts.window:g} s gated by Silero VAD, face window mean "
        f"{opts.face_window:g} s on frames scaled to {opts.frame_side} px, speech waited "
        f"for at most {opts.speech_wait:g} s, bundled models. "
        f"One stream: {single_s:g} s at real-time speed; update_interval = wall time "
        "between updates; audio_lag = receiving the chunk that completes a hop -> the "
        "update (audio_lag_every_chunk adds the wait for the end of the chunk's hop, up "
        "to one hop); live_offline_agreement = share of offline hops whose label the live "
        "run showed (its own update of that hop, or the latest before it when hops were "
        "merged); speech_answer_late_share = updates that showed the latest speech answer "
        "because their own window's was not ready after speech_wait (those have no "
        f"audio_lag; audio_lag_every_chunk counts them until their answer). Long stream: "
        f"{long_s:g} s of stream replayed {long_speed:g}x faster "
        "than real time (frames then come faster than a webcam's, so more are dropped); "
        "memory growth = resident memory at the end vs after the first minute of stream; "
        f"gaps in stream time. Concurrent: {n_conc} streams in threads of one process "
        f"sharing the models, {conc_s:g} s each at real-time speed; the next one is "
        "refused by StreamSlots (the limit the /stream WebSocket applies). targets: "
        "each target of the issue, met or not. *_waitNNNms: the one-stream run again with "
        "speech_wait = NNN ms (the trade-off between audio lag and agreement). Memory: "
        "yuface 2023.5.1's detect (the YuNet face detector) leaks its 36 kB result buffer "
        "on every detection (10 frames/s x 36 kB = 0.35 MB/s of stream: the 22.8 % growth "
        "of the first run); emofuse.media.faces calls libfacedetection's facedetect_cnn "
        "itself with one result buffer per thread, reused (the same boxes).")
