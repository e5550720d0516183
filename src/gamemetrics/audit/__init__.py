"""The audit log: who created or revoked credentials, erased or exported players, logged in."""

from gamemetrics.audit.chain import AuditEntry, AuditLog, Verification

__all__ = ["AuditEntry", "AuditLog", "Verification"]
