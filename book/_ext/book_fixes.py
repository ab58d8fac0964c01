"""Small fixes to what the Jupyter Book 1 stack writes into every page.

sphinx-thebe registers its inline configuration script twice under Jupyter Book 1, which
makes the browser throw (sphinx-togglebutton's are doubled too, harmlessly) "Identifier 'THEBE_JS_URL' has already been declared" on every page.
Drop exact duplicate script entries before the page is rendered.
"""


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


def setup(app):
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
