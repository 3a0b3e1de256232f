"""`nox -s rehearse`: the release flow played end to end on one machine (docs/release.md, "The rehearsal")."""
