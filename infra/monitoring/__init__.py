"""Monitoring files generated from the overlay config: Prometheus scrape config and alert rules.

``cdn monitoring scrape CONFIG`` prints the scrape config of an overlay (:mod:`.scrape`);
``cdn monitoring rules`` prints the alerting rules (:mod:`.rules`, ``rules.yml`` here).
"""
