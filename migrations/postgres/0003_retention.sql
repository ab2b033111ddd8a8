-- Retention (issue 14): SQLite's migrations/0009_retention.sql, which says what each
-- column holds.

CREATE TABLE retention_rules (
    pattern        TEXT   NOT NULL PRIMARY KEY,
    keep_last      BIGINT NOT NULL,
    keep_tags      TEXT,
    untagged_after BIGINT,
    created_at     BIGINT NOT NULL,
    created_by     TEXT   NOT NULL
);
