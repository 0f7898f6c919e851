"""docs/schema.md shows the models and revisions as they are (template-owned).

It is generated (``uvx nox -s schema-docs``); this test fails in one line while
the page differs from what the models and revision files give now.
"""

from __future__ import annotations

import pytest

from .schema_docs import schema_page, stale_reason


def test_schema_docs_are_current() -> None:
    if reason := stale_reason(schema_page()):
        pytest.fail(reason, pytrace=False)
