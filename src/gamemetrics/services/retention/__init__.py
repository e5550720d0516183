"""The retention service: policies, archives of cold event days, erasure in archives."""
