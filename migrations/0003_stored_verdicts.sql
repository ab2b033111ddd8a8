-- Stored verdicts: a signature is verified once, when it arrives or when the trust
-- configuration changes, and admissions decide from what is kept here instead of
-- verifying every signature of a digest again on every push.

-- JSON of trust::verify::SignatureVerdict (checks, signer, key, the times it holds for);
-- NULL for records written before it was kept: they are verified again when next needed.
ALTER TABLE signatures ADD COLUMN verdict TEXT;
-- The trust configuration version (trust_versions.version) the verdict was made under.
ALTER TABLE signatures ADD COLUMN trust_version INTEGER;
-- The subject descriptor the signature manifest names (its digest is `subject`).
ALTER TABLE signatures ADD COLUMN subject_media_type TEXT;
ALTER TABLE signatures ADD COLUMN subject_size INTEGER;
