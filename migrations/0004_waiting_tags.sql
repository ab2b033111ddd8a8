-- Waiting tags: a tag pushed for a manifest its trust policy does not admit yet waits
-- here, beside the tag it may replace, instead of in `tags`. A published tag keeps being
-- served while a newer push of it waits for signatures; a signature that makes the policy
-- accept the manifest moves the waiting tag into `tags` (in one transaction, audited).
-- One waiting manifest per tag name: the latest push of a tag is the one that waits.
CREATE TABLE waiting_tags (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    digest        TEXT    NOT NULL,
    -- unix seconds of the push; waiting tags older than the pending limit are removed
    since         INTEGER NOT NULL,
    -- the account that pushed it
    pushed_by     TEXT,
    PRIMARY KEY (repository_id, name),
    FOREIGN KEY (repository_id, digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE INDEX waiting_tags_by_digest ON waiting_tags (repository_id, digest);
CREATE INDEX waiting_tags_by_age ON waiting_tags (since);

-- Tags quarantined by earlier versions (kept in `tags` with state 'quarantined', which
-- hid the tag's published manifest) now wait here; `tags` holds published tags only.
INSERT INTO waiting_tags (repository_id, name, digest, since)
    SELECT repository_id, name, digest, updated_at FROM tags WHERE state = 'quarantined';
DELETE FROM tags WHERE state = 'quarantined';
