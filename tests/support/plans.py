"""Query plans in tests: a history big enough for the planner's own choice to
show whether an index serves a query, and the scans of an EXPLAIN."""

from __future__ import annotations

from typing import Any

#: Three hours of history (one attempt with a transient error per message,
#: as on a bad day) and, every thousandth message, one in the last minute.
HISTORY = """
WITH m AS (
    INSERT INTO messages (id, type, status, from_addr, to_addr, ordering_key, created_at)
    SELECT gen_random_uuid(), 'sms', 'sent', '+15551234567', '+1555' || lpad(n::text, 7, '0'),
           '+1555' || lpad(n::text, 7, '0'), now() - interval '3 hours'
    FROM generate_series(1, 5000) AS n
    RETURNING id, seq
)
INSERT INTO message_events (message_id, status, attempt, at)
SELECT m.id, e.status, 1, e.k * interval '1 ms' + CASE WHEN m.seq % 1000 = 0
       THEN now() - interval '1 minute' ELSE now() - interval '2 hours' END
FROM m CROSS JOIN (VALUES (0, 'sending'), (1, 'retrying'), (2, 'sent')) AS e(k, status)
"""


Scan = tuple[str, str | None, str | None, str | None]


def scans_of(plan: Any) -> set[Scan]:
    """Every scan of a JSON plan, as (node type, table, index, index condition)."""
    found: set[Scan] = set()
    nodes = [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if "Scan" in node["Node Type"]:
            found.add(
                (
                    node["Node Type"],
                    node.get("Relation Name"),
                    node.get("Index Name"),
                    node.get("Index Cond"),
                )
            )
    return found
