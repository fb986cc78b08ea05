"""Helpers shared by the loaders: Record.group, byte sniffing and hashing, image reading, and
the declaration of a loader in its class statement."""

from __future__ import annotations

from pathlib import Path

import pytest

from emofuse.corpora import Record
from emofuse.corpora._image import SNIFF_BYTES, content_hash, looks_like_text, read_image
from emofuse.corpora._media_check import AudioChecker, MediaChecks

from ._audio_fixtures import image, tone


def _rec(speaker: str | None = "spk", **extra: object) -> Record:
    return Record("r1", "test", "a", "a", speaker=speaker, extra=dict(extra))


def test_group_prefers_group_then_dialogue_then_speaker() -> None:
    assert _rec(group="Ses01", dialogue="Ses01F_impro01").group == "Ses01"
    assert _rec(dialogue="train:3").group == "train:3"
    assert _rec(group="", dialogue="train:3").group == "train:3"   # empty means unset
    assert _rec().group == "spk"
    assert _rec(speaker=None).group is None


def test_looks_like_text_reads_only_the_head() -> None:
    assert looks_like_text(b"a note\r\n\twith tabs")
    assert not looks_like_text(b"")
    assert not looks_like_text(b"\x89PNG\r\n\x1a\n")
    assert not looks_like_text("café".encode())                  # not plain ASCII
    assert looks_like_text(b"x" * SNIFF_BYTES + b"\x00\xff")     # binary after the head


def test_read_image_reports_and_skips(tmp_path: Path) -> None:
    anomalies: list = []
    good = image(tmp_path / "good.png")
    data, size = read_image(good, anomalies)
    assert data == good.read_bytes() and size == (8, 8) and anomalies == []
    assert read_image(good, anomalies, decode=False)[1] is None
    note = tmp_path / "note.png"
    note.write_text("not a picture\n")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    assert read_image(note, anomalies) is None and read_image(folder, anomalies) is None
    assert [(Path(a.path).name, a.skipped) for a in anomalies] == [("note.png", True),
                                                                   ("folder.png", True)]
    assert "holds text" in anomalies[0].reason
    assert anomalies[1].reason.startswith("cannot read file")


def test_media_checks_spot_text_without_decoding(tmp_path: Path) -> None:
    note = tmp_path / "clip.mp4"
    note.write_text("a note, not a video\n")
    anomalies: list = []
    checks = MediaChecks(anomalies, decode=False)
    assert checks.load(note, "video") is None
    assert checks.load(image(tmp_path / "face.png"), "image") == str(tmp_path / "face.png")
    (bad,) = anomalies
    assert bad.skipped and bad.reason == "not video: the file holds text"


def test_media_checks_report_a_decoder_error_without_message(tmp_path: Path, monkeypatch) -> None:
    from emofuse.corpora import _media_check

    def fails(path: Path) -> str | None:
        raise ValueError()

    monkeypatch.setattr(_media_check, "_video_problem", fails)
    anomalies: list = []
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 32)
    assert not MediaChecks(anomalies).video(clip)
    assert [a.reason for a in anomalies] == ["cannot open video (ValueError)"]


def test_audio_and_images_share_one_content_hash(tmp_path: Path) -> None:
    wav = tone(tmp_path / "a.wav")
    checker = AudioChecker([], decode=False)
    assert checker.check(wav)
    assert checker.content_hash(wav) == content_hash(wav.read_bytes())
    assert len(content_hash(b"x")) == 32



@pytest.fixture
def corpus_registry():
    """The corpus registry, restored after the test (its toy loaders must not leak)."""
    from emofuse.corpora import _base, list_corpora

    list_corpora()
    saved = dict(_base._REGISTRY)
    yield _base._REGISTRY
    _base._REGISTRY.clear()
    _base._REGISTRY.update(saved)


def test_class_keywords_declare_and_register_a_loader(corpus_registry) -> None:
    from emofuse.corpora import Corpus, get_corpus, list_corpora, register
    from emofuse.corpora._media_check import AudioFilesCorpus

    before = set(corpus_registry)

    class _ToyBase(AudioFilesCorpus):               # no name: a base, not registered
        exts = (".wav",)

    class ToyKw(_ToyBase, name="toykw", modalities=["audio"], subdir="toy/kw",
                description="declared in the class statement"):
        pass

    @register
    class ToyOld(Corpus):                           # the older form still registers
        name = "toyold"
        modalities = ("text",)

    assert set(corpus_registry) - before == {"toykw", "toyold"}
    assert (ToyKw.name, ToyKw.modalities, ToyKw.default_subdir, ToyKw.description) == (
        "toykw", ("audio",), "toy/kw", "declared in the class statement")
    assert ToyKw.exts == (".wav",) and _ToyBase.name == "" and AudioFilesCorpus.name == ""
    assert type(get_corpus("toykw")) is ToyKw and type(get_corpus("toyold")) is ToyOld
    assert set(list_corpora()) >= {"savee", "ravdess", "toykw", "toyold"}
