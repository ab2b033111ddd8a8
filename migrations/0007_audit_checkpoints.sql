-- Where the live audit chain starts after `bonded audit archive` moved its oldest records
-- to a file: the last archived record's sequence number and hash (the next live record's
-- prev_hash), when, and the file's name as given. One row per archive run; the live chain
-- continues from the one with the highest seq.
CREATE TABLE audit_checkpoints (
    seq         INTEGER PRIMARY KEY,
    hash        TEXT NOT NULL,
    archived_at TEXT NOT NULL,
    file        TEXT NOT NULL
);
