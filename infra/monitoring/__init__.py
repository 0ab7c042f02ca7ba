"""Monitoring files generated from the overlay config: Prometheus scrape config and alert rules.

``python -m infra.monitoring scrape CONFIG`` prints the scrape config of an overlay;
``python -m infra.monitoring rules`` prints the alerting rules (``rules.yml`` here).
"""
