-- Whether a secret was created by an environment's config (an SSH key or a
-- secret-ref field given as plaintext) and so goes when that environment
-- drops it, or was created through the secrets API and stays until deleted
-- there. Every secret before this column came from environment configs.
ALTER TABLE company_secrets ADD COLUMN environment_managed INTEGER NOT NULL DEFAULT 1;
