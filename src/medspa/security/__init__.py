"""Security: organizations (tenants), users, roles and permissions, API tokens and web sessions."""
