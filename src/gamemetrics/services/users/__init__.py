"""The users service: tenants, games, keys, OAuth2 clients and tokens, operators, player profiles,
GDPR erasure and export."""
