"""The rehearsal: the whole loop (serve, capture, monitor, review, label, retrain) on one machine,
offline, wired from the app's own synthesised templates (``python -m local.rehearse``).

- ``templates``: the app synthesised in-process and its templates' intrinsic functions resolved;
- ``cloud``: an embedded AWS (moto, in this process) holding what the templates declare, delivering
  events, queue messages and schedules to the functions as AWS would;
- ``functions``: each Lambda function's handler run in this process with its template's settings.
"""
