"""Archive idle child threads created more than a week ago, through the dashboard's REST API.

Reads DASHBOARD_URL (e.g. http://127.0.0.1:8000) and DASHBOARD_TOKEN (from
`python manage.py api_token USERNAME`; the user needs threads.archive_thread).
Lists the threads, dry-runs their archive job, creates it, and polls it until it
finishes, printing progress. Exits 1 if any thread failed to archive.
Needs only httpx: `pip install httpx`.
"""

import os
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx

MAX_AGE = timedelta(days=7)
POLL_SECONDS = 1.0
TIMEOUT_SECONDS = 600


def idle_thread_ids(client: httpx.Client, *, cutoff: datetime) -> list[str]:
    """Return the ids of idle child threads created before `cutoff`, following every cursor page."""
    params = {"status": "idle", "kind": "child", "created_to": cutoff.date().isoformat(), "page_size": 500}
    url, ids = "/api/v1/threads/", []
    while url:
        response = client.get(url, params=params)
        response.raise_for_status()
        page = response.json()
        # created_to is a whole day; compare the exact time here.
        ids += [row["id"] for row in page["results"] if datetime.fromisoformat(row["created_at"]) < cutoff]
        url, params = page["next"], None
    return ids


def main() -> int:
    client = httpx.Client(
        base_url=os.environ["DASHBOARD_URL"],
        headers={"Authorization": "Token " + os.environ["DASHBOARD_TOKEN"]},
        timeout=httpx.Timeout(30.0, connect=5.0),
    )

    ids = idle_thread_ids(client, cutoff=datetime.now(UTC) - MAX_AGE)
    print("Found %d idle threads older than a week." % len(ids))
    if not ids:
        return 0

    dry_run = client.post("/api/v1/archive-jobs/", json={"thread_ids": ids, "dry_run": True})
    dry_run.raise_for_status()
    summary = dry_run.json()
    print("Dry run: %d to archive, %d skipped." % (summary["planned_count"], summary["skipped_count"]))
    for row in summary["skipped"]:
        print("  skipped %d: %s" % (row["count"], row["label"]))

    created = client.post("/api/v1/archive-jobs/", json={"thread_ids": ids})
    if created.status_code != 201:
        print("Creating the job failed: %s" % created.json()["detail"], file=sys.stderr)
        return 1
    job_url = created.headers["Location"]
    print("Archive job %d created." % created.json()["job"]["id"])

    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        response = client.get(job_url)
        response.raise_for_status()
        job, progress = response.json()["job"], response.json()["progress"]
        print(
            "%s: %d%% done, %d archived, %d skipped, %d failed, %d pending"
            % (
                job["status"],
                progress["percent"],
                progress["archived"],
                progress["skipped"],
                progress["failed"],
                progress["pending"] + progress["in_progress"],
            )
        )
        if job["finished_at"] is not None:
            break
        if time.monotonic() > deadline:
            print("The job did not finish within %d s; it goes on in the background." % TIMEOUT_SECONDS)
            return 1
        time.sleep(POLL_SECONDS)

    if progress["failed"]:
        failed = client.get(job_url + "failed-items/").json()["results"]
        for item in failed:
            print("  failed %s: %s" % (item["thread_id"], item["reason"] or item["last_error_message"]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
