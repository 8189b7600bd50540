"""The local API fuzzed through its own OpenAPI document (schemathesis): whatever the document
allows, and what it does not, no request gets a 500, and every answer is what the document says.
The app is the real one over a real store and the real mesh-sandbox (one message submitted first,
so ids and routes that exist are there to be found)."""

from __future__ import annotations

from typing import Any

import schemathesis
from conftest import OUT_IN
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from web_fixtures import auth, with_web

from meshbridge import Bridge, load
from meshbridge.models import Direction

# A schema-valid value the store never issued (a page cursor, a business code) is rightly a 400:
# "positive data acceptance" cannot know which opaque values exist.
EXCLUDED = [positive_data_acceptance]
NOTHING_TO_BREAK = {"GET /healthz", "GET /metrics", "GET /api/v1/status"}  # no parameter, no body
EXAMPLES = 25  # per operation and variant: about 10 s in all


def test_no_request_gets_a_server_error(meshbridge_config: Any) -> None:
    """Every operation of the document: requests that fit it and requests that do not, and with
    the path naming what exists (an outbound and an inbound message, the outbound route).
    (schemathesis's ``from_fixture`` does not run on this pytest: each strategy is driven here.)"""
    from meshbridge.web import create_app

    config = with_web(meshbridge_config(OUT_IN), 'max_upload = "64KiB"\n')
    app = create_app(load(config))
    try:
        with Bridge(load(config)) as bridge:
            outbound = bridge.send(write(config.parent / "seed.txt"), route="out").id
            bridge.poll()
            [inbound] = [m.id for m in bridge.messages(direction=Direction.IN)]
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=auth("admin"))
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 12
        seen: dict[str, set[int]] = {}
        for operation in operations:
            names = {p.name for p in operation.path_parameters}
            variants = [operation.as_strategy(mode) for mode in GenerationMode]
            if "message_id" in names:
                variants += [operation.as_strategy(path_parameters={"message_id": m}) for m in (outbound, inbound)]
            if "route" in names:
                variants.append(operation.as_strategy(path_parameters={"route": "out"}))
            for strategy in variants:

                @given(case=strategy)
                @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
                def fuzz(case: Any) -> None:
                    response = case.call_and_validate(headers=auth("admin"), excluded_checks=EXCLUDED)
                    seen.setdefault(case.operation.label, set()).add(response.status_code)

                try:
                    fuzz()
                except Unsatisfiable:  # a negative strategy where nothing can be made invalid (/healthz)
                    assert strategy is variants[1] and operation.label in NOTHING_TO_BREAK, operation.label
        assert all(code < 500 for codes in seen.values() for code in codes), seen
        assert {201, 422} <= seen["POST /api/v1/routes/{route}/messages"], seen  # sent; refused (empty)
        assert 200 in seen["GET /api/v1/messages/{message_id}/payload"], seen
    finally:
        app.state.pool.close()


def write(path: Any) -> Any:
    path.write_bytes(b"a message to find")
    return path
