"""Business rules, free of HTTP. Every tenant-owned read or write goes through a
`TenantScope` (hub.services.scope), which is the one place tenant isolation lives."""
