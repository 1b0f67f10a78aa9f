"""Authentication, secrets, PHI protection and the audit trail."""
