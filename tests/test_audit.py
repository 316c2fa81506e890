from copilot.governance import audit
from copilot.service import Services


def test_chain_verifies_and_detects_an_edited_row(services: Services):
    services.copilot().run("Disk full on the postgres volume")
    check = audit.verify_chain(services.store)
    assert check.ok and check.events >= 6 and check.broken_at is None
    first_run_events = audit.events(services.store, limit=1000)
    target = first_run_events[len(first_run_events) // 2]["seq"]
    with services.store.transaction() as tx:  # someone "fixes" history by hand
        tx.execute("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = ?", [target])
    check = audit.verify_chain(services.store)
    assert not check.ok and check.broken_at == target and "edited" in check.reason


def test_events_filter_by_run(services: Services):
    a = services.copilot().run("Disk full on the postgres volume")
    services.copilot().run("Redis is evicting keys")
    rows = audit.events(services.store, a.run_id)
    assert rows and {r["run_id"] for r in rows} == {a.run_id}
