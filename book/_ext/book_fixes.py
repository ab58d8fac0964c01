"""Small fixes to what the Jupyter Book 1 stack writes into every page, and into the PDF.

sphinx-thebe registers its inline configuration script twice under Jupyter Book 1, which
makes the browser throw (sphinx-togglebutton's are doubled too, harmlessly) "Identifier 'THEBE_JS_URL' has already been declared" on every page.
Drop exact duplicate script entries before the page is rendered.

In the PDF (`make pdf`), sphinx-jupyterbook-latex numbers figures and equations per chapter
(Fig. 7.1, (7.1)), while the HTML numbers them through the whole book (Fig. 11, (22)), since
the table of contents is not numbered. Number the PDF as the HTML: no reset at chapters.
And LaTeX numbers every chapter, the notation page too, so the chapters came out one more
than the front page's list (1 to 12): the notation page is chapter 0.
"""

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform

NOTATION = "book/notation"  # the page before chapter 1 in _toc.yml


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts, seen = context.get("script_files"), set()
    if not scripts:
        return
    unique = []
    for script in scripts:
        # Inline scripts come with filename None or "" depending on who added them.
        key = (getattr(script, "filename", script) or None,
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def _number_figures_through_the_book(app):
    # After sphinx-jupyterbook-latex's own builder-inited handler, which sets the depth to 2.
    if app.builder.format == "latex":
        app.config.numfig_secnum_depth = 0


class NotationIsChapterZero(SphinxPostTransform):
    """In the PDF's one large doctree, start the notation page with chapter counter -1."""

    default_priority = 900
    formats = ("latex",)

    def run(self, **kwargs):
        for node in self.document.findall(addnodes.start_of_file):
            if node.get("docname") == NOTATION:
                node.insert(0, nodes.raw("", r"\setcounter{chapter}{-1}", format="latex"))


def setup(app):
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    app.connect("builder-inited", _number_figures_through_the_book, priority=900)
    app.add_post_transform(NotationIsChapterZero)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
