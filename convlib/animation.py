"""Animations that play offline in the HTML book and print as still frames in the PDF.

The book's chapters draw a matplotlib figure once and change it frame by frame. ::

    from convlib.animation import animate

    fig, ax = plt.subplots()
    ...                                  # draw everything once
    def draw(f):                         # then frame f only changes colours and texts
        ...
    animate(fig, draw, frames=12)        # the last expression of the cell: it is displayed

:func:`animate` returns an :class:`AnimationOutput`, a notebook output with two renderings:

* ``text/html``: matplotlib's JavaScript player (``Animation.to_jshtml``), every frame
  embedded as a PNG image, without the icon font matplotlib links from a CDN (its buttons
  get Unicode symbols instead): it plays in a page that makes no request at all;
* ``image/png``: a few frames, one under the other, for a reader that runs no JavaScript. The HTML book,
  Jupyter and Colab show the player; the PDF edition (Jupyter Book's LaTeX builder, which
  prefers ``image/png``) shows the stills.

The module needs matplotlib, which the book installs; ``import convlib`` does not load it.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable, Iterable, Sequence

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation

__all__ = ["AnimationOutput", "animate", "offline_jshtml", "still_frames"]

# The Font Awesome icons of matplotlib's player, as HTML entities (no font to download).
BUTTON_SYMBOLS = {
    "fa fa-minus": "&minus;",
    "fa fa-fast-backward": "&#x23EE;",
    "fa fa-step-backward": "&#x25C2;",
    "fa fa-play fa-flip-horizontal": "&#x25C0;",
    "fa fa-pause": "&#x23F8;",
    "fa fa-play": "&#x25B6;",
    "fa fa-step-forward": "&#x25B8;",
    "fa fa-fast-forward": "&#x23ED;",
    "fa fa-plus": "+",
}


def offline_jshtml(anim, **kwargs) -> str:
    """``anim.to_jshtml(**kwargs)`` with no external stylesheet: it plays offline.

    matplotlib's player links the Font Awesome stylesheet from a CDN for its button icons;
    the link is removed and each icon replaced by the Unicode symbol of
    :data:`BUTTON_SYMBOLS`. Raises :class:`ValueError` if the player links anything else
    (a matplotlib version this helper does not know), rather than ship a page that calls out.
    """
    html = anim.to_jshtml(**kwargs)
    html = re.sub(r'<link rel="stylesheet"\s+href="[^"]*font-awesome[^"]*">', "", html)

    def symbol(match):
        if match[1] not in BUTTON_SYMBOLS:
            raise ValueError(f"unknown player icon {match[1]!r}: add it to BUTTON_SYMBOLS")
        return BUTTON_SYMBOLS[match[1]]

    html = re.sub(r'<i class="([^"]+)"></i>', symbol, html)
    if re.search(r"<link\b|\bsrc=[\"']?https?:|href=[\"']?https?:", html):
        raise ValueError("the animation's HTML still refers to another host")
    return html


def still_frames(fig, draw: Callable, frames: Sequence, *, columns: int = 1, dpi: float | None = None,
                 gap: int = 12) -> bytes:
    """PNG bytes of the figure drawn at each of ``frames``, in a grid ``columns`` wide.

    Each frame is ``draw(frame)`` followed by a full render of ``fig`` at ``dpi`` (default:
    the figure's own), so a still is exactly the player's frame. Frames are left to right,
    top to bottom, ``gap`` white pixels apart.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("still_frames() needs at least one frame")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    images = []
    for frame in frames:
        draw(frame)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi or fig.dpi, facecolor="white")
        buffer.seek(0)
        images.append(matplotlib.image.imread(buffer, format="png")[..., :3])
    h, w = images[0].shape[:2]
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    grid = np.ones((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3))
    for n, image in enumerate(images):
        r, c = divmod(n, columns)
        grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = image
    out = io.BytesIO()
    matplotlib.image.imsave(out, grid, format="png")
    return out.getvalue()


class AnimationOutput:
    """A notebook output: the offline player as ``text/html``, stills as ``image/png``.

    ``html`` is the player, ``png`` the stills (PNG bytes), ``n_frames`` the number of frames
    and ``stills`` the frames shown in ``png``. The plain-text form names them, so it is the
    same on every machine (the notebook checks compare it).
    """

    def __init__(self, html: str, png: bytes, n_frames: int, stills: Sequence):
        self.html, self.png, self.n_frames, self.stills = html, png, n_frames, list(stills)

    def __repr__(self):
        return (f"<animation: {self.n_frames} frames; "
                f"still frames {', '.join(str(f) for f in self.stills)}>")

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self.html,
                "image/png": base64.b64encode(self.png).decode("ascii"),
                "text/plain": repr(self)}


def animate(fig, draw: Callable, frames: int | Iterable, *, interval: int = 800,
            stills: Sequence | int = 3, columns: int = 1, still_dpi: float | None = None,
            close: bool = True) -> AnimationOutput:
    """Animate ``fig`` with ``draw(frame)``: an offline player and a few still frames.

    Args:
        fig: a matplotlib figure, drawn once; ``draw`` changes it in place.
        draw: called with each frame (an int, or an item of ``frames``).
        frames: the number of frames, or the frames themselves.
        interval: milliseconds per frame in the player.
        stills: the frames to show as stills, or how many, evenly spaced from the first
            frame to the last (the default: 3).
        columns: stills per row of the ``image/png`` grid (default 1: one under the other,
            which keeps a wide figure readable on a PDF page).
        still_dpi: resolution of the stills (default: the figure's dpi).
        close: close ``fig`` afterwards, so that the notebook shows the animation only, not
            also a static copy of its last frame.

    Returns:
        An :class:`AnimationOutput`; make it the last expression of the cell.
    """
    frame_list = list(range(frames)) if isinstance(frames, int) else list(frames)
    if not frame_list:
        raise ValueError("animate() needs at least one frame")
    if isinstance(stills, int):
        picks = np.linspace(0, len(frame_list) - 1, min(stills, len(frame_list))).round().astype(int)
        stills = [frame_list[i] for i in dict.fromkeys(picks.tolist())]
    anim = FuncAnimation(fig, draw, frames=frame_list, interval=interval)
    html = offline_jshtml(anim)
    png = still_frames(fig, draw, stills, columns=columns, dpi=still_dpi)
    if close:
        plt.close(fig)
    return AnimationOutput(html, png, len(frame_list), stills)
