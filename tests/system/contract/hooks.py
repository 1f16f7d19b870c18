"""Schemathesis hooks for the contract test (tests/system/contract/schemathesis.toml).

A client sends a new Idempotency-Key with each new request; reusing one for another request is
answered 422 by design (tests/system/tests/system/idempotency.rs tests that). Generated cases
share key values all the time, so every well-formed key is replaced with a fresh one before the
call; malformed keys (the negative cases) are left as they are.
"""

import re
import uuid

import schemathesis

# As the gateway reads a key (services/api-gateway/src/http/idempotency.rs).
WELL_FORMED = re.compile(r"[!-~]([\t -~]{0,253}[!-~])?")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and WELL_FORMED.fullmatch(value):
            headers[name] = f"contract-{uuid.uuid4()}"
