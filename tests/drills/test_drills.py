"""The fault drills in short form: 150 threads per drill against a live stack.

Runs `python -m bench.drills` as a subprocess, because the drills configure Django
for a database and a Redis server of their own (a throwaway redis-server, since one
drill restarts it). Its database is `bench_drills_ci` on the server in DATABASE_URL.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.support.emulator import PROJECT_ROOT

pytestmark = pytest.mark.worker

DRILL_THREADS = 150
DRILLS_TIMEOUT_SECONDS = 840


@pytest.fixture(scope="module")
def drill_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("drills") / "results.json"
    # On a timeout the drills get SIGTERM, on which they stop the emulator, workers
    # and redis-server they started; their process group gets SIGKILL a minute later.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.drills",
            "--threads",
            str(DRILL_THREADS),
            "--database",
            "bench_drills_ci",
            "--json-out",
            str(out),
            "--no-write",
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=DRILLS_TIMEOUT_SECONDS)
    except BaseException:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        raise
    completed = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    print(completed.stdout[-8000:], completed.stderr[-8000:])
    assert out.exists(), "bench.drills wrote no results; its output:\n%s\n%s" % (
        completed.stdout[-4000:],
        completed.stderr[-4000:],
    )
    return {result["name"]: result for result in json.loads(out.read_text())}


@pytest.mark.timeout(DRILLS_TIMEOUT_SECONDS + 60)
@pytest.mark.parametrize("name", ["kill-worker", "restart-redis", "api-faults"])
def test_drill_passes(drill_results, name):
    result = drill_results[name]
    assert result["problems"] == [], "\n".join(result["events"] + result["problems"][:20])
    assert result["archived"] == DRILL_THREADS
