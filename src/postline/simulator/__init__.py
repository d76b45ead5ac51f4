"""A local stand-in for the Twilio Messages API and the SendGrid v3 Mail Send API.

Postline's provider adapters always talk HTTP in the providers' real wire
formats; in tests and under `postline dev` their base URLs point here. The
simulator answers like the providers do (resources, status values, error
codes and shapes taken from their published OpenAPI documents), records
every request for inspection, and can be told to misbehave: latency, random
500s and 429s, a per-recipient script of answers, or the ambiguous-outcome
faults of a fault campaign (hangs, resets and 500s after acceptance). With a
request log it appends every provider call to a JSON-lines file.

It also sends the delivery-status callbacks the providers send, signed
as they sign them.

Modules: `config` (the knobs), `state` (log, counters, fault planning),
`scripts` (per-recipient answers), `faults` (the ambiguous outcomes),
`endpoint`, `twilio` and `sendgrid` (the provider endpoints), `calllog`
(the durable call log), `receipts` (the status callbacks), `control` (the
`/_sim` routes), `app` (build and serve).
"""

from postline.simulator.app import (
    RunningSimulator,
    create_app,
    run_simulator,
    running_simulator,
)
from postline.simulator.config import SimulatorConfig

__all__ = [
    "RunningSimulator",
    "SimulatorConfig",
    "create_app",
    "run_simulator",
    "running_simulator",
]
