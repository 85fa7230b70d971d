"""The narrow AI tasks: one module per task, one template per task in prompts/."""
