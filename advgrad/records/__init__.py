"""The records advgrad writes and reads back.

- ``write``: the one place that writes files (a temporary file, then ``os.replace``) and the provenance
  block every record carries;
- ``read``: the readers of those records, for figures and resumes (one-line errors for a damaged file);
- ``examples``: adversarial examples saved with their provenance (``save_examples``/``load_examples``, and
  PNG export) for transfer attacks.

``write`` and ``read`` import neither torch nor numpy at module level (the CLI starts up on them); this
package imports none of its modules, so that importing one of them loads only what it needs.
"""
