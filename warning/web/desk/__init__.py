"""The office desk of the dashboard: registry pages (contacts, devices, hazard sites), the duty roster, the 台账.

Pages only: each action calls the same registry and core services as the API, with the role checked on the
server and CSRF checked on every form. `wiring.setup` mounts them.
"""
