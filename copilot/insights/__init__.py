"""Insights across the customer lifecycle: KPIs per stage, reply quality, CSAT prediction, account health and scores.

Everything here is computed from the workspace's records (and its stored review decisions): no hand-entered numbers.
``kpis`` (support, sales, customers), ``quality`` (auto-QA of agent replies), ``csat`` (CSAT prediction), ``health``
(account health and churn risk), ``scoring`` (win probability, lead score, forecast; a Bayesian logistic model).
"""
