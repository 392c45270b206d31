"""The Go ``text/template`` engine behind :mod:`watchkeeper.alerting.templating`.

Private: import from :mod:`watchkeeper.alerting.templating`. The pieces, in
the order a template goes through them:

- :mod:`.lexer` cuts the text into text chunks and action tokens;
- :mod:`.parser` builds the tree of :mod:`.nodes` (and checks variables and
  function names, as Go does when parsing);
- :mod:`.executor` walks the tree against the data, calling :mod:`.funcs`;
- :mod:`.values` holds what templates see (query samples, alert data) and how
  Go prints and tests them; :mod:`.goformat` and :mod:`.humanize` format
  numbers, times and durations as Go and Prometheus do;
- :mod:`.errors` holds :class:`~.errors.TemplateError`.
"""
