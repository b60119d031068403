-- Reusable sandbox leases are destroyed when their issue closes, when they
-- sit idle too long and when their environment is deleted. A destroy that
-- fails is retried with backoff: the lease waits in status 'pending_cleanup'
-- (cleanup_status 'pending') with the attempts made so far and the time of
-- the next one. Idle reusable leases between runs have status 'retained'.
ALTER TABLE environment_leases ADD COLUMN cleanup_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE environment_leases ADD COLUMN next_cleanup_at TEXT;
UPDATE environment_leases SET status='retained'
    WHERE status='active' AND lease_policy='reuse_by_environment';
