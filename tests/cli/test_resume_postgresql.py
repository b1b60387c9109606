"""The kill -9 resume test against PostgreSQL (KSCOUT_TEST_PG_URL; scripts/test.sh starts one). A
module of its own so that pytest-xdist (--dist loadscope sends a module to one worker) runs it
beside the SQLite one instead of after it: each spends ~90 s, mostly waiting for phases and for
five sessions to start."""

from __future__ import annotations

import os

import pytest

from tests.cli.test_resume import kill9_then_resume

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_kill9_at_several_points_then_resume_loses_and_repeats_nothing_on_postgresql(tmp_path):
    url = os.environ.get("KSCOUT_TEST_PG_URL")
    if not url:
        pytest.skip("KSCOUT_TEST_PG_URL not set (scripts/test.sh starts a PostgreSQL and sets it)")
    kill9_then_resume(tmp_path, url)
