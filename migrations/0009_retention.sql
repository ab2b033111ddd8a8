-- Retention (issue 14): rules that remove old tags of matching repositories, and the
-- manifests only those tags kept.

-- One rule per repository PATTERN ('*', 'NS/*' or one repository); the most specific
-- pattern matching a repository is its rule.
CREATE TABLE retention_rules (
    pattern        TEXT    NOT NULL PRIMARY KEY,
    -- the KEEP_LAST images (manifests) most recently tagged keep all their tags
    keep_last      INTEGER NOT NULL,
    -- a glob: matching tags are kept whatever their age (NULL: none)
    keep_tags      TEXT,
    -- seconds: untagged, unreferenced manifests last pushed longer ago are removed
    -- (NULL: retention leaves untagged manifests to garbage collection)
    untagged_after INTEGER,
    created_at     INTEGER NOT NULL,
    created_by     TEXT    NOT NULL
);
