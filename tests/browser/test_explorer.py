"""The interactive explorer of W and W^T (book/_static/conv-explorer.js), in headless Chromium.

Every expected value comes from Python: the matrices from convlib.kernel_matrix and from
torch.nn.functional.conv_transpose2d applied to one-hot inputs, the errors from convlib and from
PyTorch, the cells that must light up from convlib.kernel_matrix_indices and the index formula
v = u s - p + a d. The JavaScript is only ever the thing under test.
"""

from __future__ import annotations

import itertools
import random

import pytest
import torch
import torch.nn.functional as F
from browsing import SCREENSHOTS, SKIP_REASON, open_page

import convlib

if SKIP_REASON:
    pytest.skip(SKIP_REASON, allow_module_level=True)
pytest.importorskip("playwright.sync_api")

PAGE = "book/explorer.html"
DEFAULTS = dict(mode="conv", stride=[1, 1], padding=[0, 0], dilation=[1, 1], output_padding=[0, 0])


def full(cfg):
    """A complete explorer config (set() merges, so every test states every setting)."""
    return {**DEFAULTS, **cfg}


def tap_kernel(kh, kw):
    """The kernel whose value at tap t = a * kw + b is t + 1, in float64 (exact)."""
    return torch.arange(1, kh * kw + 1, dtype=torch.float64).reshape(kh, kw)


def as_arg(v):
    return tuple(v) if isinstance(v, list) else v


def convlib_result(cfg):
    """('ok', rows, cols, entries) or ('error', class name, message) from convlib.kernel_matrix."""
    try:
        W = convlib.kernel_matrix(tap_kernel(*cfg["kernel"]), tuple(cfg["input"]), stride=as_arg(cfg["stride"]),
                                  padding=as_arg(cfg["padding"]), dilation=as_arg(cfg["dilation"]))
    except Exception as error:  # the JavaScript must raise the same class with the same message
        return ("error", type(error).__name__, str(error))
    crow, col, values = W.crow_indices(), W.col_indices(), W.values()
    rows = torch.repeat_interleave(torch.arange(W.shape[0]), crow.diff().long())
    entries = [[int(r), int(c), int(v) - 1] for r, c, v in zip(rows, col, values)]
    return ("ok", W.shape[0], W.shape[1], entries)


def torch_error(cfg, transposed=False):
    """What F.conv2d (or F.conv_transpose2d) raises for these settings, 'Class: message', or None."""
    x = torch.zeros(1, 1, *cfg["input"])
    w = torch.zeros(1, 1, *cfg["kernel"])
    try:
        if transposed:
            out = F.conv_transpose2d(x, w, stride=as_arg(cfg["stride"]), padding=as_arg(cfg["padding"]),
                                     dilation=as_arg(cfg["dilation"]), output_padding=as_arg(cfg["output_padding"]))
        else:
            out = F.conv2d(x, w, stride=as_arg(cfg["stride"]), padding=as_arg(cfg["padding"]),
                           dilation=as_arg(cfg["dilation"]))
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    if out.numel() == 0:
        # PyTorch's CPU kernel for a 4 x 4 kernel returns an empty tensor where its other kernels
        # raise (a size of 0 is "too small" for them): expect what they raise, for these sizes
        assert transposed and tuple(cfg["kernel"]) == (4, 4), cfg
        h, w = out.shape[-2:]
        return (f"RuntimeError: Given input size per channel: ({cfg['input'][0]} x {cfg['input'][1]}). "
                f"Calculated output size per channel: ({h} x {w}). Output size is too small")
    return None


def transposed_matrix(cfg):
    """The matrix of F.conv_transpose2d with kernel values tap + 1, column by column (one-hot y)."""
    h, w = cfg["input"]
    eye = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
    z = F.conv_transpose2d(eye, tap_kernel(*cfg["kernel"])[None, None], stride=tuple(cfg["stride"]),
                           padding=tuple(cfg["padding"]), dilation=tuple(cfg["dilation"]),
                           output_padding=tuple(cfg["output_padding"]))
    M = z.reshape(h * w, z.shape[-2] * z.shape[-1]).T  # row: entry of z, column: entry of y
    rows, cols = M.nonzero(as_tuple=True)
    return M.shape, [[int(r), int(c), int(M[r, c]) - 1] for r, c in zip(rows, cols)]


