"""The demo workspace: a realistic, deterministic CRM for an invented invoicing SaaS."""
