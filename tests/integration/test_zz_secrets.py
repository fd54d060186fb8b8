# SPDX-License-Identifier: MIT
"""Runs last (pytest collects files in name order): no credential any test of this run handed
agentd (registered with conftest.register_secret) appears in any log the run produced, at any
level, from any daemon."""
from pathlib import Path

import conftest


def test_no_credential_in_any_log_of_the_run(tmp_path_factory):
    base = Path(tmp_path_factory.getbasetemp())
    logs = [p for p in base.rglob("*") if p.is_file() and p.suffix in (".stderr", ".log")]
    leaks = []
    for log in logs:
        text = log.read_text(errors="replace")
        leaks += [f"{log.relative_to(base)}: {secret[:10]}..." for secret in conftest.SECRETS if secret in text]
    assert not leaks, "credentials found in logs:\n" + "\n".join(sorted(leaks))
    print(f"checked {len(logs)} logs for {len(conftest.SECRETS)} credentials")
