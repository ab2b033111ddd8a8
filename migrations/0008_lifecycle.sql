-- Lifecycle (issue 14): what online garbage collection needs to know, and the rules that
-- make tags immutable.

-- What each manifest references in its repository: blobs (config, layers) and, for an
-- index, child manifests. A link (repository_blobs) that no manifest references, and a
-- manifest that no tag, index or live subject keeps, are garbage once older than the
-- grace period.
CREATE TABLE manifest_refs (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    -- the referencing manifest's digest
    manifest      TEXT    NOT NULL,
    -- 'blob' or 'manifest'
    kind          TEXT    NOT NULL,
    target        TEXT    NOT NULL,
    PRIMARY KEY (repository_id, manifest, kind, target)
) WITHOUT ROWID;

CREATE INDEX manifest_refs_by_target ON manifest_refs (repository_id, kind, target);

-- 1 once the manifest's references are in manifest_refs (written with the manifest from
-- now on; manifests stored before this migration are read and filled in at start).
ALTER TABLE manifests ADD COLUMN refs_recorded INTEGER NOT NULL DEFAULT 0;
-- Unix seconds of the manifest's latest push (created_at is its first): the grace period
-- of an untagged manifest starts again when it is pushed again.
ALTER TABLE manifests ADD COLUMN touched_at INTEGER NOT NULL DEFAULT 0;
UPDATE manifests SET touched_at = created_at;

-- What was written to a repository since a moment: garbage collection marks from a
-- snapshot and, in each removal's transaction, keeps whatever a later write made reachable.
CREATE INDEX manifests_by_touch ON manifests (repository_id, touched_at);
CREATE INDEX tags_by_update ON tags (repository_id, updated_at);

-- Unix seconds of the latest push or mount of the blob into the repository: a link no
-- manifest references is kept for the grace period after it.
ALTER TABLE repository_blobs ADD COLUMN linked_at INTEGER NOT NULL DEFAULT 0;
UPDATE repository_blobs SET linked_at = COALESCE(
    (SELECT created_at FROM blobs WHERE blobs.digest = repository_blobs.digest), 0);

-- Set (unix seconds) by garbage collection before it removes the blob's bytes: a blob so
-- marked is linked to no repository again; the row goes once the bytes are gone.
ALTER TABLE blobs ADD COLUMN doomed_at INTEGER;

-- Which repositories link a blob: garbage collection asks it of every blob.
CREATE INDEX repository_blobs_by_digest ON repository_blobs (digest);

-- Immutable tags: a tag of a repository PATTERN matches ('*', 'NS/*' or one repository)
-- whose name matches the glob TAGS cannot be moved or deleted once published.
CREATE TABLE immutable_tags (
    pattern    TEXT    NOT NULL,
    tags       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    PRIMARY KEY (pattern, tags)
);
