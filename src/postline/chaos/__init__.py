"""Postline's own fault campaign: open-loop load while faults hit, then a check.

`postline chaos` starts a whole Postline of its own as subprocesses
(PostgreSQL, Redis, the provider simulator, an API, N workers), sends SMS
over many ordering keys at a fixed rate while a seeded schedule of faults
kills, stops, flushes and slows its parts, lets the work settle, and then
judges the run from three logs only: what the client was told, what the
provider received, and which faults were active when.

Modules: `records` (the three logs and the message identity), `checker`
(the pure judge), `plan` (the seeded fault schedule), `guard` (children die
with the campaign), `stack` (the processes), `faults` (doing and undoing
each fault), `load` (the client), `features` (failover and pacing, off by
default), `observe` and `evidence` (what a feature did), `summary`,
`campaign` (the whole run); its command line is `postline.cli.bench`.
Importing this package starts nothing.
"""
