"""Backups of the store to S3-compatible object storage, and restore from them."""
