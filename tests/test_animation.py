"""convlib.animation: the player plays offline, and the stills are the player's frames."""

import base64
import io
import re

import matplotlib

matplotlib.use("agg")

import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from convlib.animation import AnimationOutput, animate, offline_jshtml, still_frames  # noqa: E402


def square_figure():
    """A 2 x 1 inch figure at 50 dpi (100 x 50 pixels) whose frame f paints cell f of 4 black."""
    fig = plt.figure(figsize=(2, 1), dpi=50)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    image = ax.imshow(np.ones((1, 4)), cmap="gray", vmin=0, vmax=1, aspect="auto")

    def draw(f):
        cells = np.ones((1, 4))
        cells[0, f] = 0
        image.set_data(cells)

    return fig, draw


def decode(png_bytes):
    return matplotlib.image.imread(io.BytesIO(png_bytes), format="png")[..., :3]


def test_player_embeds_every_frame_and_refers_to_no_other_host():
    fig, draw = square_figure()
    out = animate(fig, draw, frames=4, interval=300)
    assert isinstance(out, AnimationOutput)
    frame_ids = set(re.findall(r"frames\[(\d+)\] = \"data:image/png;base64,", out.html))
    assert frame_ids == {"0", "1", "2", "3"}
    assert "font-awesome" not in out.html and "<link" not in out.html
    assert not re.search(r"https?://", out.html)
    assert '<i class="fa' not in out.html
    assert "&#x25B6;" in out.html  # the play button, as a Unicode symbol


def test_stills_are_the_frames_in_a_grid():
    fig, draw = square_figure()
    out = animate(fig, draw, frames=4, stills=[0, 3], columns=2, close=False)
    grid = decode(out.png)
    gap = 12
    assert grid.shape == (50, 100 + gap + 100, 3)
    left, right = grid[:, :100], grid[:, 100 + gap:]
    # frame 0 paints the first quarter black, frame 3 the last quarter
    assert left[25, 10].max() < 0.1 and left[25, 90].min() > 0.9
    assert right[25, 90].max() < 0.1 and right[25, 10].min() > 0.9
    assert grid[:, 100:100 + gap].min() == 1.0  # the white gap
    plt.close(fig)


def test_default_stills_are_evenly_spaced_and_the_bundle_has_both_renderings():
    fig, draw = square_figure()
    out = animate(fig, draw, frames=4, stills=4)
    assert out.stills == [0, 1, 2, 3]
    fig, draw = square_figure()
    out = animate(fig, draw, frames=range(4))
    assert out.stills == [0, 2, 3]  # the default: 3 stills at 0, 1.5 (rounds to 2), 3, one under the other
    assert decode(out.png).shape == (3 * 50 + 2 * 12, 100, 3)
    bundle = out._repr_mimebundle_()
    assert set(bundle) == {"text/html", "image/png", "text/plain"}
    assert base64.b64decode(bundle["image/png"]) == out.png
    assert bundle["text/plain"] == "<animation: 4 frames; still frames 0, 2, 3>"
    assert not plt.fignum_exists(fig.number)  # closed: no static copy in the notebook


def test_bad_arguments_are_refused():
    fig, draw = square_figure()
    with pytest.raises(ValueError, match="at least one frame"):
        animate(fig, draw, frames=0)
    with pytest.raises(ValueError, match="columns"):
        still_frames(fig, draw, [0], columns=0)
    plt.close(fig)


def test_an_unknown_player_icon_is_refused():
    class FakeAnimation:
        def to_jshtml(self):
            return '<button><i class="fa fa-rocket"></i></button>'

    with pytest.raises(ValueError, match="fa fa-rocket"):
        offline_jshtml(FakeAnimation())
