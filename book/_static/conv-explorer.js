/* conv-explorer.js: an interactive explorer of the kernel matrix W of a 2-d convolution and of
 * its transpose W^T, for "Convolution as a Matrix". Plain JavaScript, no dependencies, no network.
 *
 * Interface (tests/browser/test_explorer.py and readers' own pages rely on it):
 *   convExplorer.kernelMatrix(cfg) -> {rows, cols, entries}, entries = [[row, col, tap], ...]
 *       cfg = {input: [h, w], kernel: [kh, kw], stride, padding, dilation} (pairs or ints;
 *       padding may also be "same" or "valid"). The matrix of convlib.kernel_matrix with kernel
 *       values tap + 1, tap = a * kw + b the row-major index of K[a, b]. Invalid settings throw
 *       an Error whose name and message are those convlib.kernel_matrix raises.
 *   convExplorer.outputSize(cfg) -> [oh, ow] (non-positive when the kernel does not fit)
 *   convExplorer.mount(element, cfg) -> {set(cfg), config, element}
 *   Every <div class="conv-explorer" data-config='{...}'> is mounted when the page loads.
 *   Every cell is an element with data-grid ("input", "kernel", "output" or "matrix"), data-i and
 *   data-j (its row and column in that grid; padding cells lie outside 0..h-1, 0..w-1). Cells
 *   linked to the hovered or focused cell carry the class "highlight"; that cell carries "active".
 *   A matrix of more than 6000 entries is drawn a window at a time: only the cells its scroll box
 *   shows (and a margin) are elements, and they get their classes as they are drawn.
 * With cfg.mode = "transposed", cfg.input is the input size of conv_transpose2d (the size of y)
 * and cfg.output_padding its output_padding; the explorer shows W^T, its "input" grid is y, its
 * "output" grid is the result z, and the matrix cells are indexed by the rows and columns of W^T.
 */
