import numpy as np
import pytest
import soundfile as sf

from emofuse.errors import MediaError
from emofuse.media import load_audio, probe_audio


def _tone(sr, seconds=0.2, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


@pytest.mark.parametrize("ext,fmt", [(".wav", None), (".flac", None), (".ogg", None), (".mp3", None)])
@pytest.mark.parametrize("sr", [8000, 44100, 96000])
def test_formats_and_rates_resampled(tmp_path, ext, fmt, sr):
    if ext == ".mp3" and sr > 48000:
        pytest.skip("MP3 has no 96 kHz mode")
    p = tmp_path / f"a{ext}"
    sf.write(p, _tone(sr), sr)
    y, out_sr = load_audio(p, sr=16000)
    assert out_sr == 16000
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 3200) < 1200  # mp3 pads a little
    assert np.abs(y).max() > 0.1


def test_stereo_mixed_to_mono_and_reported(tmp_path):
    p = tmp_path / "st.wav"
    sf.write(p, _tone(16000, channels=2), 16000)
    assert any("channels" in q for q in probe_audio(p).quirks)
    y, _ = load_audio(p)
    assert y.ndim == 1
    y2, _ = load_audio(p, mono=False)
    assert y2.shape[1] == 2


def test_aiff_named_wav_is_read_and_reported(tmp_path):
    p = tmp_path / "x.wav"
    sf.write(p, _tone(22050), 22050, format="AIFF")
    info = probe_audio(p)
    assert any("AIFF" in q for q in info.quirks)
    assert load_audio(p)[0].size > 0


def test_windowed_reading(tmp_path):
    p = tmp_path / "long.flac"
    sf.write(p, _tone(16000, seconds=2.0), 16000)
    y, _ = load_audio(p, offset=0.5, duration=1.0)
    assert len(y) == 16000


@pytest.mark.parametrize("name,content,problem", [
    ("zero.wav", b"", "empty"),
    ("text.wav", b"this is not audio at all\n", "text"),
    ("junk.wav", bytes(range(256)) * 4, "cannot decode"),
])
def test_bad_files_name_the_problem(tmp_path, name, content, problem):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(MediaError, match=problem) as ei:
        probe_audio(p)
    assert str(p) in str(ei.value)
    with pytest.raises(MediaError):
        load_audio(p)


def test_truncated_flac(tmp_path):
    p = tmp_path / "t.flac"
    sf.write(p, np.random.default_rng(0).normal(0, 0.1, 48000).astype(np.float32), 48000)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(MediaError, match="truncated|corrupt"):
        probe_audio(p)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="does not exist"):
        load_audio(tmp_path / "nope.wav")


def test_folder_and_empty_file_refused_before_decoding(tmp_path):
    (tmp_path / "dir.wav").mkdir()
    (tmp_path / "empty.wav").touch()
    with pytest.raises(MediaError, match="is a folder, not an audio file"):
        probe_audio(tmp_path / "dir.wav")
    for read in (probe_audio, load_audio):
        with pytest.raises(MediaError, match=r"file is empty \(0 bytes\)"):
            read(tmp_path / "empty.wav")
