"""One colour per emotion (and per modality), shared by every plot and the web page.

The web page (``serve/static/app.js``) holds the same table; a test checks that they agree.
"""

from __future__ import annotations

__all__ = ["COLORS", "FALLBACK", "color"]

#: Colour of each canonical emotion, of the corpus-specific extras, and of each modality.
COLORS: dict[str, str] = {
    "neutral": "#98a2b3", "calm": "#66c2a5", "happy": "#fdb022", "sad": "#2e90fa",
    "angry": "#f04438", "fear": "#7a5af8", "disgust": "#12b76a", "surprise": "#ee46bc",
    "contempt": "#b54708", "boredom": "#667085", "excited": "#f79009", "frustrated": "#d92d20",
    "love": "#f670c7", "other": "#475467", "speech": "#3b5bdb", "face": "#f79009",
    "text": "#12b76a",
}
#: Colours for names the table lacks, in turn.
FALLBACK: tuple[str, ...] = ("#3b5bdb", "#f79009", "#12b76a", "#f04438", "#7a5af8", "#ee46bc",
                             "#2e90fa")


def color(name: str, index: int = 0) -> str:
    """The colour of ``name`` (an emotion or modality); else the ``index``-th fallback."""
    return COLORS.get(name, FALLBACK[index % len(FALLBACK)])
