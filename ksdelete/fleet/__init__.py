"""Fleet mode: many custom key stores across accounts and Regions, from one reviewed file.

- `model`: the fleet file as data (FleetSpec, AccountSpec, StoreTarget, Guards, Rollout) and
  what a fleet run comes to (TargetResult, FleetRun). Pure.
- `spec`: reading and checking a fleet file (YAML, `version: 1`, strict). Pure.
- `runner`: one workspace per (account, Region), accounts in parallel, the rollout's brake.
- `view`: the fleet's JSON document, its plain lines and its live table.

A fleet target is run by today's single-store pipeline (planner, executor, journal): fleet
adds credentials per account, guards, scheduling and one combined view.
"""
