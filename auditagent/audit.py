"""One self-check: gather the facts a policy needs, then judge them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from auditagent.evaluate import Evaluation, evaluate
from auditagent.host import Host
from auditagent.policy import Policy
from auditagent.probes import Cache, ProbeContext, collect


def run_check(policy: Policy, host: Host, cache_dir: Path | None = None) -> tuple[dict[str, Any], Evaluation]:
    """Only the probes the policy's checks read are run, so only those facts exist
    to be reported (data minimisation by construction)."""
    ctx = ProbeContext(host=host, cache=Cache(cache_dir))
    facts = collect(ctx, policy.sections())
    return facts, evaluate(policy, facts)
