"""The run engine: a run is a saved `RunState` that any process can advance.

    running -> awaiting_approval -> running -> completed | failed     (+ interrupted)

`engine.Engine` is the one loop; `planner`, `executor` and `reviewer` are its steps, and
`journal` writes each step boundary to the store in one transaction.
"""