def random_settings(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        padding = rng.choice([[rng.randint(0, 3), rng.randint(0, 3)]] * 6 + ["same", "valid", rng.randint(0, 2)])
        cfg = dict(input=[rng.randint(1, 12), rng.randint(1, 12)], kernel=[rng.randint(1, 5), rng.randint(1, 5)],
                   stride=[rng.randint(1, 4), rng.randint(1, 4)] if rng.random() < 0.8 else rng.randint(1, 3),
                   padding=padding, dilation=[rng.randint(1, 3), rng.randint(1, 3)])
        if padding == "same" and rng.random() < 0.6:
            cfg["stride"] = [1, 1]
        out.append(cfg)
    return out


# Invalid on purpose: each argument PyTorch and convlib refuse, alone and together.
BAD = [
    dict(input=[5, 6], kernel=[2, 4], stride=[0, 1], padding=[0, 0], dilation=[1, 1]),
    dict(input=[5, 6], kernel=[2, 4], stride=[1, 1], padding=[-1, 0], dilation=[1, 1]),
    dict(input=[5, 6], kernel=[2, 4], stride=[1, 1], padding=[0, 0], dilation=[1, 0]),
    dict(input=[5, 6], kernel=[2, 4], stride=[2, 1], padding="same", dilation=[1, 1]),
    dict(input=[5, 6], kernel=[2, 4], stride=[1, 1], padding="full", dilation=[1, 1]),
    dict(input=[5, 6], kernel=[2, 4], stride=[1, 1], padding=[0, 0], dilation=[5, 1]),
    dict(input=[0, 6], kernel=[2, 4], stride=[1, 1], padding=[0, 0], dilation=[1, 1]),
    dict(input=[5, 6], kernel=[2, 4], stride=[1, 2, 3], padding=[0, 0], dilation=[1, 1]),
]


@pytest.fixture(scope="module")
def explorer(browser, server):
    """The standalone page, kept open for the whole module; its problems are checked at the end."""
    context, page, problems = open_page(browser, server + PAGE)
    yield page, problems
    context.close()
    assert not problems, "\n".join(problems)


def js_results(page, cfgs, fn="kernelMatrix"):
    return page.evaluate(
        """([cfgs, fn]) => cfgs.map(cfg => {
             let result;
             try { const m = convExplorer[fn](cfg); result = ['ok', m.rows, m.cols, m.entries]; }
             catch (e) { result = ['error', e.name, e.message]; }
             let size = null;
             try { size = convExplorer.outputSize(cfg); } catch (e) { size = 'error'; }
             return {result, size, torch: convExplorer.torchError(cfg)};
           })""", [cfgs, fn])


def test_kernel_matrix_equals_convlib_on_random_settings(explorer):
    page, _ = explorer
    cfgs = random_settings(400, seed=11) + BAD
    got = js_results(page, cfgs)
    kinds = {"ok": 0, "error": 0}
    for cfg, js in zip(cfgs, got):
        expected = convlib_result(cfg)
        kinds[expected[0]] += 1
        assert js["result"][0] == expected[0], (cfg, js["result"][:3], expected[:3])
        if expected[0] == "ok":
            assert js["result"][1:3] == list(expected[1:3]), cfg
            assert js["result"][3] == expected[3], cfg  # every (row, col, tap), in CSR order
        else:
            assert js["result"][1:] == list(expected[1:]), cfg
    # both kinds occur often: the comparison covers valid and invalid settings alike
    assert kinds["ok"] > 200 and kinds["error"] > 50, kinds


def test_output_size_and_torch_errors_on_random_settings(explorer):
    page, _ = explorer
    cfgs = random_settings(320, seed=12)
    got = js_results(page, cfgs)
    n_errors = 0
    for cfg, js in zip(cfgs, got):
        expected = torch_error(cfg)
        n_errors += expected is not None
        assert js["torch"] == expected, cfg
        if cfg["padding"] == "same" and cfg["stride"] not in ([1, 1], 1):
            assert js["size"] == "error"
            continue
        pads = convlib.resolve_padding(as_arg(cfg["padding"]), cfg["kernel"], convlib.shapes.as_tuple(
            as_arg(cfg["stride"]), 2, "stride"), cfg["dilation"])
        size = convlib.conv_output_size(tuple(cfg["input"]), tuple(cfg["kernel"]), as_arg(cfg["stride"]), pads,
                                        tuple(cfg["dilation"]))
        assert js["size"] == list(size), cfg
    assert n_errors > 20


def transposed_settings(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = [rng.randint(1, 3), rng.randint(1, 3)]
        d = [rng.randint(1, 3), rng.randint(1, 3)]
        # mostly accepted output paddings, some refused (>= max(stride, dilation))
        a = [rng.randint(0, max(s[m], d[m]) - (1 if rng.random() < 0.85 else 0)) for m in range(2)]
        out.append(dict(mode="transposed", input=[rng.randint(1, 6), rng.randint(1, 6)],
                        kernel=[rng.randint(1, 4), rng.randint(1, 4)], stride=s,
                        padding=[rng.randint(0, 3), rng.randint(0, 3)], dilation=d, output_padding=a))
    return out


def test_transposed_matrix_equals_conv_transpose2d(explorer):
    page, _ = explorer
    cfgs = transposed_settings(160, seed=13)
    got = js_results(page, cfgs, fn="transposedMatrix")
    W_got = js_results(page, cfgs, fn="kernelMatrix")
    counts = {"ok": 0, "error": 0, "convlib": 0}
    for cfg, js, js_W in zip(cfgs, got, W_got):
        error = torch_error(cfg, transposed=True)
        assert js["torch"] == error, cfg
        if error:
            counts["error"] += 1
            assert js["result"][0] == "error" and f"{js['result'][1]}: {js['result'][2]}" == error, cfg
            continue
        counts["ok"] += 1
        shape, entries = transposed_matrix(cfg)
        assert js["result"][:3] == ["ok", shape[0], shape[1]], cfg
        assert js["result"][3] == entries, cfg
        assert js["size"] == list(F.conv_transpose2d(
            torch.zeros(1, 1, *cfg["input"]), torch.zeros(1, 1, *cfg["kernel"]), stride=tuple(cfg["stride"]),
            padding=tuple(cfg["padding"]), dilation=tuple(cfg["dilation"]),
            output_padding=tuple(cfg["output_padding"])).shape[-2:])
        # kernelMatrix of a transposed setting is W itself: the transpose, entry by entry
        assert sorted(js_W["result"][3]) == sorted([c, r, t] for r, c, t in entries)
        if all(a < s for a, s in zip(cfg["output_padding"], cfg["stride"])):
            # and then it is convlib's kernel matrix of the convolution on z's size
            conv_cfg = {**cfg, "input": js["size"]}
            assert js_W["result"][3] == convlib_result(conv_cfg)[3], cfg
            counts["convlib"] += 1
    assert counts["ok"] > 80 and counts["error"] > 10 and counts["convlib"] > 50, counts


# ------------------------------------------------------------------------------- linked cells

def conv_entries(X, k, s, pads, d):
    """Stored entries (row, col, tap) of W, from convlib.kernel_matrix_indices."""
    crow, col, widx = convlib.kernel_matrix_indices((1, 1, *k), X, s, pads, d)
    rows = torch.repeat_interleave(torch.arange(crow.numel() - 1), crow.diff())
    return [(int(r), int(c), int(t)) for r, c, t in zip(rows, col, widx)]


class Geometry:
    """The explorer's three grids and its matrix for one setting, computed in Python."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.transposed = cfg["mode"] == "transposed"
        self.k, self.s, self.d = tuple(cfg["kernel"]), tuple(cfg["stride"]), tuple(cfg["dilation"])
        if self.transposed:
            self.Y = tuple(cfg["input"])
            p, a = cfg["padding"], cfg["output_padding"]
            assert all(ai < si for ai, si in zip(a, self.s)), "the tests take W from convlib: output_padding < stride"
            self.X = convlib.conv_transpose_output_size(self.Y, self.k, self.s, tuple(p), tuple(a), self.d)
            self.before = tuple(p)
            pads = tuple((pi, pi) for pi in p)
        else:
            self.X = tuple(cfg["input"])
            pads = convlib.resolve_padding(as_arg(cfg["padding"]), self.k, self.s, self.d)
            self.before = tuple(b for b, _ in pads)
            self.Y = convlib.conv_output_size(self.X, self.k, self.s, pads, self.d)
        self.entries = conv_entries(self.X, self.k, self.s, pads, self.d)
        assert convlib.conv_output_size(self.X, self.k, self.s, pads, self.d) == tuple(self.Y)
        self.xgrid, self.ygrid = ("output", "input") if self.transposed else ("input", "output")

    def matrix_cell(self, y, x):
        return ("matrix", x, y) if self.transposed else ("matrix", y, x)

    def read_position(self, o, a, m):
        return o * self.s[m] - self.before[m] + a * self.d[m]  # v = u s - p + a d

    def linked_to_y(self, i, j):
        """An entry of Y (of y, transposed): its row of W, its whole window on X, all taps."""
        r = i * self.Y[1] + j
        cells = {self.matrix_cell(y, x) for y, x, _ in self.entries if y == r}
        taps = {}
        for a, b in itertools.product(range(self.k[0]), range(self.k[1])):
            cell = (self.xgrid, self.read_position(i, a, 0), self.read_position(j, b, 1))
            cells.add(cell)
            taps[cell] = a * self.k[1] + b
            cells.add(("kernel", a, b))
        return cells, taps

    def linked_to_x(self, u, v):
        """An entry of X (of z, transposed), padding included: its column of W, the outputs it feeds."""
        cells, taps = set(), {}
        inside = 0 <= u < self.X[0] and 0 <= v < self.X[1]
        for (oh, ow), (a, b) in itertools.product(itertools.product(range(self.Y[0]), range(self.Y[1])),
                                                  itertools.product(range(self.k[0]), range(self.k[1]))):
            if (self.read_position(oh, a, 0), self.read_position(ow, b, 1)) == (u, v):
                cell = (self.ygrid, oh, ow)
                cells.add(cell)
                taps[cell] = a * self.k[1] + b
                cells.add(("kernel", a, b))
                if inside:  # a stored entry of W, which convlib must have too
                    assert (oh * self.Y[1] + ow, u * self.X[1] + v, a * self.k[1] + b) in self.entries
        if inside:
            c = u * self.X[1] + v
            cells |= {self.matrix_cell(y, x) for y, x, _ in self.entries if x == c}
        return cells, taps

    def linked_to_matrix(self, r, c):
        y, x = (c, r) if self.transposed else (r, c)
        cells = {(self.ygrid, y // self.Y[1], y % self.Y[1]), (self.xgrid, x // self.X[1], x % self.X[1])}
        for yy, xx, t in self.entries:
            if (yy, xx) == (y, x):
                cells.add(("kernel", t // self.k[1], t % self.k[1]))
        return cells, {}

    def linked_to_kernel(self, a, b):
        t = a * self.k[1] + b
        return {self.matrix_cell(y, x) for y, x, tt in self.entries if tt == t}, {}


def lit(page):
    """The cells carrying 'highlight', with their tap labels, and the one carrying 'active'."""
    return page.evaluate("""() => {
        const root = document.querySelector('.conv-explorer');
        const cells = [...root.querySelectorAll('[data-grid].highlight')].map(
            el => [el.dataset.grid, +el.dataset.i, +el.dataset.j, el.dataset.tap === undefined ? null : +el.dataset.tap]);
        const active = [...root.querySelectorAll('[data-grid].active')].map(
            el => [el.dataset.grid, +el.dataset.i, +el.dataset.j, el.classList.contains('highlight')]);
        return {cells, active};
    }""")


def cell(page, grid, i, j):
    return page.locator(f'.conv-explorer [data-grid="{grid}"][data-i="{i}"][data-j="{j}"]')


def set_config(page, cfg):
    page.evaluate("cfg => document.querySelector('.conv-explorer').convExplorer.set(cfg)", cfg)


def check_hover(page, geo, grid, i, j):
    cell(page, grid, i, j).hover()
    if grid == geo.ygrid:
        expected, taps = geo.linked_to_y(i, j)
    elif grid == geo.xgrid:
        expected, taps = geo.linked_to_x(i, j)
    elif grid == "matrix":
        expected, taps = geo.linked_to_matrix(i, j)
    else:
        expected, taps = geo.linked_to_kernel(i, j)
    expected.discard((grid, i, j))
    got = lit(page)
    assert got["active"] == [[grid, i, j, False]]
    assert {tuple(c[:3]) for c in got["cells"]} == expected, (geo.cfg, grid, i, j)
    assert len(got["cells"]) == len(expected)
    for g, ci, cj, tap in got["cells"]:
        if (g, ci, cj) in taps:
            assert tap == taps[g, ci, cj], (g, ci, cj)  # the tap label on each linked cell
    return expected


HOVER_CASES = [
    # the running example
    dict(input=[5, 6], kernel=[2, 4]),
    # rectangular, strided, padded and dilated at once
    dict(input=[7, 6], kernel=[3, 2], stride=[2, 1], padding=[1, 2], dilation=[1, 2]),
    # 'same' with the even 2 x 4 kernel: padding 0 before and 1 after in height, 1 and 2 in width
    dict(input=[5, 6], kernel=[2, 4], padding="same"),
    # the floor drops the last row: it is read by no window
    dict(input=[6, 5], kernel=[3, 2], stride=[2, 2]),
    # transposed, with padding cut off and output_padding added
    dict(mode="transposed", input=[4, 3], kernel=[3, 2], stride=[2, 2], padding=[1, 1], output_padding=[1, 0]),
    dict(mode="transposed", input=[3, 3], kernel=[3, 3], stride=[2, 1], dilation=[1, 2]),
]


@pytest.mark.parametrize("case", range(len(HOVER_CASES)))
def test_hover_lights_exactly_the_linked_cells(explorer, case):
    page, _ = explorer
    cfg = full(HOVER_CASES[case])
    set_config(page, cfg)
    geo = Geometry(cfg)
    rng = random.Random(case)
    n_lit = 0
    # the first and last outputs, and a sample of everything else
    ys = list(itertools.product(range(geo.Y[0]), range(geo.Y[1])))
    xs_inside = list(itertools.product(range(geo.X[0]), range(geo.X[1])))
    frame = page.evaluate(f"""() => [...document.querySelectorAll('.conv-explorer [data-grid="{geo.xgrid}"].cx-pad')]
                                    .map(el => [+el.dataset.i, +el.dataset.j])""")
    expected_frame = {(i, j) for i, j in itertools.product(
        range(-geo.before[0], geo.X[0] + geo.before[0]), range(-geo.before[1], geo.X[1] + geo.before[1]))
        if not (0 <= i < geo.X[0] and 0 <= j < geo.X[1])}
    if not geo.transposed:
        # the padding frame: 'same' pads less before than after
        pads = convlib.resolve_padding(as_arg(cfg["padding"]), geo.k, geo.s, geo.d)
        expected_frame = {(i, j) for i, j in itertools.product(
            range(-pads[0][0], geo.X[0] + pads[0][1]), range(-pads[1][0], geo.X[1] + pads[1][1]))
            if not (0 <= i < geo.X[0] and 0 <= j < geo.X[1])}
    else:
        # z's border: p cut before, p - output_padding after (nothing once output_padding >= p)
        a = cfg["output_padding"]
        expected_frame = {(i, j) for i, j in itertools.product(
            range(-geo.before[0], geo.X[0] + max(geo.before[0] - a[0], 0)),
            range(-geo.before[1], geo.X[1] + max(geo.before[1] - a[1], 0)))
            if not (0 <= i < geo.X[0] and 0 <= j < geo.X[1])}
    assert {tuple(f) for f in frame} == expected_frame
    targets = [(geo.ygrid, i, j) for i, j in ys[:2] + ys[-2:] + rng.sample(ys, min(8, len(ys)))]
    targets += [(geo.xgrid, i, j) for i, j in rng.sample(xs_inside, min(8, len(xs_inside)))]
    targets += [(geo.xgrid, i, j) for i, j in rng.sample(sorted(expected_frame), min(4, len(expected_frame)))]
    targets += [("kernel", a, b) for a, b in itertools.product(range(geo.k[0]), range(geo.k[1]))][:6]
    rows, cols = (len(xs_inside), len(ys)) if geo.transposed else (len(ys), len(xs_inside))
    stored = [geo.matrix_cell(y, x)[1:] for y, x, _ in geo.entries]
    targets += [("matrix", r, c) for r, c in rng.sample(stored, 6)]
    targets += [("matrix", rng.randrange(rows), rng.randrange(cols)) for _ in range(6)]
    for target in targets:
        n_lit += len(check_hover(page, geo, *target))
    assert n_lit > 3 * len(targets)


def focused(page):
    return page.evaluate("""() => { const el = document.activeElement;
        return el && el.dataset.grid ? [el.dataset.grid, +el.dataset.i, +el.dataset.j] : null; }""")


def test_a_large_matrix_is_drawn_a_window_at_a_time(explorer):
    page, _ = explorer
    cfg = full(dict(input=[12, 12], kernel=[5, 5]))  # W is 64 x 144: 9216 entries
    set_config(page, cfg)
    geo = Geometry(cfg)
    rows, cols, drawn = grid_shape(page, "matrix")
    assert (rows, cols) == (64, 144) and 0 < drawn < rows * cols
    # hovering an input scrolls W's box to its column (35 rows: it fits), drawn and lit in full
    check_hover(page, geo, "input", 7, 9)
    box = page.locator(".conv-explorer .cx-wscroll").bounding_box()
    for el in page.locator(".conv-explorer [data-grid=matrix].highlight").all():
        b = el.bounding_box()
        assert box["y"] <= b["y"] and b["y"] + b["height"] <= box["y"] + box["height"] + 1
    # a row of 25 taps spans 53 columns, wider than the box: it scrolls to the row's first entry,
    # and the entries drawn are exactly those of the row
    cell(page, "output", 6, 2).hover()
    expected, _ = geo.linked_to_y(6, 2)
    drawn = {tuple(c) for c in page.evaluate("""() => [...document.querySelectorAll(
        '.conv-explorer [data-grid=matrix]')].map(el => ['matrix', +el.dataset.i, +el.dataset.j])""")}
    got = {tuple(c[:3]) for c in lit(page)["cells"]}
    row = {c for c in expected if c[0] == "matrix"}
    assert min(row) in drawn and got == (expected - row) | (row & drawn)
    # the box is the tab stop of a large W: it hands the focus to a cell, scrolling back to it;
    # the keyboard reaches the far corner, drawing it on the way
    page.mouse.move(2, 2)
    page.locator('.conv-explorer input[data-knob="fit"]').focus()
    page.keyboard.press("Tab")
    assert focused(page) == ["matrix", 0, 0]
    page.keyboard.press("Control+End")
    assert focused(page) == ["matrix", 63, 143]
    expected, _ = geo.linked_to_matrix(63, 143)
    assert {tuple(c[:3]) for c in lit(page)["cells"]} == expected
    page.keyboard.press("Escape")


def test_unread_entries_are_marked(explorer):
    page, _ = explorer
    # 6 rows, kernel 3, stride 2: windows start at rows 0 and 2, row 5 is never read
    cfg = full(dict(input=[6, 5], kernel=[3, 2], stride=[2, 2]))
    set_config(page, cfg)
    geo = Geometry(cfg)
    read_cols = {x for _, x, _ in geo.entries}
    unread = {(x // geo.X[1], x % geo.X[1]) for x in range(geo.X[0] * geo.X[1]) if x not in read_cols}
    got = page.evaluate("""() => [...document.querySelectorAll('.conv-explorer [data-grid="input"].cx-unread')]
                                  .map(el => [+el.dataset.i, +el.dataset.j])""")
    assert unread and {tuple(g) for g in got} == unread
    text = page.locator(".conv-explorer .cx-formulas").inner_text()
    assert f"{len(unread)} input entries are read by no window" in text


# ------------------------------------------------------------------------------- controls, keyboard

def knob(page, key, axis):
    return page.locator(f'.conv-explorer input[data-knob="{key}"][data-axis="{axis}"]')


def grid_shape(page, grid):
    """[rows, columns, cells drawn] of a grid (W gives its size in aria-rowcount and aria-colcount)."""
    return page.evaluate(f"""() => {{
        const g = document.querySelector('.conv-explorer .cx-grid[data-name="{grid}"]');
        if (!g) return null;
        const n = g.querySelectorAll('[data-grid]').length;
        return g.hasAttribute('aria-rowcount') ? [+g.getAttribute('aria-rowcount'), +g.getAttribute('aria-colcount'), n]
            : [+g.style.getPropertyValue('--rows'), +g.style.getPropertyValue('--cols'), n]; }}""")


def test_controls_and_presets(explorer):
    page, _ = explorer
    page.locator('.conv-explorer button[data-preset="0"]').click()  # the running example
    assert grid_shape(page, "matrix") == [12, 30, 360]
    formulas = page.locator(".conv-explorer .cx-formulas")
    assert "96 non-zero" in formulas.inner_text()

    # the number inputs drive the setting
    for key, axis, value in [("input", 0, 7), ("stride", 1, 2), ("padding", 0, 1), ("dilation", 0, 2)]:
        knob(page, key, axis).fill(str(value))
    cfg = page.evaluate("document.querySelector('.conv-explorer').convExplorer.config")
    assert cfg["input"] == [7, 6] and cfg["stride"] == [1, 2] and cfg["padding"] == [1, 0] and cfg["dilation"] == [2, 1]
    o = convlib.conv_output_size((7, 6), (2, 4), (1, 2), ((1, 1), (0, 0)), (2, 1))
    W = convlib.kernel_matrix(tap_kernel(2, 4), (7, 6), stride=(1, 2), padding=(1, 0), dilation=(2, 1))
    assert grid_shape(page, "output")[:2] == list(o)
    assert grid_shape(page, "matrix")[:2] == list(W.shape)
    assert grid_shape(page, "input")[:2] == [7 + 2, 6]  # the padding frame is drawn
    text = formulas.inner_text()
    assert f"= {o[0]}" in text and f"{W.values().numel()} non-zero" in text

    # presets: strided, dilated, 'same'
    expected = {
        "1": convlib.kernel_matrix(tap_kernel(2, 4), (5, 6), stride=2),
        "2": convlib.kernel_matrix(tap_kernel(3, 3), (7, 7), dilation=2),
        "3": convlib.kernel_matrix(tap_kernel(2, 4), (5, 6), padding="same"),
    }
    for preset, W in expected.items():
        page.locator(f'.conv-explorer button[data-preset="{preset}"]').click()
        assert grid_shape(page, "matrix")[:2] == list(W.shape), preset
        stored = page.locator(".conv-explorer [data-grid=matrix].cx-s").count()
        assert stored == W.values().numel(), preset
    assert page.locator('.conv-explorer input[data-knob="same"]').is_checked()
    # 'same' for the 2 x 4 kernel: 0 before and 1 after (height), 1 and 2 (width): a 6 x 9 grid
    assert grid_shape(page, "input")[:2] == [5 + 0 + 1, 6 + 1 + 2]

    # an invalid setting: a sentence and PyTorch's own error, never an empty panel
    page.locator('.conv-explorer button[data-preset="0"]').click()
    knob(page, "input", 1).fill("3")
    error = page.locator(".conv-explorer .cx-error")
    assert error.is_visible()
    assert torch_error(full(dict(input=[5, 3], kernel=[2, 4]))) in error.inner_text()
    assert "no window fits" in error.inner_text()
    assert page.locator('.conv-explorer [data-panel="output"] .cx-missing').is_visible()
    assert "does not exist" in page.locator(".conv-explorer .cx-wbody").inner_text()
    assert grid_shape(page, "input")[:2] == [5, 3]  # the input is still drawn
    page.locator('.conv-explorer input[data-knob="same"]').check()
    knob(page, "stride", 0).fill("2")
    assert torch_error(full(dict(input=[5, 3], kernel=[2, 4], padding="same", stride=[2, 1]))) in error.inner_text()

    # the mode switch keeps the pair of sizes: W^T of the same convolution
    page.locator('.conv-explorer button[data-preset="1"]').click()  # 5 x 6, 2 x 4, stride 2 -> 2 x 2
    page.locator('.conv-explorer input[type=radio][value="transposed"]').check()
    cfg = page.evaluate("document.querySelector('.conv-explorer').convExplorer.config")
    assert cfg["mode"] == "transposed" and cfg["input"] == [2, 2]
    # output_padding = (i + 2p - d(k - 1) - 1) mod s gives back 5 x 6
    assert cfg["output_padding"] == [(5 - 1 - 1) % 2, (6 - 3 - 1) % 2]
    W = convlib.kernel_matrix(tap_kernel(2, 4), (5, 6), stride=2)
    assert grid_shape(page, "matrix")[:2] == [W.shape[1], W.shape[0]]
    assert grid_shape(page, "output")[:2] == [5, 6]
    assert page.locator('.conv-explorer tr[data-row="output_padding"]').is_visible()
    # the ambiguity output_padding resolves: heights 4 and 5 both convolve to 2, widths 6 and 7
    assert "inputs of 4 and 5 both convolve to 2; output_padding = 1 picks 5" in formulas.inner_text()
    assert "inputs of 6 and 7 both convolve to 2; output_padding = 0 picks 6" in formulas.inner_text()
    # an output_padding PyTorch refuses
    knob(page, "output_padding", 1).fill("2")
    refused = full(dict(mode="transposed", input=[2, 2], kernel=[2, 4], stride=[2, 2], output_padding=[1, 2]))
    assert torch_error(refused, transposed=True) in error.inner_text()
    page.locator('.conv-explorer input[type=radio][value="conv"]').check()
    page.locator('.conv-explorer button[data-preset="initial"]').click()
    assert page.evaluate("document.querySelector('.conv-explorer').convExplorer.config")["input"] == [5, 6]
    assert grid_shape(page, "matrix")[:2] == [12, 30]


def test_keyboard(explorer):
    page, _ = explorer
    cfg = full(dict(input=[5, 6], kernel=[2, 4], padding=[1, 0]))
    set_config(page, cfg)
    geo = Geometry(cfg)
    page.mouse.move(0, 0)
    # Tab from the last control reaches the first grid; its first cell inside the input
    page.locator('.conv-explorer button[data-preset="initial"]').focus()
    page.keyboard.press("Tab")
    assert focused(page) == ["input", 0, 0]
    expected, _ = geo.linked_to_x(0, 0)
    assert {tuple(c[:3]) for c in lit(page)["cells"]} == expected
    page.keyboard.press("ArrowUp")  # into the padding frame
    assert focused(page) == ["input", -1, 0]
    page.keyboard.press("Tab")  # the kernel
    assert focused(page)[0] == "kernel"
    page.keyboard.press("Tab")  # the output
    assert focused(page) == ["output", 0, 0]
    for key, where in [("ArrowRight", (0, 1)), ("ArrowDown", (1, 1)), ("End", (1, geo.Y[1] - 1)),
                       ("Home", (1, 0)), ("ArrowLeft", (1, 0))]:
        page.keyboard.press(key)
        assert focused(page) == ["output", *where], key
        expected, _ = geo.linked_to_y(*where)
        expected.discard(("output", *where))
        assert {tuple(c[:3]) for c in lit(page)["cells"]} == expected, key
    # Enter: to the output's first entry in W; from there Shift+Enter to its input, Enter to its output
    page.keyboard.press("Enter")
    r = 1 * geo.Y[1] + 0
    first = min(x for y, x, _ in geo.entries if y == r)
    assert focused(page) == ["matrix", r, first]
    expected, _ = geo.linked_to_matrix(r, first)
    assert {tuple(c[:3]) for c in lit(page)["cells"]} == expected
    page.keyboard.press("ArrowRight")
    assert focused(page) == ["matrix", r, first + 1]
    page.keyboard.press("PageDown")  # one block of rows down
    assert focused(page) == ["matrix", r + geo.Y[1], first + 1]
    page.keyboard.press("Shift+Enter")
    x = first + 1
    assert focused(page) == ["input", x // geo.X[1], x % geo.X[1]]
    page.keyboard.press("Escape")
    assert lit(page)["cells"] == [] and lit(page)["active"] == []
    # every grid is labelled, every cell too
    labels = page.evaluate("""() => [...document.querySelectorAll('.conv-explorer [data-grid]')]
                                    .filter(el => !el.getAttribute('aria-label')).length""")
    assert labels == 0
    assert page.locator(".conv-explorer .cx-grid[role=grid][aria-label]").count() == 4
    assert page.locator(".conv-explorer .cx-readout[aria-live]").count() == 1


# ------------------------------------------------------------------------------- pages, phone, themes

EMBEDDED = {
    # page: (mode, expected matrix shape, from the text around it)
    "book/02_kernel_matrix.html": ("conv", tuple(convlib.kernel_matrix(tap_kernel(2, 4), (5, 6)).shape)),
    "book/04_shapes.html": ("conv", tuple(convlib.kernel_matrix(tap_kernel(3, 3), (7, 7), stride=2).shape)),
    # transposed: y 4 x 4, 3 x 3 kernel, stride 2, padding 1, output_padding 1 -> z 8 x 8, W^T 64 x 16
    "book/07_transposed.html": ("transposed", (64, 16)),
}


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_explorers_start_from_their_chapter(visit, server, name):
    context, page, problems = visit(server + name)
    mode, shape = EMBEDDED[name]
    assert page.locator(".conv-explorer.cx-mounted").count() == 1
    assert page.evaluate("document.querySelector('.conv-explorer').convExplorer.config.mode") == mode
    assert grid_shape(page, "matrix")[:2] == list(shape)
    # hovering works there too
    page.locator('.conv-explorer [data-grid="output"][data-i="1"][data-j="1"]').hover()
    assert page.locator(".conv-explorer [data-grid].highlight").count() > 0
    # and on a phone's width the chapter does not scroll sideways
    page.set_viewport_size({"width": 375, "height": 800})
    page.wait_for_timeout(200)  # the explorer lays itself out again on resize
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    box = page.locator(".conv-explorer").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375, box
    assert not problems, "\n".join(problems)


def test_phone_width_has_no_sideways_scroll(visit, server):
    context, page, problems = visit(server + PAGE, viewport=(375, 800), is_mobile=True, has_touch=True)
    # as the page starts, 12 x 12 with 5 x 5, and the two transposed examples
    for preset in ["initial", "6", "4", "5"]:
        page.locator(f'.conv-explorer button[data-preset="{preset}"]').click()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (preset, width)
        box = page.locator(".conv-explorer").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, (preset, box)
    # a tap on a cell links it, as a hover does
    page.locator('.conv-explorer [data-grid="input"][data-i="0"][data-j="0"]').tap()
    assert page.locator(".conv-explorer [data-grid].highlight").count() > 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 375, "height": page.evaluate("document.documentElement.scrollHeight")})
    page.locator(".conv-explorer").screenshot(path=str(SCREENSHOTS / "explorer-phone.png"))
    assert not problems, "\n".join(problems)


def contrast(fg, bg):
    """WCAG contrast ratio of two 'rgb(...)' colours."""
    def luminance(css):
        parts = [float(v) for v in css[css.index("(") + 1:css.index(")")].split(",")[:3]]
        lin = [(c / 255 / 12.92) if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in parts]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted([luminance(fg), luminance(bg)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def shoot(page, path):
    """A screenshot of the explorer, whole: the viewport as tall as the page, so nothing scrolls."""
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1280, "height": height})
    page.mouse.move(2, 2)  # off the explorer: what stays lit is what the focused cell links
    page.locator(".conv-explorer").screenshot(path=str(path))
    assert path.stat().st_size > 20_000
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_and_colours(visit, server, scheme):
    context, page, problems = visit(server + PAGE, color_scheme=scheme)
    assert page.evaluate("document.documentElement.dataset.theme") == scheme
    cell(page, "output", 1, 1).hover()
    colours = page.evaluate("""() => {
        const style = el => { const s = getComputedStyle(el); return [s.color, s.backgroundColor]; };
        const root = document.querySelector('.conv-explorer');
        return {
          root: style(root),
          highlight: style(root.querySelector('[data-grid].highlight')),
          active: style(root.querySelector('[data-grid].active')),
          stored: style(root.querySelector('[data-grid=matrix].cx-s:not(.highlight)')),
          cell: style(root.querySelector('[data-grid=input]:not(.highlight)')),
        }; }""")
    for part, (fg, bg) in colours.items():
        assert contrast(fg, bg) >= 4.5, (scheme, part, fg, bg)
    # the three states a reader must tell apart differ in lightness, not only in hue
    assert contrast(colours["highlight"][1], colours["active"][1]) > 1.5, colours
    assert contrast(colours["highlight"][1], colours["stored"][1]) > 1.3, colours
    dark_bg = contrast(colours["root"][1], "rgb(0, 0, 0)") < 3
    assert dark_bg == (scheme == "dark"), colours["root"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    cell(page, "output", 1, 1).focus()
    shoot(page, SCREENSHOTS / f"explorer-{scheme}.png")
    assert page.locator(".conv-explorer [data-grid].highlight").count() == 8 + 8 + 8  # W row, window, taps
    page.locator('.conv-explorer button[data-preset="5"]').click()  # transposed, output_padding
    cell(page, "output", 2, 3).focus()
    shoot(page, SCREENSHOTS / f"explorer-transposed-{scheme}.png")
    assert page.locator(".conv-explorer [data-grid].highlight").count() > 0
    assert not problems, "\n".join(problems)
