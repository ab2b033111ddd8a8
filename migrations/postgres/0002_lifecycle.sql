-- Lifecycle (issue 14): SQLite's migrations/0008_lifecycle.sql, which says what each
-- column holds.

CREATE TABLE manifest_refs (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    manifest      TEXT   NOT NULL,
    kind          TEXT   NOT NULL,
    target        TEXT   NOT NULL,
    PRIMARY KEY (repository_id, manifest, kind, target)
);

CREATE INDEX manifest_refs_by_target ON manifest_refs (repository_id, kind, target);

ALTER TABLE manifests ADD COLUMN refs_recorded BIGINT NOT NULL DEFAULT 0;
ALTER TABLE manifests ADD COLUMN touched_at BIGINT NOT NULL DEFAULT 0;
UPDATE manifests SET touched_at = created_at;

CREATE INDEX manifests_by_touch ON manifests (repository_id, touched_at);
CREATE INDEX tags_by_update ON tags (repository_id, updated_at);

ALTER TABLE repository_blobs ADD COLUMN linked_at BIGINT NOT NULL DEFAULT 0;
UPDATE repository_blobs SET linked_at = COALESCE(
    (SELECT created_at FROM blobs WHERE blobs.digest = repository_blobs.digest), 0);

ALTER TABLE blobs ADD COLUMN doomed_at BIGINT;

CREATE INDEX repository_blobs_by_digest ON repository_blobs (digest);

CREATE TABLE immutable_tags (
    pattern    TEXT   NOT NULL,
    tags       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT   NOT NULL,
    PRIMARY KEY (pattern, tags)
);
