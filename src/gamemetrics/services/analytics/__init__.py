"""The analytics service: GraphQL over the rollups, per tenant, with live subscriptions."""
