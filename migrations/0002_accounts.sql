-- Identities and rights (issue 5). Written by the server and by `bonded user|token|role|
-- namespace` on the same database; the server re-reads these tables every few seconds.

-- People (`user`, password) and machines (`robot`, API tokens only).
CREATE TABLE accounts (
    name          TEXT    PRIMARY KEY,
    kind          TEXT    NOT NULL CHECK (kind IN ('user', 'robot')),
    -- argon2id PHC string; NULL for robots, which log in with tokens only
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- API tokens: `bdt_<id>_<secret>`, shown once. The secret is 256 random bits, so a plain
-- SHA-256 of it is stored (no stretching needed, unlike a password).
CREATE TABLE api_tokens (
    id          TEXT    PRIMARY KEY,
    account     TEXT    NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    description TEXT    NOT NULL DEFAULT '',
    secret_hash TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- A role on a namespace pattern: `*`, `acme/*` (any depth below acme/), or one repository.
CREATE TABLE role_grants (
    account    TEXT    NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (role IN ('reader', 'signer', 'developer', 'maintainer', 'admin')),
    pattern    TEXT    NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (account, role, pattern)
);

-- Namespace patterns anyone may pull from without logging in. Everything else is private.
CREATE TABLE public_namespaces (
    pattern    TEXT    PRIMARY KEY,
    created_at INTEGER NOT NULL
);

-- Who first pushed each manifest, for `bonded.signerMustNotBePusher`.
ALTER TABLE manifests ADD COLUMN pushed_by TEXT;

-- Pull-journal files (see src/db/journal.rs) whose records are in audit_log already, so a
-- crash between importing a file and deleting it never imports it twice.
CREATE TABLE audit_imports (
    name        TEXT    PRIMARY KEY,
    imported_at INTEGER NOT NULL
);

-- Storage quotas on namespace patterns: the bytes of distinct blobs and manifests in the
-- repositories a pattern covers may not exceed `bytes`.
CREATE TABLE quotas (
    pattern    TEXT    PRIMARY KEY,
    bytes      INTEGER NOT NULL CHECK (bytes > 0),
    created_at INTEGER NOT NULL
);
