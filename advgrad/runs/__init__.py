"""The workflows the ``advgrad`` commands run, as library functions: each takes a config and plain values,
returns what it made (records, arrays, figures) and reports along the way through callbacks — it never
prints; the CLI (or a script) writes the files and echoes. One module per workflow:

- ``training``: a training run with resume, best checkpoint, metrics JSON and the robust probe
  (``run_training(TrainingPlan)``); ``_resume`` checks the saved state it continues from;
- ``attack``: the attack report of ``advgrad attack`` (record and examples arrays);
- ``evaluation``: the eval record and CSV rows of ``advgrad eval``;
- ``gradients``: the gradient check of ``advgrad grad``;
- ``figures``: the figures of ``advgrad plot`` from the records (``advgrad.records.read`` reads them).

Callbacks: ``on_warning(text)`` for a difference that changes numbers but stops nothing (another copy of the
data set, a collapsing probe), ``progress(done, total)`` in samples, and per workflow its own events.
"""
