"""kleiod: Kleio's per-user daemon (control plane, ingest, storage, supervisor)."""
