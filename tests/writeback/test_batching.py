"""Only changed values are sent, 200 records per call, and the pipeline's own writes create no work."""

from __future__ import annotations

import pytest
from sf_world import load_opportunities, patches, set_scores, start_world, write_back

from routiine_pipeline.writeback.changes import pending_changes


@pytest.mark.parametrize(
    ("scored", "changed", "expected_sizes"),
    [(500, 450, [200, 200, 50]), (200, 200, [200]), (201, 201, [200, 1]), (10, 0, [])],
)
def test_changed_records_chunked(routiine_home, scored, changed, expected_sizes):
    world = start_world()
    try:
        ids = load_opportunities(world, scored)
        set_scores(world, {deal: (40, "Book a meeting") for deal in ids})
        write_back(world, run_id="first")
        world.clock.advance(60)
        client, _ = world.client(run_id="sync")
        world.extract(client, ["Opportunity"])
        world.org.clear_write_log()

        set_scores(
            world,
            {
                deal: (41 if n < changed else 40, "Book a meeting")
                for n, deal in enumerate(ids)
            },
        )
        report = write_back(world, run_id="second")

        sent = patches(world)
        assert [len(batch) for batch in sent] == expected_sizes
        assert max((len(batch) for batch in sent), default=0) <= 200
        assert sorted(record for batch in sent for record in batch) == sorted(
            ids[:changed]
        )
        assert report.calls == len(expected_sizes)
        assert report.succeeded == changed
        with world.duck() as conn:
            logged = conn.execute(
                "SELECT count(*) FROM writeback_log WHERE run_id = 'second' AND success"
            ).fetchone()[0]
        assert logged == changed
    finally:
        world.server.stop()


def test_own_writes_create_no_work(world):
    ids = load_opportunities(world, 5)
    set_scores(world, {deal: (70, "Send proposal") for deal in ids})
    report = write_back(world, run_id="first")
    assert report.succeeded == 5
    world.clock.advance(120)
    client, _ = world.client(run_id="sync")
    world.extract(client, ["Opportunity"])
    with world.duck() as conn:
        synced_values = conn.execute(
            "SELECT count(*) FROM raw_opportunity WHERE momentum_score__c = 70"
        ).fetchone()[0]
        assert synced_values == 5
        assert pending_changes(conn) == []
    world.org.clear_write_log()
    rerun = write_back(world, run_id="rerun")
    assert rerun.calls == 0
    assert patches(world) == []


def test_edited_field_restored_and_logged(world, caplog):
    ids = load_opportunities(world, 3)
    set_scores(world, {deal: (55, "Call the champion") for deal in ids})
    write_back(world, run_id="first")
    world.clock.advance(60)
    world.org.update(
        "Opportunity", ids[1], {"Momentum_Score__c": 99}, by="005000000000077AAA"
    )
    world.clock.advance(60)
    client, _ = world.client(run_id="sync")
    world.extract(client, ["Opportunity"])
    world.org.clear_write_log()

    with caplog.at_level("WARNING"):
        report = write_back(world, run_id="restore")

    assert patches(world) == [[ids[1]]]
    assert report.restored_edits == 1
    assert world.org.get("Opportunity", ids[1])["Momentum_Score__c"] == 55
    assert (
        f"Opportunity {ids[1]} had its Routiine fields edited in Salesforce; restoring"
        in caplog.text
    )
