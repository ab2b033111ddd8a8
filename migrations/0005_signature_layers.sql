-- One record per signature, not per signature manifest: a cosign signature manifest holds
-- one signature per layer (`layer` is its index; Notary signature manifests hold one, at
-- layer 0). SQLite cannot change a primary key in place, so the table is rebuilt.
CREATE TABLE signatures_by_layer (
    repository_id      INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    -- the signature manifest
    digest             TEXT    NOT NULL,
    -- the signature's index among the manifest's layers
    layer              INTEGER NOT NULL DEFAULT 0,
    -- the manifest it signs
    subject            TEXT    NOT NULL,
    -- notary.jws or cosign
    format             TEXT    NOT NULL,
    signer             TEXT,
    thumbprints        TEXT    NOT NULL,
    algorithm          TEXT,
    signing_time       TEXT,
    checks             TEXT    NOT NULL,
    accepted           INTEGER NOT NULL,
    policy             TEXT    NOT NULL,
    verified_at        TEXT    NOT NULL,
    verdict            TEXT,
    trust_version      INTEGER,
    subject_media_type TEXT,
    subject_size       INTEGER,
    PRIMARY KEY (repository_id, digest, layer)
) WITHOUT ROWID;

INSERT INTO signatures_by_layer (repository_id, digest, layer, subject, format, signer,
        thumbprints, algorithm, signing_time, checks, accepted, policy, verified_at,
        verdict, trust_version, subject_media_type, subject_size)
    SELECT repository_id, digest, 0, subject, format, signer, thumbprints, algorithm,
        signing_time, checks, accepted, policy, verified_at, verdict, trust_version,
        subject_media_type, subject_size
    FROM signatures;

DROP TABLE signatures;
ALTER TABLE signatures_by_layer RENAME TO signatures;
CREATE INDEX signatures_by_subject ON signatures (repository_id, subject);
