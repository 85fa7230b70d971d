"""Prompt-injection suite: attacks planted in customer-written records, run against every task (see run.py)."""
