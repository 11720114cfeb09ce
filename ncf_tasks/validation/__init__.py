"""Validation of a curated day, below the ``validate`` and ``backfill`` stages (which never import each other):

* ``suite``: the Great Expectations suite (``include/expectations/interactions.json``), its parameters from
  the run's settings, and the GX run itself;
* ``rules``: the hard rules that run in polars beside it (``value_finite``, ``id_chars``);
* ``outcome``: one rule's verdict, as both report it;
* ``docs``: GX's Data Docs, rendered safely (``gx_views``) and uploaded to ``reports/validation/``;
* ``quarantine``: a failed batch moved out of the lake, and a later pass marking it resolved;
* ``day``: ``validate_day``, the whole of it for one day.
"""