(function () {
  "use strict";

  var MINUS = "\u2212", TIMES = "\u00d7", DOT = "\u00b7", PRIME = "\u2032", T = "\u22a4";
  var AXES = ["height", "width"];

  // ---------------------------------------------------------------- arguments and errors

  function pyError(name, message) {
    var error = new Error(message);
    error.name = name;
    return error;
  }

  /** A value as Python's repr() writes it (arrays are tuples: what the tests pass to convlib). */
  function repr(v) {
    if (Array.isArray(v)) return "(" + v.map(repr).join(", ") + (v.length === 1 ? ",)" : ")");
    if (typeof v === "string") return "'" + v + "'";
    if (v === true) return "True";
    if (v === false) return "False";
    if (v === null || v === undefined) return "None";
    return String(v);
  }

  function isInt(v) {
    return typeof v === "number" && Number.isInteger(v);
  }

  /** An int or a sequence of ints as two ints, with convlib.shapes.as_tuple's errors. */
  function pair(value, name) {
    if (isInt(value)) return [value, value];
    if (Array.isArray(value) && value.every(isInt)) {
      if (value.length === 1) return [value[0], value[0]];
      if (value.length === 2) return value.slice();
      throw pyError("RuntimeError", "expected " + name + " to be a single integer value or a list " +
        "of 2 values to match the convolution dimensions, but got " + name + "=" + repr(value));
    }
    throw pyError("TypeError", name + " must be an int or a tuple of 2 ints, got " + repr(value));
  }

  function sizePair(value, name) {
    if (!Array.isArray(value) || value.length !== 2 || !value.every(isInt)) {
      throw pyError("TypeError", name + " must be two ints [height, width], got " + repr(value));
    }
    return value.slice();
  }

  function get(cfg, key, fallback) {
    var v = cfg[key];
    if (v === undefined && key === "output_padding") v = cfg.outputPadding;
    return v === undefined || v === null ? fallback : v;
  }

  function isTransposed(cfg) {
    return cfg.mode === "transposed";
  }

  /**
   * The geometry of a convolution from X (size X) to Y (size Y): W has one row per position of
   * Y and one column per position of X; output position o with tap a reads X at o*s - before + a*d.
   * Messages and their order are convlib.kernel_matrix's.
   */
  function convGeometry(cfg) {
    if (!cfg || typeof cfg !== "object") throw pyError("TypeError", "cfg must be an object");
    var X = sizePair(cfg.input, "input_size");
    var k = sizePair(cfg.kernel, "kernel_size");
    if (X.some(function (n) { return n < 1; })) {
      throw pyError("ValueError", "input_size must be positive, got " + repr(X));
    }
    if (k.some(function (n) { return n < 1; })) {
      throw pyError("ValueError", "kernel_size must be positive, got " + repr(k));
    }
    var strideArg = get(cfg, "stride", 1), dilationArg = get(cfg, "dilation", 1);
    var paddingArg = get(cfg, "padding", 0);
    var s = pair(strideArg, "stride"), d = pair(dilationArg, "dilation");
    if (s.some(function (v) { return v <= 0; })) {
      throw pyError("RuntimeError", "non-positive stride is not supported, got stride=" + repr(strideArg));
    }
    if (d.some(function (v) { return v <= 0; })) {
      throw pyError("RuntimeError", "dilation should be greater than zero, got dilation=" + repr(dilationArg));
    }
    var before, after;
    if (typeof paddingArg === "string") {
      if (paddingArg === "valid") {
        before = [0, 0]; after = [0, 0];
      } else if (paddingArg === "same") {
        if (s.some(function (v) { return v !== 1; })) {
          throw pyError("RuntimeError", "padding='same' is not supported for strided convolutions");
        }
        var total = [d[0] * (k[0] - 1), d[1] * (k[1] - 1)];
        before = total.map(function (t) { return Math.floor(t / 2); });
        after = total.map(function (t, m) { return t - before[m]; });
      } else {
        throw pyError("RuntimeError", "Invalid padding string " + repr(paddingArg) +
          ": padding must be an int, a tuple, 'valid' or 'same'");
      }
    } else {
      var p = pair(paddingArg, "padding");
      if (p.some(function (v) { return v < 0; })) {
        throw pyError("RuntimeError", "negative padding is not supported, got padding=" + repr(paddingArg));
      }
      before = p.slice(); after = p.slice();
    }
    var Y = [0, 1].map(function (m) {
      return Math.floor((X[m] + before[m] + after[m] - d[m] * (k[m] - 1) - 1) / s[m]) + 1;
    });
    var g = {
      mode: "conv", X: X, Y: Y, k: k, s: s, d: d, before: before, after: after,
      frameBefore: before.slice(), frameAfter: after.slice(), opad: [0, 0], padding: paddingArg,
    };
    if (Y.some(function (o) { return o < 1; })) {
      var padded = [X[0] + before[0] + after[0], X[1] + before[1] + after[1]];
      var span = [d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1];
      var error = pyError("RuntimeError", "Calculated padded input size per channel: " + repr(padded) +
        ". Kernel size (dilated): " + repr(span) + ". Kernel size can't be greater than actual input size");
      error.geometry = g;
      throw error;
    }
    return g;
  }

  /**
   * The geometry of conv_transpose2d with input y of size cfg.input: the convolution it is the
   * transpose of goes from X (the result's size) to Y = cfg.input. Messages and their order are
   * PyTorch's (convlib's kernel_matrix has no output_padding).
   */
  function transposedGeometry(cfg) {
    if (!cfg || typeof cfg !== "object") throw pyError("TypeError", "cfg must be an object");
    var Y = sizePair(cfg.input, "input_size");
    var k = sizePair(cfg.kernel, "kernel_size");
    if (Y.some(function (n) { return n < 1; })) {
      throw pyError("ValueError", "input_size must be positive, got " + repr(Y));
    }
    if (k.some(function (n) { return n < 1; })) {
      throw pyError("ValueError", "kernel_size must be positive, got " + repr(k));
    }
    var paddingArg = get(cfg, "padding", 0);
    if (typeof paddingArg === "string") {
      throw pyError("TypeError", "conv_transpose2d(): argument 'padding' must be tuple of ints, not str");
    }
    var p = pair(paddingArg, "padding"), s = pair(get(cfg, "stride", 1), "stride");
    var d = pair(get(cfg, "dilation", 1), "dilation"), a = pair(get(cfg, "output_padding", 0), "output_padding");
    checkPositive(p, s, d, true);
    if (a.some(function (v) { return v < 0; })) {
      throw pyError("RuntimeError", "negative output_padding is not supported");
    }
    if (a.some(function (v, m) { return !(v < s[m] || v < d[m]); })) {
      throw pyError("RuntimeError", "output padding must be smaller than either stride or dilation, " +
        "but got output_padding_height: " + a[0] + " output_padding_width: " + a[1] +
        " stride_height: " + s[0] + " stride_width: " + s[1] +
        " dilation_height: " + d[0] + " dilation_width: " + d[1]);
    }
    var X = [0, 1].map(function (m) {
      return (Y[m] - 1) * s[m] - 2 * p[m] + d[m] * (k[m] - 1) + a[m] + 1;
    });
    var g = {
      mode: "transposed", X: X, Y: Y, k: k, s: s, d: d, before: p.slice(), after: p.slice(),
      // z is the sum of stamps with p cut from the start and p - a from the end of each axis
      frameBefore: p.slice(), frameAfter: [Math.max(p[0] - a[0], 0), Math.max(p[1] - a[1], 0)],
      opad: a, padding: p,
    };
    // (PyTorch's CPU kernel for some kernel sizes, 4 x 4 among them, returns an empty tensor for a
    // size of 0 instead; its general check, and the explorer, refuse every size below 1)
    if (X.some(function (o) { return o < 1; })) {
      var error = pyError("RuntimeError", "Given input size per channel: (" + Y[0] + " x " + Y[1] +
        "). Calculated output size per channel: (" + X[0] + " x " + X[1] + "). Output size is too small");
      error.geometry = g;
      throw error;
    }
    return g;
  }

  /** PyTorch's checks on padding, stride and dilation, in its order (F.conv2d, conv_transpose2d). */
  function checkPositive(p, s, d, transposed) {
    if (p.some(function (v) { return v < 0; })) throw pyError("RuntimeError", "negative padding is not supported");
    if (s.some(function (v) { return v <= 0; })) throw pyError("RuntimeError", "non-positive stride is not supported");
    if (d.some(function (v) { return v < 0; })) throw pyError("RuntimeError", "dilation should be greater than zero");
    if (d.some(function (v) { return v === 0; })) {
      throw pyError("RuntimeError", "dilation should be greater than zero, but got " + (transposed
        ? "dilation_height: " + d[0] + ", dilation_width: " + d[1] : "[" + d[0] + ", " + d[1] + "]"));
    }
  }

  /** What F.conv2d (or F.conv_transpose2d) raises for these settings: "Class: message", or null. */
  function torchError(cfg) {
    try {
      if (isTransposed(cfg)) {
        transposedGeometry(cfg);
        return null;
      }
      var X = sizePair(cfg.input, "input_size"), k = sizePair(cfg.kernel, "kernel_size");
      var s = pair(get(cfg, "stride", 1), "stride"), d = pair(get(cfg, "dilation", 1), "dilation");
      var paddingArg = get(cfg, "padding", 0), before, after;
      if (typeof paddingArg === "string") {
        if (paddingArg === "same") {
          if (s.some(function (v) { return v !== 1; })) {
            throw pyError("RuntimeError", "padding='same' is not supported for strided convolutions");
          }
          checkPositive([0, 0], s, d, false);
          before = [0, 1].map(function (m) { return Math.floor(d[m] * (k[m] - 1) / 2); });
          after = [0, 1].map(function (m) { return d[m] * (k[m] - 1) - before[m]; });
        } else if (paddingArg === "valid") {
          before = [0, 0]; after = [0, 0];
        } else {
          throw pyError("RuntimeError", "Invalid padding string: " + repr(paddingArg));
        }
      } else {
        before = pair(paddingArg, "padding"); after = before;
      }
      checkPositive(before, s, d, false);
      var padded = [X[0] + before[0] + after[0], X[1] + before[1] + after[1]];
      var span = [d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1];
      if (padded[0] < span[0] || padded[1] < span[1]) {
        throw pyError("RuntimeError", "Calculated padded input size per channel: (" + padded[0] + " x " +
          padded[1] + "). Kernel size: (" + span[0] + " x " + span[1] +
          "). Kernel size can't be greater than actual input size");
      }
      return null;
    } catch (error) {
      return error.name + ": " + error.message;
    }
  }

  function geometry(cfg) {
    return isTransposed(cfg) ? transposedGeometry(cfg) : convGeometry(cfg);
  }

  /** Stored entries of W, [row, col, tap], sorted by row, then column. */
  function entriesOf(g) {
    var entries = [], kh = g.k[0], kw = g.k[1];
    for (var oh = 0; oh < g.Y[0]; oh++) {
      for (var ow = 0; ow < g.Y[1]; ow++) {
        var row = oh * g.Y[1] + ow;
        for (var a = 0; a < kh; a++) {
          var vh = oh * g.s[0] - g.before[0] + a * g.d[0];
          if (vh < 0 || vh >= g.X[0]) continue;
          for (var b = 0; b < kw; b++) {
            var vw = ow * g.s[1] - g.before[1] + b * g.d[1];
            if (vw < 0 || vw >= g.X[1]) continue;
            entries.push([row, vh * g.X[1] + vw, a * kw + b]);
          }
        }
      }
    }
    return entries;
  }

  /** W of the convolution (of the convolution a transposed cfg transposes). */
  function kernelMatrix(cfg) {
    var g = geometry(cfg);
    return { rows: g.Y[0] * g.Y[1], cols: g.X[0] * g.X[1], entries: entriesOf(g) };
  }

  /** The matrix of conv_transpose2d for a transposed cfg: W^T, [row of z, col of y, tap]. */
  function transposedMatrix(cfg) {
    var g = transposedGeometry(Object.assign({}, cfg, { mode: "transposed" }));
    var entries = entriesOf(g).map(function (e) { return [e[1], e[0], e[2]]; });
    entries.sort(function (p, q) { return p[0] - q[0] || p[1] - q[1]; });
    return { rows: g.X[0] * g.X[1], cols: g.Y[0] * g.Y[1], entries: entries };
  }

  /** [oh, ow]: the output size of the convolution, or of the transposed convolution. */
  function outputSize(cfg) {
    try {
      var g = geometry(cfg);
      return isTransposed(cfg) ? g.X.slice() : g.Y.slice();
    } catch (error) {
      if (error.geometry) return isTransposed(cfg) ? error.geometry.X.slice() : error.geometry.Y.slice();
      throw error;
    }
  }

  // ---------------------------------------------------------------- text helpers

  function n(v) {
    return v < 0 ? MINUS + (-v) : String(v);
  }
  function esc(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }
  function idx(name, i, j) {
    return name + "[" + n(i) + ", " + n(j) + "]";
  }
  function tapName(g, t) {
    return "K[" + Math.floor(t / g.k[1]) + ", " + (t % g.k[1]) + "]";
  }
  function list(items, max) {
    if (items.length <= max) return items.join(", ");
    return items.slice(0, max).join(", ") + ", \u2026 (" + items.length + " in all)";
  }
  function plural(count, one, many) {
    return count + " " + (count === 1 ? one : many);
  }

  // ---------------------------------------------------------------- the explorer

  var DEFAULT = {
    mode: "conv", input: [5, 6], kernel: [2, 4], stride: [1, 1], padding: [0, 0],
    dilation: [1, 1], output_padding: [0, 0],
  };

  var PRESETS = [
    { label: "5 " + TIMES + " 6 input, 2 " + TIMES + " 4 kernel", title: "the book's running example",
      cfg: { mode: "conv", input: [5, 6], kernel: [2, 4] } },
    { label: "stride 2", title: "the running example with stride (2, 2): rows of W deleted",
      cfg: { mode: "conv", input: [5, 6], kernel: [2, 4], stride: [2, 2] } },
    { label: "dilation 2", title: "a 3 x 3 kernel with dilation 2 on a 7 x 7 input",
      cfg: { mode: "conv", input: [7, 7], kernel: [3, 3], dilation: [2, 2] } },
    { label: "'same' padding", title: "the running example with padding='same' (0 before, 1 after in height; 1 and 2 in width)",
      cfg: { mode: "conv", input: [5, 6], kernel: [2, 4], padding: "same" } },
    { label: "transposed, stride 2", title: "a 3 x 3 y, a 3 x 3 kernel, stride 2: z is 7 x 7",
      cfg: { mode: "transposed", input: [3, 3], kernel: [3, 3], stride: [2, 2] } },
    { label: "output_padding", title: "y 4 x 4, kernel 3 x 3, stride 2, padding 1, output_padding 1: z is 8 x 8",
      cfg: { mode: "transposed", input: [4, 4], kernel: [3, 3], stride: [2, 2], padding: [1, 1], output_padding: [1, 1] } },
    { label: "12 " + TIMES + " 12, 5 " + TIMES + " 5", title: "a large W: 64 x 144",
      cfg: { mode: "conv", input: [12, 12], kernel: [5, 5] } },
  ];

  var KNOBS = [
    { key: "input", label: "input", min: 1, max: 12 },
    { key: "kernel", label: "kernel", min: 1, max: 5 },
    { key: "stride", label: "stride", min: 1, max: 5 },
    { key: "padding", label: "padding", min: 0, max: 4 },
    { key: "dilation", label: "dilation", min: 1, max: 4 },
    { key: "output_padding", label: "output_padding", min: 0, max: 4 },
  ];

  var counter = 0;

  function Explorer(element, cfg) {
    this.element = element;
    this.id = "cx" + (++counter);
    this.cfg = Object.assign({}, DEFAULT);
    this.initial = null;
    this.activeCell = null;
    this.focusCell = null;
    this.lit = [];
    this.fit = false;
    this.build();
    this.set(cfg || {});
    this.initial = JSON.parse(JSON.stringify(this.cfg));
  }

  Explorer.prototype.build = function () {
    var el = this.element, self = this;
    el.classList.add("conv-explorer", "cx-mounted");
    el.setAttribute("role", "group");
    el.setAttribute("aria-label", "Interactive explorer of the kernel matrix W");
    var knobRows = KNOBS.map(function (knob) {
      var cells = [0, 1].map(function (m) {
        return '<td><input type="number" inputmode="numeric" step="1" min="' + knob.min + '" max="' +
          knob.max + '" data-knob="' + knob.key + '" data-axis="' + m + '" aria-label="' + knob.label +
          " " + AXES[m] + '"></td>';
      }).join("");
      var extra = knob.key === "padding"
        ? '<td><label class="cx-same"><input type="checkbox" data-knob="same"> \'same\'</label></td>' : "<td></td>";
      return '<tr data-row="' + knob.key + '"><th scope="row">' + knob.label + "</th>" + cells + extra + "</tr>";
    }).join("");
    el.innerHTML =
      '<div class="cx-top">' +
        '<div class="cx-controls">' +
          '<div class="cx-mode" role="radiogroup" aria-label="What to show">' +
            '<label><input type="radio" name="' + this.id + '-mode" value="conv"> convolution: <i>W</i></label>' +
            '<label><input type="radio" name="' + this.id + '-mode" value="transposed"> transposed: <i>W</i><sup>' + T + "</sup></label>" +
          "</div>" +
          '<table class="cx-knobs"><thead><tr><th></th><th scope="col">height</th><th scope="col">width</th><th></th></tr></thead>' +
            "<tbody>" + knobRows + "</tbody></table>" +
          '<div class="cx-presets" role="group" aria-label="Examples"><span>Examples:</span> ' +
            PRESETS.map(function (p, i) {
              return '<button type="button" data-preset="' + i + '" title="' + esc(p.title) + '">' + esc(p.label) + "</button>";
            }).join(" ") +
            ' <button type="button" data-preset="initial" title="back to the setting this page started from">\u21ba start</button>' +
          "</div>" +
        "</div>" +
        '<div class="cx-formulas" aria-live="polite"></div>' +
      "</div>" +
      '<div class="cx-panels"></div>' +
      '<div class="cx-readout" aria-live="polite"></div>' +
      '<section class="cx-panel cx-wpanel">' +
        '<div class="cx-whead"><h4 class="cx-title"></h4>' +
          '<label class="cx-fit"><input type="checkbox" data-knob="fit"> fit to width</label></div>' +
        '<div class="cx-wbody"></div>' +
        '<div class="cx-legend"></div>' +
      "</section>" +
      '<p class="cx-keys">Keyboard: <kbd>Tab</kbd> into a grid, arrow keys to move, <kbd>Enter</kbd> ' +
        "to jump between a cell and its entries of the matrix (<kbd>Shift</kbd>+<kbd>Enter</kbd>: to its input), " +
        "<kbd>Esc</kbd> to let go. On a touch screen, tap a cell.</p>";

    this.panels = el.querySelector(".cx-panels");
    this.readout = el.querySelector(".cx-readout");
    this.formulas = el.querySelector(".cx-formulas");
    this.wTitle = el.querySelector(".cx-wpanel .cx-title");
    this.wBody = el.querySelector(".cx-wbody");
    this.legend = el.querySelector(".cx-legend");

    el.addEventListener("input", function (event) { self.onControl(event); });
    el.addEventListener("change", function (event) { self.onControl(event, true); });
    el.addEventListener("click", function (event) { self.onClick(event); });
    el.addEventListener("mouseover", function (event) { self.onHover(event); });
    el.addEventListener("mouseleave", function () { self.onLeave(); });
    el.addEventListener("focusin", function (event) { self.onFocus(event); });
    el.addEventListener("focusout", function (event) { self.onBlur(event); });
    el.addEventListener("keydown", function (event) { self.onKey(event); });
    if (typeof ResizeObserver === "function") {
      var width = 0;
      this.resizer = new ResizeObserver(function (records) {
        var w = Math.round(records[0].contentRect.width);
        if (Math.abs(w - width) < 8) return;
        width = w;
        window.requestAnimationFrame(function () { self.layout(); });
      });
      this.resizer.observe(el);
    }
  };

  // ------------------------------------------------------------ configuration

  Explorer.prototype.set = function (cfg) {
    cfg = cfg || {};
    var next = Object.assign({}, this.cfg);
    Object.keys(cfg).forEach(function (key) {
      var v = cfg[key];
      if (key === "outputPadding") key = "output_padding";
      next[key] = Array.isArray(v) ? v.slice() : v;
    });
    if (next.mode !== "transposed") next.mode = "conv";
    this.cfg = next;
    this.render();
    return this;
  };

  Object.defineProperty(Explorer.prototype, "config", {
    get: function () { return JSON.parse(JSON.stringify(this.cfg)); },
  });

  /** Switch between W and W^T keeping the same pair of sizes (output_padding picks X's size). */
  Explorer.prototype.setMode = function (mode) {
    if (mode === this.cfg.mode) return;
    var cfg = this.cfg, next = { mode: mode };
    try {
      var g = geometry(cfg);
      if (mode === "transposed") {
        next.input = g.Y.slice();
        next.padding = g.before.slice();
        if (cfg.padding === "same" && (g.before[0] !== g.after[0] || g.before[1] !== g.after[1])) {
          next.padding = g.before.slice();
        }
        // output_padding = (i + 2p - d(k - 1) - 1) mod s gives back X's size
        next.output_padding = [0, 1].map(function (m) {
          return (g.X[m] + 2 * g.before[m] - g.d[m] * (g.k[m] - 1) - 1) % g.s[m];
        });
      } else {
        next.input = g.X.slice();
      }
    } catch (error) {
      if (mode === "transposed" && cfg.padding === "same") next.padding = [0, 0];
    }
    this.set(next);
  };

  Explorer.prototype.onControl = function (event, committed) {
    var target = event.target, knob = target.getAttribute("data-knob");
    if (target.name === this.id + "-mode") {
      if (target.checked) this.setMode(target.value);
      return;
    }
    if (!knob) return;
    if (target.type === "checkbox" && !committed) return;  // checkboxes: once, on change
    if (knob === "fit") {
      this.fit = target.checked;
      this.layout();
      return;
    }
    if (knob === "same") {
      this.set({ padding: target.checked ? "same" : [0, 0] });
      return;
    }
    var value = parseInt(target.value, 10);
    if (isNaN(value)) return;
    var min = +target.min, max = +target.max;
    var clamped = Math.max(min, Math.min(max, value));
    if (clamped !== value && committed) target.value = clamped;
    if (clamped !== value && !committed) return;
    var axis = +target.getAttribute("data-axis"), current = this.cfg[knob];
    var pairValue = Array.isArray(current) && current.length === 2 ? current.slice()
      : isInt(current) ? [current, current] : (knob === "padding" ? [0, 0] : [1, 1]);
    if (pairValue[axis] === clamped) return;
    pairValue[axis] = clamped;
    var change = {};
    change[knob] = pairValue;
    this.set(change);
  };

  Explorer.prototype.syncControls = function () {
    var el = this.element, cfg = this.cfg, transposed = isTransposed(cfg);
    el.querySelectorAll('input[name="' + this.id + '-mode"]').forEach(function (radio) {
      radio.checked = radio.value === cfg.mode;
    });
    el.querySelectorAll("input[data-knob][data-axis]").forEach(function (input) {
      var key = input.getAttribute("data-knob"), m = +input.getAttribute("data-axis"), v = cfg[key];
      if (key === "padding" && typeof v === "string") {
        var resolved = null;
        try { resolved = convGeometry(cfg).before; } catch (error) { resolved = null; }
        input.value = resolved ? resolved[m] : 0;
        input.disabled = true;
      } else {
        input.disabled = false;
        var value = Array.isArray(v) ? v[m] : v;
        if (document.activeElement !== input || parseInt(input.value, 10) !== value) input.value = value;
      }
    });
    var same = el.querySelector('input[data-knob="same"]');
    same.checked = cfg.padding === "same";
    same.disabled = transposed;
    same.parentNode.title = transposed ? "conv_transpose2d takes no padding strings" : "padding='same': the output keeps the input's size (stride 1)";
    el.querySelector('tr[data-row="output_padding"]').hidden = !transposed;
    el.querySelector('tr[data-row="input"] th').textContent = transposed ? "input y" : "input";
    el.querySelector('input[data-knob="fit"]').checked = this.fit;
  };

  Explorer.prototype.onClick = function (event) {
    var button = event.target.closest("button[data-preset]");
    if (!button || !this.element.contains(button)) return;
    var which = button.getAttribute("data-preset");
    var base = Object.assign({}, DEFAULT);
    this.set(which === "initial" ? this.initial : Object.assign(base, PRESETS[+which].cfg));
  };

  // ------------------------------------------------------------ rendering

  Explorer.prototype.render = function () {
    this.syncControls();
    this.activeCell = null;
    this.activeKey = null;
    this.lastLinks = null;
    this.focusCell = null;
    this.lit = [];
    var cfg = this.cfg, g = null, error = null;
    try {
      g = geometry(cfg);
    } catch (e) {
      error = e;
    }

    this.g = g;
    this.error = error;
    this.torch = torchError(cfg);
    if (g) this.index(g);
    this.renderPanels(g, error);
    this.renderFormulas(g, error);
    this.renderMatrix(g, error);
    this.readoutHeight = 0;
    this.readout.style.minHeight = "";
    this.showReadout(null);
    this.layout();
  };

  /** Which grid holds X (the convolution's input) and which holds Y, for the current mode. */
  Explorer.prototype.names = function () {
    return isTransposed(this.cfg) ? { x: "output", y: "input" } : { x: "input", y: "output" };
  };

  Explorer.prototype.index = function (g) {
    var entries = entriesOf(g), byY = {}, byX = {}, byTap = {}, readX = {};
    entries.forEach(function (e, q) {
      (byY[e[0]] = byY[e[0]] || []).push(q);
      (byX[e[1]] = byX[e[1]] || []).push(q);
      (byTap[e[2]] = byTap[e[2]] || []).push(q);
    });
    // every X position (padding included) that some window reads
    for (var oh = 0; oh < g.Y[0]; oh++) {
      for (var a = 0; a < g.k[0]; a++) {
        var vh = oh * g.s[0] - g.before[0] + a * g.d[0];
        for (var ow = 0; ow < g.Y[1]; ow++) {
          for (var b = 0; b < g.k[1]; b++) readX[vh + "," + (ow * g.s[1] - g.before[1] + b * g.d[1])] = true;
        }
      }
    }
    this.entries = entries;
    this.byY = byY;
    this.byX = byX;
    this.byTap = byTap;
    this.readX = readX;
    var stored = {};
    entries.forEach(function (e) { stored[e[0] * g.X[0] * g.X[1] + e[1]] = e[2]; });
    this.stored = stored;
  };

  function gridHTML(name, label, rows, cols, i0, j0, cell) {
    var html = '<div class="cx-grid" role="grid" data-name="' + name + '" aria-label="' + esc(label) +
      '" style="--rows:' + rows + ";--cols:" + cols + '">';
    for (var i = 0; i < rows; i++) {
      html += '<div role="row" class="cx-row">';
      for (var j = 0; j < cols; j++) html += cell(i + i0, j + j0);
      html += "</div>";
    }
    return html + "</div>";
  }

  function cellHTML(grid, i, j, cls, text, label, tabindex) {
    return '<div role="gridcell" class="cx-c' + (cls ? " " + cls : "") + '" data-grid="' + grid +
      '" data-i="' + i + '" data-j="' + j + '" tabindex="' + (tabindex ? 0 : -1) + '" aria-label="' +
      label + '">' + text + "</div>";
  }

  Explorer.prototype.renderPanels = function (g, error) {
    var cfg = this.cfg, transposed = isTransposed(cfg), names = this.names(), self = this;
    var k;
    try { k = sizePair(cfg.kernel, "kernel"); } catch (e) { k = null; }
    var parts = [];
    // the grid on X's side (with its padding frame) and the grid on Y's side
    var xg = g || (error && error.geometry) || null;
    var xPanel = this.xPanelHTML(xg, g, names.x, transposed);
    var yPanel = this.yPanelHTML(g, xg, names.y, transposed, error);
    var kPanel = this.kernelPanelHTML(k, transposed);
    if (transposed) parts.push(yPanel, kPanel, xPanel); else parts.push(xPanel, kPanel, yPanel);
    this.panels.innerHTML = parts.join("");
    this.grids = {};
    this.panels.querySelectorAll(".cx-grid").forEach(function (el) {
      var cells = el.querySelectorAll("[data-grid]"), first = cells[0];
      self.grids[el.getAttribute("data-name")] = {
        el: el, cells: cells, rows: +el.style.getPropertyValue("--rows"), cols: +el.style.getPropertyValue("--cols"),
        i0: first ? +first.getAttribute("data-i") : 0, j0: first ? +first.getAttribute("data-j") : 0,
      };
    });
  };

  Explorer.prototype.xPanelHTML = function (xg, g, name, transposed) {
    var self = this, cfg = this.cfg;
    var title = transposed ? "Output <i>z</i> = conv_transpose2d(<i>y</i>)" : "Input <i>X</i>";
    if (transposed && !g) {
      return '<section class="cx-panel" data-panel="' + name + '"><h4 class="cx-title">' + title + "</h4>" +
        '<div class="cx-missing">No output: ' + esc(reason(cfg, this.error)) + "</div></section>";
    }
    if (!xg) {
      // the settings do not even give sizes: say which argument is wrong
      var size = null;
      try { size = sizePair(cfg.input, "input"); } catch (e) { size = null; }
      if (transposed || !size || size.some(function (v) { return v < 1; })) {
        return '<section class="cx-panel" data-panel="' + name + '"><h4 class="cx-title">' + title + "</h4>" +
          '<div class="cx-missing">No ' + (transposed ? "output" : "input") + " for this setting: see the message above.</div></section>";
      }
      xg = { X: size, frameBefore: [0, 0], frameAfter: [0, 0], opad: [0, 0], mode: "conv" };
    }
    var X = xg.X, fb = xg.frameBefore, fa = xg.frameAfter, opad = xg.opad;
    var rows = X[0] + fb[0] + fa[0], cols = X[1] + fb[1] + fa[1], first = true;
    var letter = transposed ? "z" : "X";
    var html = gridHTML(name, (transposed ? "output z" : "input X") + ", " + X[0] + " by " + X[1] +
      (fb[0] + fa[0] + fb[1] + fa[1] ? ", with its padding frame" : ""), rows, cols, -fb[0], -fb[1], function (i, j) {
        var inside = i >= 0 && i < X[0] && j >= 0 && j < X[1], cls = [], text, label;
        if (inside) {
          var c = i * X[1] + j;
          text = c;
          label = letter + " " + i + ", " + j + ": " + (transposed ? "row " : "column ") + c + " of the matrix";
          if (transposed && (i >= X[0] - opad[0] || j >= X[1] - opad[1])) {
            cls.push("cx-opad");
            label += ", added by output_padding";
          }
        } else {
          cls.push("cx-pad");
          text = transposed ? "" : "0";
          label = (transposed ? "cut by padding: " : "padding zero: ") + letter + " " + i + ", " + j;
        }
        if (g && !self.readX[i + "," + j]) {
          cls.push("cx-unread");
          label += transposed ? ", reached by no stamp" : ", read by no window";
        }
        var tab = first && inside;
        if (tab) first = false;
        return cellHTML(name, i, j, cls.join(" "), text, label, tab);
      });
    var dims = X[0] + " " + TIMES + " " + X[1];
    var note = transposed
      ? "Numbers: the row of <i>W</i><sup>" + T + "</sup>. Around it, dashed: what the padding cuts off" +
        (opad[0] || opad[1] ? "; green edge: the rows and columns output_padding adds." : ".")
      : "Numbers: the position in vec(<i>X</i>), the column of <i>W</i>." +
        (fb[0] + fa[0] + fb[1] + fa[1] ? " Hatched: the zero padding." : "");
    return '<section class="cx-panel" data-panel="' + name + '"><h4 class="cx-title">' + title +
      ' <span class="cx-dim">' + dims + '</span></h4><div class="cx-scroll">' + html + '</div><p class="cx-note">' +
      note + "</p></section>";
  };

  Explorer.prototype.yPanelHTML = function (g, xg, name, transposed, error) {
    var title = transposed ? "Input <i>y</i>" : "Output <i>Y</i> = <i>X</i> \u22c6 <i>K</i>";
    var Y = g ? g.Y : null;
    if (transposed && !Y) {
      try { Y = sizePair(this.cfg.input, "input"); } catch (e) { Y = null; }
      if (Y && Y.some(function (v) { return v < 1; })) Y = null;
    }
    if (!Y) {
      return '<section class="cx-panel" data-panel="' + name + '"><h4 class="cx-title">' + title + "</h4>" +
        '<div class="cx-missing">No output: ' + esc(error ? reason(this.cfg, error) : "") + "</div></section>";
    }
    var letter = transposed ? "y" : "Y", first = true;
    var html = gridHTML(name, (transposed ? "input y" : "output Y") + ", " + Y[0] + " by " + Y[1], Y[0], Y[1], 0, 0,
      function (i, j) {
        var r = i * Y[1] + j;
        var tab = first;
        first = false;
        return cellHTML(name, i, j, "", r, letter + " " + i + ", " + j + ": " + (transposed ? "column " : "row ") +
          r + " of the matrix", tab);
      });
    var note = transposed ? "Numbers: the position in vec(<i>y</i>), the column of <i>W</i><sup>" + T + "</sup>."
      : "Numbers: the position in vec(<i>Y</i>), the row of <i>W</i>.";
    return '<section class="cx-panel" data-panel="' + name + '"><h4 class="cx-title">' + title +
      ' <span class="cx-dim">' + Y[0] + " " + TIMES + " " + Y[1] + '</span></h4><div class="cx-scroll">' + html +
      '</div><p class="cx-note">' + note + "</p></section>";
  };

  Explorer.prototype.kernelPanelHTML = function (k, transposed) {
    if (!k || k.some(function (v) { return v < 1; })) {
      return '<section class="cx-panel" data-panel="kernel"><h4 class="cx-title">Kernel <i>K</i></h4>' +
        '<div class="cx-missing">No kernel: its size must be two positive ints.</div></section>';
    }
    var first = true;
    var html = gridHTML("kernel", "kernel K, " + k[0] + " by " + k[1], k[0], k[1], 0, 0, function (a, b) {
      var t = a * k[1] + b, tab = first;
      first = false;
      return cellHTML("kernel", a, b, "", t, "K " + a + ", " + b + ": tap " + t, tab);
    });
    var flip = "";
    if (transposed) {
      flip = '<div class="cx-flipbox"><div class="cx-flip-title">turned 180\u00b0</div><div class="cx-grid cx-flipgrid" aria-hidden="true" style="--rows:' +
        k[0] + ";--cols:" + k[1] + '">';
      for (var a = 0; a < k[0]; a++) {
        for (var b = 0; b < k[1]; b++) {
          var t = (k[0] - 1 - a) * k[1] + (k[1] - 1 - b);
          flip += '<div class="cx-c cx-flip" data-flip-tap="' + t + '">' + t + "</div>";
        }
      }
      flip += "</div></div>";
    }
    var note = transposed
      ? "Taps numbered row by row: tap = <i>a</i>" + DOT + "<i>w<sub>K</sub></i> + <i>b</i>. Stamps use <i>K</i> as stored; read as a direct convolution over <i>y</i>, it is turned."
      : "Taps numbered row by row: tap = <i>a</i>" + DOT + "<i>w<sub>K</sub></i> + <i>b</i>.";
    return '<section class="cx-panel" data-panel="kernel"><h4 class="cx-title">Kernel <i>K</i> <span class="cx-dim">' +
      k[0] + " " + TIMES + " " + k[1] + '</span></h4><div class="cx-kernels"><div class="cx-scroll">' + html + "</div>" +
      flip + '</div><p class="cx-note">' + note + "</p></section>";
  };

  /** The plain-language reason for an invalid setting (the tests compare torch's own message). */
  function reason(cfg, error) {
    var m = error.message;
    if (/Kernel size can't be greater/.test(m)) return "the dilated kernel is larger than the padded input, so no window fits and W has no rows.";
    if (/Output size is too small/.test(m)) return "the padding cuts off more than the stamps cover, so the result would be empty.";
    if (/output padding must be smaller/.test(m)) return "output_padding chooses among the input sizes that share one output size; there are only max(stride, dilation) of them.";
    if (/'same' is not supported for strided/.test(m)) return "'same' keeps the output the size of the input, which a stride above 1 cannot do.";
    if (/must be tuple of ints, not str/.test(m)) return "a transposed convolution takes its padding as ints; 'same' and 'valid' are for convolutions.";
    return m;
  }

  Explorer.prototype.renderFormulas = function (g, error) {
    var cfg = this.cfg, transposed = isTransposed(cfg), html = "";
    var sg = g || (error && error.geometry);
    if (sg) html += transposed ? this.transposedSizeHTML(sg) : this.convSizeHTML(sg);
    if (g) {
      var rows = g.Y[0] * g.Y[1], cols = g.X[0] * g.X[1], total = rows * cols, nnz = this.entries.length;
      var shape = transposed ? cols + " " + TIMES + " " + rows : rows + " " + TIMES + " " + cols;
      var pct = (100 * nnz / total);
      html += '<div class="cx-frow"><b><i>W</i>' + (transposed ? "<sup>" + T + "</sup>" : "") + "</b>: " + shape + " = " +
        total + " entries, <b>" + nnz + "</b> non-zero (" + (pct >= 10 ? pct.toFixed(1) : pct.toFixed(2)) +
        " %), " + (total - nnz) + " zeros. A row of <i>W</i> holds at most <i>h<sub>K</sub></i> <i>w<sub>K</sub></i> = " +
        g.k[0] * g.k[1] + " taps" + (g.before.concat(g.after).some(function (v) { return v > 0; })
          ? "; rows at the border hold fewer (taps on padding are left out)." : ".") + "</div>";
      var unread = 0;
      for (var i = 0; i < g.X[0]; i++) for (var j = 0; j < g.X[1]; j++) if (!this.readX[i + "," + j]) unread++;
      if (unread) {
        html += '<div class="cx-frow cx-muted">' + plural(unread, transposed ? "entry of z is" : "input entry is",
          transposed ? "entries of z are" : "input entries are") + (transposed
          ? " reached by no stamp: their rows of W<sup>" + T + "</sup> are empty and they are always 0."
          : " read by no window: their columns of W are zero (hatched in the input).") + "</div>";
      }
    }
    if (error) {
      html += '<div class="cx-error" role="alert"><b>No ' + (transposed ? "transposed " : "") +
        "convolution with these settings:</b> " + esc(reason(cfg, error)) +
        (this.torch ? '<br>PyTorch raises <code class="cx-torch">' + esc(this.torch) + "</code>" : "") + "</div>";
    }
    this.formulas.innerHTML = html;
  };

  Explorer.prototype.convSizeHTML = function (g) {
    var symmetric = g.before[0] === g.after[0] && g.before[1] === g.after[1];
    var html = '<div class="cx-frow"><b>Output size</b>, per axis: <i>o</i> = \u230a(<i>i</i> + ' +
      (symmetric ? "2<i>p</i>" : "<i>p</i><sub>before</sub> + <i>p</i><sub>after</sub>") +
      " " + MINUS + " <i>\u03b4</i>(<i>k</i> " + MINUS + " 1) " + MINUS + " 1) / <i>s</i>\u230b + 1</div>";
    for (var m = 0; m < 2; m++) {
      var pads = symmetric ? "2" + DOT + g.before[m] : g.before[m] + " + " + g.after[m];
      var top = g.X[m] + g.before[m] + g.after[m] - g.d[m] * (g.k[m] - 1) - 1;
      var o = Math.floor(top / g.s[m]) + 1;
      html += '<div class="cx-frow cx-num">' + AXES[m] + ": \u230a(" + g.X[m] + " + " + pads + " " + MINUS + " " +
        g.d[m] + DOT + "(" + g.k[m] + " " + MINUS + " 1) " + MINUS + " 1) / " + g.s[m] + "\u230b + 1 = \u230a" + n(top) +
        " / " + g.s[m] + "\u230b + 1 = <b>" + n(o) + "</b>";
      if (top >= 0 && top % g.s[m]) {
        html += ' <span class="cx-muted">(the floor drops a remainder of ' + (top % g.s[m]) + ": the last " +
          plural(top % g.s[m], "position", "positions") + " of the padded input start no window)</span>";
      }
      html += "</div>";
    }
    if (g.padding === "same") {
      html += '<div class="cx-frow cx-muted">\'same\' pads <i>\u03b4</i>(<i>k</i> ' + MINUS + " 1) zeros per axis, the smaller half before: height " +
        g.before[0] + " before and " + g.after[0] + " after, width " + g.before[1] + " and " + g.after[1] + ".</div>";
    }
    return html;
  };

  Explorer.prototype.transposedSizeHTML = function (g) {
    var html = '<div class="cx-frow"><b>Output size</b>, per axis: <i>o</i>' + PRIME + " = (<i>i</i>" + PRIME + " " + MINUS +
      " 1)<i>s</i> " + MINUS + " 2<i>p</i> + <i>\u03b4</i>(<i>k</i> " + MINUS + " 1) + output_padding + 1</div>";
    var explain = [];
    for (var m = 0; m < 2; m++) {
      var o = (g.Y[m] - 1) * g.s[m] - 2 * g.before[m] + g.d[m] * (g.k[m] - 1) + g.opad[m] + 1;
      html += '<div class="cx-frow cx-num">' + AXES[m] + ": (" + g.Y[m] + " " + MINUS + " 1)" + DOT + g.s[m] + " " + MINUS +
        " 2" + DOT + g.before[m] + " + " + g.d[m] + DOT + "(" + g.k[m] + " " + MINUS + " 1) + " + g.opad[m] + " + 1 = <b>" +
        n(o) + "</b></div>";
      // which convolution input sizes give g.Y[m] outputs: the ambiguity output_padding resolves
      var smallest = o - g.opad[m], sizes = [];
      for (var i = Math.max(1, smallest); i < smallest + g.s[m]; i++) sizes.push(i);
      if (!sizes.length) continue;
      var text = AXES[m] + ": ";
      if (sizes.length === 1) {
        text += "only an input of " + sizes[0] + " convolves to " + g.Y[m] + " (stride 1): no choice to make";
      } else {
        text += "inputs of " + sizes.slice(0, -1).join(", ") + " and " + sizes[sizes.length - 1] +
          (sizes.length === 2 ? " both" : " all") + " convolve to " + g.Y[m] + "; output_padding = " + g.opad[m] + " picks " + o;
      }
      if (g.opad[m] >= g.s[m]) {
        var back = Math.floor((o + 2 * g.before[m] - g.d[m] * (g.k[m] - 1) - 1) / g.s[m]) + 1;
        text += "; output_padding \u2265 stride is allowed because it is below the dilation: " + o +
          " convolves to " + back + ", more than " + g.Y[m] + ", and W is that convolution's matrix without its last rows";
      }
      explain.push(text + ".");
    }
    if (explain.length) html += '<div class="cx-frow cx-muted">' + explain.join("<br>") + "</div>";
    return html;
  };

  /** Matrices above this many entries are drawn a window at a time: only what the box shows. */
  var WINDOW_ABOVE = 6000;

  Explorer.prototype.renderMatrix = function (g, error) {
    var transposed = isTransposed(this.cfg), self = this;
    var sym = transposed ? "<i>W</i><sup>" + T + "</sup>" : "<i>W</i>";
    this.m = null;
    this.mLit = new Map();
    this.mOrder = [];
    if (!g) {
      this.wTitle.innerHTML = "The matrix " + sym;
      this.wBody.innerHTML = '<div class="cx-missing">' + sym + " does not exist for this setting: " +
        esc(reason(this.cfg, error)) + "</div>";
      this.legend.innerHTML = "";
      this.grids.matrix = null;
      return;
    }
    var nY = g.Y[0] * g.Y[1], nX = g.X[0] * g.X[1];
    var rows = transposed ? nX : nY, cols = transposed ? nY : nX;
    var windowed = rows * cols > WINDOW_ABOVE;
    this.m = { rows: rows, cols: cols, nX: nX, transposed: transposed, windowed: windowed, cell: 0,
      r0: 0, r1: 0, c0: 0, c1: 0, tab: [0, 0] };
    this.wTitle.innerHTML = "The matrix " + sym + ' <span class="cx-dim">' + rows + " " + TIMES + " " + cols + "</span>" +
      ' <span class="cx-sub">' + (transposed
        ? "one row per entry of <i>z</i>, one column per entry of <i>y</i>"
        : "one row per output entry, one column per input entry") + "</span>";
    // block rules: a block is one row of the grid the rows index by one row of the grid the columns index
    var rowBlock = transposed ? g.X[1] : g.Y[1], colBlock = transposed ? g.Y[1] : g.X[1];
    var rowBlocks = rows / rowBlock, colBlocks = cols / colBlock;
    var top = "", left = "";
    for (var b = 0; b < colBlocks; b++) {
      top += '<span style="left:calc(var(--wcell) * ' + b * colBlock + ');width:calc(var(--wcell) * ' + colBlock + ')">' + b + "</span>";
    }
    for (b = 0; b < rowBlocks; b++) {
      left += '<span style="top:calc(var(--wcell) * ' + b * rowBlock + ');height:calc(var(--wcell) * ' + rowBlock + ')">' + b + "</span>";
    }
    var colName = transposed ? "row of <i>y</i>" : "row <i>i</i>" + PRIME + " of <i>X</i>";
    var rowName = transposed ? "row of <i>z</i>" : "row <i>i</i> of <i>Y</i>";
    var label = (transposed ? "W transposed, " : "W, ") + rows + " by " + cols;
    this.wBody.innerHTML =
      '<div class="cx-axis cx-axis-top">columns, in blocks of ' + colBlock + ": one block per " + colName + "</div>" +
      '<div class="cx-wrow"><div class="cx-axis cx-axis-left"><span>rows, in blocks of ' + rowBlock + ": one block per " + rowName + "</span></div>" +
      '<div class="cx-wscroll" ' + (windowed ? 'tabindex="0" role="group" aria-label="' + esc(label) +
        ', scrolls: press an arrow key to move in it"' : 'tabindex="-1"') + '>' +
        '<div class="cx-wtable" style="--rb:' + rowBlock + ";--cb:" + colBlock + '">' +
        '<div class="cx-corner"></div><div class="cx-thead">' + top + "</div>" +
        '<div class="cx-lhead">' + left + "</div>" +
        '<div class="cx-wgrid"><div class="cx-grid cx-mgrid" role="grid" data-name="matrix" aria-label="' + esc(label) +
          '" aria-rowcount="' + rows + '" aria-colcount="' + cols + '" style="--cols:1"></div>' +
          '<div class="cx-blocks" aria-hidden="true"></div>' +
          '<div class="cx-band cx-band-row" hidden></div><div class="cx-band cx-band-col" hidden></div></div>' +
      "</div></div></div>";
    var gridEl = this.wBody.querySelector(".cx-mgrid");
    this.grids.matrix = { el: gridEl, cells: [], rows: 0, cols: 0, i0: 0, j0: 0, nRows: rows, nCols: cols };
    this.wScroll = this.wBody.querySelector(".cx-wscroll");
    this.wGrid = this.wBody.querySelector(".cx-wgrid");
    this.thead = this.wBody.querySelector(".cx-thead");
    this.lhead = this.wBody.querySelector(".cx-lhead");
    this.bandRow = this.wBody.querySelector(".cx-band-row");
    this.bandCol = this.wBody.querySelector(".cx-band-col");
    if (windowed) {
      var pending = false;
      this.wScroll.addEventListener("scroll", function () {
        if (pending) return;
        pending = true;
        window.requestAnimationFrame(function () {
          pending = false;
          self.renderWindow(false);
        });
      });
    }
    var pad = g.frameBefore.concat(g.frameAfter).some(function (v) { return v > 0; });
    this.legend.innerHTML =
      '<span><i class="cx-sw cx-s">3</i> stored entry: its tap</span>' +
      '<span><i class="cx-sw cx-z"></i> zero, not stored</span>' +
      (pad ? '<span><i class="cx-sw cx-pad">' + (transposed ? "" : "0") + "</i> " + (transposed ? "cut off by the padding" : "padding zero") + "</span>" : "") +
      (Object.keys(this.readX).length < (g.X[0] + g.frameBefore[0] + g.frameAfter[0]) * (g.X[1] + g.frameBefore[1] + g.frameAfter[1])
        ? '<span><i class="cx-sw cx-unread"></i> ' + (transposed ? "reached by no stamp" : "read by no window") + "</span>" : "") +
      (transposed && (g.opad[0] || g.opad[1]) ? '<span><i class="cx-sw cx-opad"></i> added by output_padding</span>' : "") +
      '<span><i class="cx-sw cx-sw-active"></i> hovered or focused</span>' +
      '<span><i class="cx-sw highlight"><b class="cx-swtap">2</b></i> linked, with its tap</span>';
  };

  /**
   * Draw the cells of W that the box shows (all of them for a small W), with their state: the
   * linked cells, the active one, the roving tab stop, and the keyboard focus, kept across redraws.
   */
  Explorer.prototype.renderWindow = function (force) {
    var m = this.m, grid = this.grids && this.grids.matrix, g = this.g;
    if (!m || !grid || !m.cell) return;
    var cell = m.cell, box = this.wScroll, r0 = 0, r1 = m.rows, c0 = 0, c1 = m.cols;
    if (m.windowed) {
      var headTop = this.thead.offsetHeight, headLeft = this.lhead.offsetWidth;
      var top = Math.max(0, box.scrollTop - headTop), left = Math.max(0, box.scrollLeft - headLeft);
      var height = box.clientHeight || 560, width = box.clientWidth || 640, buffer = 6;
      r0 = Math.max(0, Math.floor(top / cell) - buffer);
      r1 = Math.min(m.rows, Math.ceil((top + height) / cell) + buffer);
      c0 = Math.max(0, Math.floor(left / cell) - buffer);
      c1 = Math.min(m.cols, Math.ceil((left + width) / cell) + buffer);
    }
    if (!force && r0 === m.r0 && r1 === m.r1 && c0 === m.c0 && c1 === m.c1) return;
    var focused = document.activeElement, refocus = null;
    if (focused && grid.el.contains(focused)) refocus = [+focused.getAttribute("data-i"), +focused.getAttribute("data-j")];
    var stored = this.stored, nX = m.nX, transposed = m.transposed, html = "";
    for (var r = r0; r < r1; r++) {
      html += '<div role="row" class="cx-row" aria-rowindex="' + (r + 1) + '">';
      for (var c = c0; c < c1; c++) {
        var y = transposed ? c : r, x = transposed ? r : c, t = stored[y * nX + x];
        var tab = !m.windowed && r === m.tab[0] && c === m.tab[1];  // a large W: its box is the tab stop
        html += t === undefined
          ? cellHTML("matrix", r, c, "cx-z", "", "row " + r + ", column " + c + ": 0", tab)
          : cellHTML("matrix", r, c, "cx-s", t, "row " + r + ", column " + c + ": tap " + t + ", " + tapName(g, t), tab);
      }
      html += "</div>";
    }
    this.redrawing = true;
    grid.el.innerHTML = html;
    grid.el.style.setProperty("--cols", c1 - c0);
    grid.el.style.top = r0 * cell + "px";
    grid.el.style.left = c0 * cell + "px";
    grid.cells = grid.el.querySelectorAll("[data-grid]");
    grid.i0 = r0; grid.j0 = c0; grid.rows = r1 - r0; grid.cols = c1 - c0;
    m.r0 = r0; m.r1 = r1; m.c0 = c0; m.c1 = c1;
    var grids = this.grids;
    this.mLit.forEach(function (tap, key) {
      var rc = key.split(","), el = cellOf(grids, "matrix", +rc[0], +rc[1]);
      if (!el) return;
      el.classList.add("highlight");
      if (tap !== null) {
        el.setAttribute("data-tap", tap);
        el.classList.add("cx-tapped");
      }
    });
    if (this.activeKey && this.activeKey[0] === "matrix") {
      var active = cellOf(grids, "matrix", this.activeKey[1], this.activeKey[2]);
      if (active) active.classList.add("active");
      this.activeCell = active;
    }
    if (refocus) {
      var again = cellOf(grids, "matrix", refocus[0], refocus[1]);
      if (again) {
        again.focus({ preventScroll: true });
        this.focusCell = again;
      }
    }
    this.redrawing = false;
  };

  /** The element of W's cell (r, c), scrolling W's box to it (and drawing it) if need be. */
  Explorer.prototype.matrixCell = function (r, c) {
    var m = this.m, box = this.wScroll;
    if (!m) return null;
    var cell = m.cell, headTop = this.thead.offsetHeight, headLeft = this.lhead.offsetWidth;
    var y = headTop + r * cell, x = headLeft + c * cell;
    if (y < box.scrollTop + headTop) box.scrollTop = y - headTop;
    else if (y + cell > box.scrollTop + box.clientHeight) box.scrollTop = y + cell - box.clientHeight;
    if (x < box.scrollLeft + headLeft) box.scrollLeft = x - headLeft;
    else if (x + cell > box.scrollLeft + box.clientWidth) box.scrollLeft = x + cell - box.clientWidth;
    this.renderWindow(false);
    return cellOf(this.grids, "matrix", r, c);
  };

  /** Cell sizes from the width available: readable cells, W in its own scroll box if need be. */
  Explorer.prototype.layout = function () {
    var width = this.element.clientWidth || 640;
    var self = this;
    Object.keys(this.grids || {}).forEach(function (name) {
      var grid = self.grids[name];
      if (!grid || name === "matrix") return;
      var cell = Math.max(18, Math.min(32, Math.floor((Math.min(width, 560) - 16) / Math.max(grid.cols, 1))));
      grid.el.style.setProperty("--cell", cell + "px");
      grid.el.style.setProperty("--fs", Math.max(9, Math.min(13, Math.floor(cell * 0.42))) + "px");
    });
    this.element.querySelectorAll(".cx-flipgrid").forEach(function (el) {
      var kernel = self.grids.kernel;
      if (kernel) el.style.setProperty("--cell", kernel.el.style.getPropertyValue("--cell"));
    });
    var m = this.m;
    if (m) {
      // the W box shares its row with the rotated axis label and the row header (1.3rem each)
      var rem = parseFloat(getComputedStyle(this.element).fontSize) || 14;
      var avail = (this.wBody.clientWidth || width - 24) - Math.ceil(2.6 * rem) - 6;
      var fitCell = Math.floor(avail / m.cols);
      var cell = this.fit ? Math.max(2, Math.min(24, fitCell)) : Math.max(15, Math.min(24, fitCell));
      var table = this.wBody.querySelector(".cx-wtable");
      table.style.setProperty("--wcell", cell + "px");
      table.style.setProperty("--fs", Math.max(7, Math.min(12, Math.floor(cell * 0.5))) + "px");
      table.classList.toggle("cx-tiny", cell < 11);
      this.wScroll.style.maxHeight = Math.max(240, Math.min(560, Math.round(window.innerHeight * 0.7))) + "px";
      this.wGrid.style.width = cell * m.cols + "px";
      this.wGrid.style.height = cell * m.rows + "px";
      var blocks = this.wBody.querySelector(".cx-blocks");
      blocks.style.width = cell * m.cols + "px";
      blocks.style.height = cell * m.rows + "px";
      var changed = cell !== m.cell;
      m.cell = cell;
      this.renderWindow(changed);
      if (changed && this.lastLinks) this.showBands(this.lastLinks, false);
    }
  };

  // ------------------------------------------------------------ linking

  function cellOf(grids, name, i, j) {
    var grid = grids[name];
    if (!grid) return null;
    var r = i - grid.i0, c = j - grid.j0;
    if (r < 0 || c < 0 || r >= grid.rows || c >= grid.cols) return null;
    return grid.cells[r * grid.cols + c] || null;
  }

  /** The (output, tap) pairs whose window reads X position (vh, vw), padding included. */
  function readersOf(g, vh, vw) {
    var out = [];
    for (var a = 0; a < g.k[0]; a++) {
      var th = vh + g.before[0] - a * g.d[0];
      if (th < 0 || th % g.s[0] || th / g.s[0] >= g.Y[0]) continue;
      for (var b = 0; b < g.k[1]; b++) {
        var tw = vw + g.before[1] - b * g.d[1];
        if (tw < 0 || tw % g.s[1] || tw / g.s[1] >= g.Y[1]) continue;
        out.push({ oh: th / g.s[0], ow: tw / g.s[1], tap: a * g.k[1] + b });
      }
    }
    return out;
  }

  /** What a cell is linked to: [{grid, i, j, tap}], the matrix row and column bands, the readout. */
  Explorer.prototype.links = function (cell) {
    var g = this.g, grid = cell.getAttribute("data-grid"), i = +cell.getAttribute("data-i"), j = +cell.getAttribute("data-j");
    var names = this.names(), transposed = isTransposed(this.cfg), self = this;
    var out = { cells: [], bandRow: null, bandCol: null, html: "", taps: [] };
    var X = g.X, Y = g.Y, nX = X[0] * X[1];
    var yl = transposed ? "y" : "Y", xl = transposed ? "z" : "X", Wl = transposed ? "W<sup>" + T + "</sup>" : "W";
    function mcell(y, x) { return transposed ? [x, y] : [y, x]; }
    function addMatrix(q) {
      var e = self.entries[q], rc = mcell(e[0], e[1]);
      out.cells.push({ grid: "matrix", i: rc[0], j: rc[1] });
    }
    function ypos(r) { return [Math.floor(r / Y[1]), r % Y[1]]; }
    function xpos(c) { return [Math.floor(c / X[1]), c % X[1]]; }

    if (grid === names.y) {
      var r = i * Y[1] + j, taps = [], onPad = [];
      (this.byY[r] || []).forEach(addMatrix);
      for (var a = 0; a < g.k[0]; a++) {
        for (var b = 0; b < g.k[1]; b++) {
          var vh = i * g.s[0] - g.before[0] + a * g.d[0], vw = j * g.s[1] - g.before[1] + b * g.d[1], t = a * g.k[1] + b;
          out.cells.push({ grid: names.x, i: vh, j: vw, tap: t });
          out.cells.push({ grid: "kernel", i: a, j: b });
          taps.push(t);
          if (vh < 0 || vh >= X[0] || vw < 0 || vw >= X[1]) onPad.push(tapName(g, t));
        }
      }
      out.taps = taps;
      if (transposed) out.bandCol = r; else out.bandRow = r;
      var corner = [i * g.s[0] - g.before[0], j * g.s[1] - g.before[1]];
      var stored = (this.byY[r] || []).length;
      if (!transposed) {
        out.html = "<b>" + idx("Y", i, j) + "</b> is row <i>r</i> = <i>i</i>" + DOT + "<i>w<sub>Y</sub></i> + <i>j</i> = " +
          i + DOT + Y[1] + " + " + j + " = <b>" + r + "</b> of W. Its window starts at X[<i>i</i>" + DOT + "<i>s</i> " + MINUS +
          " <i>p</i>, <i>j</i>" + DOT + "<i>s</i> " + MINUS + " <i>p</i>] = " + idx("X", corner[0], corner[1]) +
          " and puts the " + plural(taps.length, "tap", "taps") + " on the cells marked with their numbers" +
          (g.d[0] > 1 || g.d[1] > 1 ? ", \u03b4 = (" + g.d[0] + ", " + g.d[1] + ") apart" : "") + ". Row " + r + " stores " +
          stored + " of them" + (onPad.length ? "; " + list(onPad, 6) + " " + (onPad.length === 1 ? "falls" : "fall") +
          " on padding zeros and " + (onPad.length === 1 ? "is" : "are") + " left out of W." : ".");
      } else {
        out.html = "<b>" + idx("y", i, j) + "</b> is column <b>" + r + "</b> of W<sup>" + T + "</sup> (row " + r +
          " of W): it stamps the kernel, as stored, onto z, starting at z[<i>i</i>" + DOT + "<i>s</i> " + MINUS +
          " <i>p</i>, <i>j</i>" + DOT + "<i>s</i> " + MINUS + " <i>p</i>] = " + idx("z", corner[0], corner[1]) +
          "; neighbouring entries of y stamp (" + g.s[0] + ", " + g.s[1] + ") apart." + (onPad.length ? " " +
          list(onPad, 6) + " " + (onPad.length === 1 ? "lands" : "land") + " in the border the padding cuts off." : "");
      }
    } else if (grid === names.x) {
      var inside = i >= 0 && i < X[0] && j >= 0 && j < X[1], readers = readersOf(g, i, j);
      readers.forEach(function (p) {
        out.cells.push({ grid: names.y, i: p.oh, j: p.ow, tap: p.tap });
        out.cells.push({ grid: "kernel", i: Math.floor(p.tap / g.k[1]), j: p.tap % g.k[1] });
        out.taps.push(p.tap);
      });
      var parts = readers.map(function (p) { return idx(yl, p.oh, p.ow) + (transposed ? DOT : " with ") + tapName(g, p.tap); });
      var backwards = readers.length > 1 ? " Across " + yl + " the taps run backwards (" + tapName(g, readers[0].tap) +
        " at " + idx(yl, readers[0].oh, readers[0].ow) + ", " + tapName(g, readers[readers.length - 1].tap) + " at " +
        idx(yl, readers[readers.length - 1].oh, readers[readers.length - 1].ow) + "): the kernel turned by 180\u00b0." : "";
      if (inside) {
        var c = i * X[1] + j;
        (this.byX[c] || []).forEach(addMatrix);
        if (transposed) out.bandRow = c; else out.bandCol = c;
        if (!transposed) {
          out.html = "<b>" + idx("X", i, j) + "</b> is column <i>c</i> = <i>i</i>" + PRIME + DOT + "<i>w<sub>X</sub></i> + <i>j</i>" +
            PRIME + " = " + i + DOT + X[1] + " + " + j + " = <b>" + c + "</b> of W. " + (readers.length
              ? "It feeds " + plural(readers.length, "output", "outputs") + ", each through a different tap: " + list(parts, 6) +
                ". Column " + c + " of W is row " + c + " of W<sup>" + T + "</sup>: the transposed convolution gathers exactly these outputs back into (" +
                i + ", " + j + ")." + backwards
              : "No window reads it (the floor drops it): its column of W is zero.");
        } else {
          out.html = "<b>" + idx("z", i, j) + "</b> is row <b>" + c + "</b> of W<sup>" + T + "</sup> (column " + c + " of W). " +
            (readers.length ? "It is " + (readers.length === 1 ? "one product: " : "the sum of " + readers.length + " products: ") +
              parts.slice(0, 6).join(" + ") + (readers.length > 6 ? " + \u2026 (" + readers.length + " in all)" : "") +
              "." + backwards + " That is why the equivalent direct convolution over the stretched y uses the flipped kernel."
              : "No stamp reaches it, so its row of W<sup>" + T + "</sup> is empty and it is always 0" +
                (i >= X[0] - g.opad[0] || j >= X[1] - g.opad[1] ? ": output_padding added it past the end of the stamps." : "."));
        }
      } else {
        out.html = "<b>" + idx(xl, i, j) + "</b> " + (transposed
          ? "lies in the border the padding cuts off: " + (readers.length ? "the stamps " + list(parts, 6) + " reach it, but" : "") +
            " W<sup>" + T + "</sup> has no row for it."
          : "is padding, a zero: W has no column for it. " + (readers.length
            ? "It sits under " + plural(readers.length, "window", "windows") + ": " + list(parts, 6) + "; those taps multiply zero and are dropped from W."
            : "No window reaches it."));
      }
    } else if (grid === "kernel") {
      var tap = i * g.k[1] + j, qs = this.byTap[tap] || [];
      qs.forEach(addMatrix);
      out.taps = [tap];
      out.html = "<b>" + tapName(g, tap) + "</b>, tap " + tap + ", is stored " + plural(qs.length, "time", "times") + " in " + Wl +
        ": once for every output whose window puts it on the input (" + qs.length + " of the " + Y[0] * Y[1] +
        " " + (transposed ? "entries of y" : "outputs") + "). " + (g.s[0] === 1 && g.s[1] === 1
          ? "They line up along diagonals: W is constant along them (Toeplitz)." : "With a stride they step " + g.s[1] + " columns per row.");
    } else if (grid === "matrix") {
      var y = transposed ? j : i, x = transposed ? i : j, yp = ypos(y), xp = xpos(x);
      out.cells.push({ grid: names.y, i: yp[0], j: yp[1] }, { grid: names.x, i: xp[0], j: xp[1] });
      out.bandRow = i;
      out.bandCol = j;
      var st = this.stored[y * nX + x];
      if (st !== undefined) {
        out.cells.push({ grid: "kernel", i: Math.floor(st / g.k[1]), j: st % g.k[1], tap: st });
        out.taps = [st];
      }
      var head = "<b>" + Wl + "[" + i + ", " + j + "]</b>" + (transposed ? " = W[" + j + ", " + i + "]" : "") + ": " +
        "row " + i + " = " + (transposed ? idx("z", xp[0], xp[1]) : idx("Y", yp[0], yp[1])) + ", column " + j + " = " +
        (transposed ? idx("y", yp[0], yp[1]) : idx("X", xp[0], xp[1])) + ". ";
      var axes = [0, 1].map(function (m) {
        var o = yp[m], v = xp[m], top = v - o * g.s[m] + g.before[m], letter = m ? "b" : "a";
        var ok = top >= 0 && top % g.d[m] === 0 && top / g.d[m] < g.k[m];
        var value = top / g.d[m];
        return { ok: ok, text: "<i>" + letter + "</i> = (" + n(v) + " " + MINUS + " " + o + DOT + g.s[m] + " + " + g.before[m] + ") / " +
          g.d[m] + " = " + (Number.isInteger(value) ? n(value) : n(top) + "/" + g.d[m]) + (ok ? "" : top % g.d[m]
            ? " (not an integer: between two dilated taps)" : " (not a tap: 0 \u2264 " + letter + " < " + g.k[m] + ")"), value: value };
      });
      var formula = "Input row <i>i</i>" + PRIME + " = <i>i</i>" + DOT + "<i>s</i> " + MINUS + " <i>p</i> + <i>a</i>" + DOT + "<i>\u03b4</i> gives " +
        axes[0].text + "; column <i>j</i>" + PRIME + " = <i>j</i>" + DOT + "<i>s</i> " + MINUS + " <i>p</i> + <i>b</i>" + DOT + "<i>\u03b4</i> gives " + axes[1].text + ". ";
      if (st !== undefined) {
        out.html = head + formula + "So the entry is <b>" + tapName(g, st) + "</b>, tap " + st + ": " + n(xp[0]) + " = " + yp[0] + DOT + g.s[0] +
          " " + MINUS + " " + g.before[0] + " + " + axes[0].value + DOT + g.d[0] + " and " + n(xp[1]) + " = " + yp[1] + DOT + g.s[1] +
          " " + MINUS + " " + g.before[1] + " + " + axes[1].value + DOT + g.d[1] + ".";
      } else {
        out.html = head + formula + "No tap links them, so the entry is 0" +
          (axes[0].ok && axes[1].ok ? " (that tap falls on padding)." : ": " + idx("X", xp[0], xp[1]).replace("X", transposed ? "z" : "X") +
            " is outside the window of " + idx(transposed ? "y" : "Y", yp[0], yp[1]) + ".");
      }
    }
    return out;
  };

  Explorer.prototype.clear = function () {
    this.lit.forEach(function (el) {
      el.classList.remove("highlight", "cx-tapped");
      el.removeAttribute("data-tap");
    });
    this.lit = [];
    var grids = this.grids;
    (this.mLit || new Map()).forEach(function (tap, key) {
      var rc = key.split(","), el = cellOf(grids, "matrix", +rc[0], +rc[1]);
      if (el) {
        el.classList.remove("highlight", "cx-tapped");
        el.removeAttribute("data-tap");
      }
    });
    this.mLit = new Map();
    this.mOrder = [];
    if (this.activeCell) this.activeCell.classList.remove("active");
    this.activeCell = null;
    this.activeKey = null;
    this.lastLinks = null;
    if (this.bandRow) this.bandRow.hidden = true;
    if (this.bandCol) this.bandCol.hidden = true;
    this.element.querySelectorAll(".cx-flip.lit").forEach(function (el) { el.classList.remove("lit"); });
  };

  Explorer.prototype.activate = function (cell) {
    if (cell && cell === this.activeCell) return;
    this.clear();
    if (!cell || !this.g) {
      this.showReadout(null);
      return;
    }
    var links = this.links(cell), grids = this.grids, lit = this.lit, mLit = this.mLit, mOrder = this.mOrder;
    var own = [cell.getAttribute("data-grid"), +cell.getAttribute("data-i"), +cell.getAttribute("data-j")];
    links.cells.forEach(function (target) {
      if (target.grid === own[0] && target.i === own[1] && target.j === own[2]) return;
      var tap = target.tap !== undefined && target.grid !== "kernel" ? target.tap : null;
      if (target.grid === "matrix") {
        var key = target.i + "," + target.j;
        if (mLit.has(key)) return;
        mLit.set(key, tap);
        mOrder.push([target.i, target.j]);
      }
      var el = cellOf(grids, target.grid, target.i, target.j);
      if (!el) return;
      el.classList.add("highlight");
      if (tap !== null) {
        el.setAttribute("data-tap", tap);
        el.classList.add("cx-tapped");
      }
      if (target.grid !== "matrix") lit.push(el);
    });
    cell.classList.add("active");
    this.activeCell = cell;
    this.activeKey = own;
    this.lastLinks = links;
    var root = this.element;
    links.taps.forEach(function (t) {
      var flip = root.querySelector('.cx-flip[data-flip-tap="' + t + '"]');
      if (flip) flip.classList.add("lit");
    });
    this.showBands(links, own[0] !== "matrix");
    this.showReadout(links.html);
  };

  Explorer.prototype.showBands = function (links, scroll) {
    var m = this.m;
    if (!m || !m.cell) return;
    var cell = m.cell;
    if (links.bandRow !== null) {
      this.bandRow.hidden = false;
      this.bandRow.style.top = links.bandRow * cell + "px";
      this.bandRow.style.height = cell + "px";
      this.bandRow.style.width = m.cols * cell + "px";
    }
    if (links.bandCol !== null) {
      this.bandCol.hidden = false;
      this.bandCol.style.left = links.bandCol * cell + "px";
      this.bandCol.style.width = cell + "px";
      this.bandCol.style.height = m.rows * cell + "px";
    }
    if (!scroll || !this.mOrder.length) return;
    // bring the linked part of the matrix into its own box (never scrolls the page)
    var box = this.wScroll, headTop = this.thead.offsetHeight, headLeft = this.lhead.offsetWidth;
    var rows = this.mOrder.map(function (rc) { return rc[0]; }), cols = this.mOrder.map(function (rc) { return rc[1]; });
    var top = Math.min.apply(null, rows) * cell, bottom = (Math.max.apply(null, rows) + 1) * cell;
    var left = Math.min.apply(null, cols) * cell, right = (Math.max.apply(null, cols) + 1) * cell;
    var viewH = box.clientHeight - headTop, viewW = box.clientWidth - headLeft;
    if (top < box.scrollTop || bottom > box.scrollTop + viewH) box.scrollTop = Math.max(0, top - Math.max(0, (viewH - (bottom - top)) / 2));
    if (left < box.scrollLeft || right > box.scrollLeft + viewW) box.scrollLeft = Math.max(0, left - Math.max(0, (viewW - (right - left)) / 2));
    this.renderWindow(false);
  };

  Explorer.prototype.showReadout = function (html) {
    this.readout.innerHTML = html || (this.g
      ? "Hover over a cell, or <kbd>Tab</kbd> to a grid and move with the arrow keys: an output lights its row of the matrix and its window, an input its column and every output it feeds, an entry of the matrix its (output, input, tap) triple."
      : "Change a setting to get a valid convolution.");
    // The readout only ever grows (until the settings change): were it to shrink, the matrix
    // below would move under the pointer, light another cell, and move again.
    var height = this.readout.offsetHeight;
    if (height > this.readoutHeight) {
      this.readoutHeight = height;
      this.readout.style.minHeight = height + "px";
    }
  };

  // ------------------------------------------------------------ events

  Explorer.prototype.onHover = function (event) {
    var cell = event.target.closest && event.target.closest("[data-grid]");
    if (!cell || !this.element.contains(cell)) {
      if (event.target.closest && event.target.closest(".cx-panels, .cx-wbody")) return;
      if (this.activeCell !== this.focusCell) this.activate(this.focusCell);
      return;
    }
    this.activate(cell);
  };

  Explorer.prototype.onLeave = function () {
    this.activate(this.focusCell);
  };

  Explorer.prototype.onFocus = function (event) {
    if (this.redrawing) return;
    if (event.target === this.wScroll && this.m) {
      // the box of a large W is the tab stop: hand the focus to its current cell, unless the
      // focus comes back from that cell (Shift+Tab), on its way out
      if (event.relatedTarget && this.wScroll.contains(event.relatedTarget)) return;
      var inside = this.matrixCell(this.m.tab[0], this.m.tab[1]);
      if (inside) inside.focus({ preventScroll: true });
      return;
    }
    var cell = event.target.closest && event.target.closest("[data-grid]");
    if (!cell) return;
    var grid = cell.parentNode.parentNode, inMatrix = cell.getAttribute("data-grid") === "matrix";
    if (!(inMatrix && this.m && this.m.windowed)) {
      grid.querySelectorAll('[tabindex="0"]').forEach(function (el) { el.setAttribute("tabindex", "-1"); });
      cell.setAttribute("tabindex", "0");
    }
    if (inMatrix && this.m) this.m.tab = [+cell.getAttribute("data-i"), +cell.getAttribute("data-j")];
    this.focusCell = cell;
    this.activate(cell);
  };

  Explorer.prototype.onBlur = function (event) {
    if (this.redrawing) return;
    var next = event.relatedTarget;
    if (next && this.element.contains(next) && next.closest("[data-grid]")) return;
    this.focusCell = null;
    this.activate(null);
  };

  Explorer.prototype.onKey = function (event) {
    var cell = event.target.closest && event.target.closest("[data-grid]");
    if (!cell) return;
    var name = cell.getAttribute("data-grid"), grid = this.grids[name];
    var i = +cell.getAttribute("data-i"), j = +cell.getAttribute("data-j"), target = null;
    var i0 = name === "matrix" ? 0 : grid.i0, j0 = name === "matrix" ? 0 : grid.j0;
    var lastI = name === "matrix" ? grid.nRows - 1 : grid.i0 + grid.rows - 1;
    var lastJ = name === "matrix" ? grid.nCols - 1 : grid.j0 + grid.cols - 1;
    var step = name === "matrix" ? (isTransposed(this.cfg) ? this.g.X[1] : this.g.Y[1]) : 1;
    switch (event.key) {
      case "ArrowLeft": target = [i, j - 1]; break;
      case "ArrowRight": target = [i, j + 1]; break;
      case "ArrowUp": target = [i - 1, j]; break;
      case "ArrowDown": target = [i + 1, j]; break;
      case "Home": target = event.ctrlKey ? [i0, j0] : [i, j0]; break;
      case "End": target = event.ctrlKey ? [lastI, lastJ] : [i, lastJ]; break;
      case "PageUp": target = [i - Math.max(step, 1), j]; break;
      case "PageDown": target = [i + Math.max(step, 1), j]; break;
      case "Escape":
        this.focusCell = null;
        cell.blur();
        this.activate(null);
        event.preventDefault();
        return;
      case "Enter":
      case " ":
        target = this.jump(cell, event.shiftKey);
        if (target) {
          target.focus();
          event.preventDefault();
        }
        return;
      default: return;
    }
    event.preventDefault();
    target[0] = Math.max(i0, Math.min(lastI, target[0]));
    target[1] = Math.max(j0, Math.min(lastJ, target[1]));
    var el = name === "matrix" ? this.matrixCell(target[0], target[1]) : cellOf(this.grids, name, target[0], target[1]);
    if (el) el.focus();
  };

  /** Enter: from a grid cell to its first linked entry of the matrix; from the matrix back. */
  Explorer.prototype.jump = function (cell, shift) {
    var name = cell.getAttribute("data-grid");
    if (name === "matrix") {
      var names = this.names(), i = +cell.getAttribute("data-i"), j = +cell.getAttribute("data-j");
      var transposed = isTransposed(this.cfg);
      var y = transposed ? j : i, x = transposed ? i : j;
      var useY = (names.y === "input") === shift;
      return useY ? cellOf(this.grids, names.y, Math.floor(y / this.g.Y[1]), y % this.g.Y[1])
        : cellOf(this.grids, names.x, Math.floor(x / this.g.X[1]), x % this.g.X[1]);
    }
    var first = this.mOrder[0];
    return first ? this.matrixCell(first[0], first[1]) : null;
  };

  // ------------------------------------------------------------ public interface

  function mount(element, cfg) {
    if (!element || !element.nodeType) throw new TypeError("mount needs an element");
    if (element.convExplorer) {
      element.convExplorer.set(cfg || {});
      return element.convExplorer;
    }
    var explorer = new Explorer(element, cfg);
    var api = {
      set: function (next) { explorer.set(next); return api; },
      get config() { return explorer.config; },
      element: element,
      explorer: explorer,
    };
    element.convExplorer = api;
    return api;
  }

  function mountAll(root) {
    (root || document).querySelectorAll("div.conv-explorer:not(.cx-mounted)").forEach(function (el) {
      var cfg = {};
      var text = el.getAttribute("data-config");
      if (text) {
        try {
          cfg = JSON.parse(text);
        } catch (error) {
          el.textContent = "The explorer could not read its data-config (" + error.message + ").";
          return;
        }
      }
      mount(el, cfg);
    });
  }

  window.convExplorer = {
    kernelMatrix: kernelMatrix,
    transposedMatrix: transposedMatrix,
    outputSize: outputSize,
    torchError: torchError,
    mount: mount,
    mountAll: mountAll,
    presets: PRESETS.map(function (p) { return { label: p.label, cfg: JSON.parse(JSON.stringify(p.cfg)) }; }),
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { mountAll(); });
  } else {
    mountAll();
  }
})();
