"""Shared-subscription operations: carried in v1 ``REQUEST`` (type 7), one-way (id 0).

No v1 message type changes meaning (STYLE rule 11): these are new operation names.

    shared.set      {epoch, v, groups: [[group, real_filter], ...]}   the sender's whole set
                    of shared groups with a local member; newest (epoch, v) wins
    shared.deliver  {group, filter, m}   deliver message m to one local member of the group
                    (the publishing node picked this node)
"""

from __future__ import annotations

__all__ = ["PREFIX", "SET", "DELIVER", "ONE_WAY"]

PREFIX = "shared."
SET = "shared.set"
DELIVER = "shared.deliver"
ONE_WAY = 0
