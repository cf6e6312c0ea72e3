"""Schemathesis over the app's OpenAPI against a real uvicorn: no generated request gets a server error
(5xx). Examples are bounded and derandomised so that the run is short and the same in CI.

The operations are driven with Hypothesis directly (``operation.as_strategy()``) rather than through the
schemathesis pytest plugin, which does not run under pytest 9 here.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from neurograph.server import ServerConfig
from tests.server.conftest import token
from tests.server.live import SECRET, live

EXAMPLES = 15  # per operation


def test_openapi_fuzzing_finds_no_server_error() -> None:
    config = ServerConfig(jwt_secret=SECRET, rate_limits={"emit": (10_000, 10_000)})
    headers = {"Authorization": f"Bearer {token('admin')}"}  # admin: every route is reachable
    with live(config=config) as srv:
        schema = schemathesis.openapi.from_url(f"{srv.http}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/api/v1/emit", "/api/v1/emit/batch", "/api/v1/cdna"}
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers, checks=[not_a_server_error])

            check()
