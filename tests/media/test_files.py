"""Every reader checks a path the same way (emofuse.media._files.check_file): a folder, a
missing file or an empty one is a MediaError that names the path and the problem."""

import pytest

from emofuse.errors import MediaError
from emofuse.media.image import load_image
from emofuse.media.text import read_text
from emofuse.media.video import probe_video

READERS = [(load_image, "an image"), (probe_video, "a video"), (read_text, "a text file")]


@pytest.mark.parametrize("reader,what", READERS)
def test_folder_missing_empty(tmp_path, reader, what):
    with pytest.raises(MediaError, match=f"is a folder, not {what}") as e:
        reader(tmp_path)
    assert str(tmp_path) in str(e.value)
    with pytest.raises(MediaError, match="file does not exist"):
        reader(tmp_path / "nope.bin")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    if reader is read_text:      # an empty text file is an empty text
        assert reader(empty) == ""
    else:
        with pytest.raises(MediaError, match="empty"):
            reader(empty)
