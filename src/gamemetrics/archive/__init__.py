"""The event archive's format, shared by its writer (the retention service) and its readers (the
users service's export): where the Parquet parts and their manifests live, and their columns."""
