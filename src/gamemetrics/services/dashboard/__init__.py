"""The dashboard: the operator's and the studio's web UI, server-rendered, live over the processed stream."""
