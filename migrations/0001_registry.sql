-- Registry metadata. Blob bytes live in the blob store; this database says which repository
-- may see which blob, and holds manifests (they are small and read on every pull).

CREATE TABLE repositories (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- Every committed blob, once, whatever the repositories that link it.
CREATE TABLE blobs (
    digest     TEXT    PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- A repository may serve a blob only when linked to it (pushed or mounted there).
CREATE TABLE repository_blobs (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT    NOT NULL REFERENCES blobs(digest),
    PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;

-- An ordinary rowid table: rows carry the manifest bytes (up to 4 MiB), which WITHOUT ROWID
-- tables store badly.
CREATE TABLE manifests (
    id            INTEGER PRIMARY KEY,
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT    NOT NULL,
    media_type    TEXT    NOT NULL,
    artifact_type TEXT,
    size          INTEGER NOT NULL,
    content       BLOB    NOT NULL,
    -- the digest in the manifest's `subject`, for the referrers API
    subject       TEXT,
    -- top-level annotations as a JSON object, for the referrers API
    annotations   TEXT,
    created_at    INTEGER NOT NULL,
    -- 'admitted', or 'pending': pushed by digest without the signatures its policy needs;
    -- admitted when they arrive or when an admitted index references it
    state         TEXT    NOT NULL DEFAULT 'admitted',
    pending_since INTEGER,
    UNIQUE (repository_id, digest)
);

CREATE INDEX manifests_pending ON manifests (pending_since) WHERE state = 'pending';

CREATE INDEX manifests_by_subject ON manifests (repository_id, subject) WHERE subject IS NOT NULL;

CREATE TABLE tags (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    digest        TEXT    NOT NULL,
    updated_at    INTEGER NOT NULL,
    -- 'published', or 'quarantined': pushed unsigned under a policy with
    -- "bonded.unsignedPush": "quarantine"; invisible until the policy is satisfied
    state         TEXT    NOT NULL DEFAULT 'published',
    PRIMARY KEY (repository_id, name),
    FOREIGN KEY (repository_id, digest) REFERENCES manifests(repository_id, digest)
) WITHOUT ROWID;

CREATE INDEX tags_by_digest ON tags (repository_id, digest);

-- Upload sessions; their bytes are upload files in the blob store, named by id.
CREATE TABLE uploads (
    id         TEXT    PRIMARY KEY,
    repository TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Verified signatures, keyed by the digest they sign. Written with the signature manifest,
-- in the same transaction; removed with it.
CREATE TABLE signatures (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    -- the signature manifest
    digest        TEXT    NOT NULL,
    -- the manifest it signs
    subject       TEXT    NOT NULL,
    format        TEXT    NOT NULL,
    -- leaf certificate subject DN; NULL when the envelope could not be read
    signer        TEXT,
    -- JSON array: hex SHA-256 of each certificate of the chain, leaf first
    thumbprints   TEXT    NOT NULL,
    algorithm     TEXT,
    signing_time  TEXT,
    -- JSON object: each check's outcome and reason
    checks        TEXT    NOT NULL,
    accepted      INTEGER NOT NULL,
    policy        TEXT    NOT NULL,
    verified_at   TEXT    NOT NULL,
    PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;

CREATE INDEX signatures_by_subject ON signatures (repository_id, subject);

-- The trust policy and trust stores in force, as full snapshots: every change (flags at
-- start, the admin API) adds a version. The highest version is in force.
CREATE TABLE trust_versions (
    version    INTEGER PRIMARY KEY,
    -- trustpolicy.json as given; NULL: no policy (plain registry)
    policy     TEXT,
    -- JSON object: {"ca:name": ["<base64 DER>", ...], ...}
    stores     TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);

-- The audit trail: every change of state and every refusal, hash-chained. Each record's
-- hash covers its fields and the previous record's hash, so a record changed, removed or
-- inserted breaks the chain from there on (`bonded audit verify`).
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    source     TEXT,
    action     TEXT    NOT NULL,
    repository TEXT,
    digest     TEXT,
    tag        TEXT,
    outcome    TEXT    NOT NULL,
    reason     TEXT,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);

CREATE INDEX audit_by_digest ON audit_log (digest, seq);
