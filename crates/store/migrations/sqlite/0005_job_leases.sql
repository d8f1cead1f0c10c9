-- Background work that must run on one node at a time: a lease per job, renewed while its holder
-- runs it and taken over by another node once it runs out (the holder died).
CREATE TABLE job_leases (
    job        TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;
