"""`make demo`: a hub, two agents in their own network namespaces, a policy deployed to
both, and attacks next to legitimate traffic, counted live. See demo/__main__.py."""
